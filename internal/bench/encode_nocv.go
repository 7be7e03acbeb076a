//go:build !cgo || vidhub_lite

package bench

import (
	"bytes"
	"image"
	"image/jpeg"
)

// publisherEncoder is the encoder vidhub's publisher uses in this build.
const publisherEncoder = "stdlib"

// encoders are the encoders of this build: the standard library's only.
func encoders() []encoder { return []encoder{stdlibEncoder()} }

// encodeJPEG encodes img at quality q as the publisher does in this
// build, and returns the JPEG.
func encodeJPEG(img *image.RGBA, q int) ([]byte, error) {
	var buf bytes.Buffer
	err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q})
	return buf.Bytes(), err
}

// decodeJPEG decodes a JPEG as a viewer of this build would.
func decodeJPEG(b []byte) error {
	_, err := jpeg.Decode(bytes.NewReader(b))
	return err
}
