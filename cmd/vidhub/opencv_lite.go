//go:build cgo && vidhub_lite

package main

func opencvVersion() string { return "lite build, no OpenCV, H.264 encoding by libx264" }
