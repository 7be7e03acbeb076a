//go:build !cgo || vidhub_lite

package subscriber_test

// cameraSource is the pattern: the static build has no GStreamer.
func cameraSource() string { return "pattern" }
