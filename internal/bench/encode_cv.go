//go:build cgo && !vidhub_lite

package bench

import (
	"errors"
	"image"

	"gocv.io/x/gocv"
)

// publisherEncoder is the encoder vidhub's publisher uses in this build.
const publisherEncoder = "gocv"

// encoders are the encoders of this build: OpenCV's (libjpeg-turbo)
// and the standard library's. The gocv one does what the publisher does
// for a Go image: wrap it, convert RGBA to BGR, encode.
func encoders() []encoder {
	return []encoder{{"gocv", func(img *image.RGBA, q int) (int, error) {
		b := img.Bounds()
		rgba, err := gocv.NewMatFromBytes(b.Dy(), b.Dx(), gocv.MatTypeCV8UC4, img.Pix)
		if err != nil {
			return 0, err
		}
		defer rgba.Close()
		bgr := gocv.NewMat()
		defer bgr.Close()
		gocv.CvtColor(rgba, &bgr, gocv.ColorRGBAToBGR)
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, bgr, []int{gocv.IMWriteJpegQuality, q})
		if err != nil {
			return 0, err
		}
		defer buf.Close()
		if buf.Len() == 0 {
			return 0, errors.New("bench: gocv encoded nothing")
		}
		return buf.Len(), nil
	}}, stdlibEncoder()}
}

// encodeJPEG encodes img at quality q as the publisher does in this
// build, and returns the JPEG.
func encodeJPEG(img *image.RGBA, q int) ([]byte, error) {
	b := img.Bounds()
	rgba, err := gocv.NewMatFromBytes(b.Dy(), b.Dx(), gocv.MatTypeCV8UC4, img.Pix)
	if err != nil {
		return nil, err
	}
	defer rgba.Close()
	bgr := gocv.NewMat()
	defer bgr.Close()
	gocv.CvtColor(rgba, &bgr, gocv.ColorRGBAToBGR)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, bgr, []int{gocv.IMWriteJpegQuality, q})
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return nil, errors.New("bench: gocv encoded nothing")
	}
	return append([]byte(nil), buf.GetBytes()...), nil
}

// decodeJPEG decodes a JPEG as the desktop window does (OpenCV, into BGR).
func decodeJPEG(b []byte) error {
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Empty() {
		return errors.New("bench: OpenCV could not decode a JPEG")
	}
	return nil
}
