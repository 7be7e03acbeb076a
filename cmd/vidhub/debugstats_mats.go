//go:build matprofile && cgo && !vidhub_lite

package main

import "gocv.io/x/gocv"

// matCount is the number of gocv Mats open in this process.
func matCount() int { return gocv.MatProfile.Count() }
