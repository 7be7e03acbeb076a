//go:build !(matprofile && cgo && !vidhub_lite)

package main

// matCount is -1: without -tags matprofile (and cgo) Mats are not counted.
func matCount() int { return -1 }
