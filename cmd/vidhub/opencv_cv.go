//go:build cgo

package main

import "gocv.io/x/gocv"

func opencvVersion() string { return "OpenCV " + gocv.OpenCVVersion() }
