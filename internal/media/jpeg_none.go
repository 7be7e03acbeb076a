//go:build !cgo || vidhub_lite

package media

import "errors"

// CanEncodeJPEGI420 reports whether EncodeJPEGI420 works in this build:
// neither the static build nor the lite build links libjpeg.
func CanEncodeJPEGI420() bool { return false }

// EncodeJPEGI420 is the full build's: here it fails.
func EncodeJPEGI420(Image, int, func([]byte) error) error {
	return errors.New("JPEG from I420: this build has no libjpeg (the full build has)")
}
