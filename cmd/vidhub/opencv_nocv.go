//go:build !cgo

package main

func opencvVersion() string { return "static build, no OpenCV" }
