//go:build cgo && !vidhub_lite

package main

import "gocv.io/x/gocv"

func opencvVersion() string { return "OpenCV " + gocv.OpenCVVersion() }
