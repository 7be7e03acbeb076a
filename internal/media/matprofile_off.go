//go:build !(matprofile && cgo && !vidhub_lite)

package media

// MatCount is -1: without -tags matprofile (and OpenCV) Mats are not
// counted.
func MatCount() int { return -1 }

// MatProfile is empty: without -tags matprofile (and OpenCV) Mats are
// not counted.
func MatProfile() string { return "" }
