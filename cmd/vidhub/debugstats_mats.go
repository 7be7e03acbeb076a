//go:build matprofile && cgo

package main

import "gocv.io/x/gocv"

// matCount is the number of gocv Mats open in this process.
func matCount() int { return gocv.MatProfile.Count() }
