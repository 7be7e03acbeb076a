package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"time"

	"golang.org/x/image/draw"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// EncodeResult is the cost of encoding one frame size with one encoder.
type EncodeResult struct {
	Encoder string  `json:"encoder"` // gocv (libjpeg-turbo through OpenCV) or stdlib
	Size    string  `json:"size"`    // WxH
	Ms      float64 `json:"ms_per_frame"`
	Bytes   float64 `json:"bytes"`
	Frames  int     `json:"frames"`
}

// encodeQuality is the publisher's default JPEG quality.
const encodeQuality = 80

// maxEncodes bounds the frames one timing encodes.
const maxEncodes = 500

// encodeTimings times both encoders at 720p, 1080p and the lo size, on a
// frame of the pattern publisher.
func encodeTimings(ctx context.Context, env *runEnv) []EncodeResult {
	img, err := jpeg.Decode(bytes.NewReader(env.p.hi[0]))
	if err != nil {
		return nil
	}
	src := toRGBA(img)
	budget := time.Second
	if env.opts.Quick {
		budget = 200 * time.Millisecond
	}
	loW, loH := protocol.LoSize(frameW, frameH)
	sizes := []image.Point{{frameW, frameH}, {1920, 1080}, {loW, loH}}
	var out []EncodeResult
	for _, sz := range sizes {
		im := src
		if sz.X != frameW {
			im = image.NewRGBA(image.Rect(0, 0, sz.X, sz.Y))
			draw.ApproxBiLinear.Scale(im, im.Bounds(), src, src.Bounds(), draw.Src, nil)
		}
		for _, enc := range encoders() {
			if ctx.Err() != nil {
				return out
			}
			out = append(out, timeEncode(enc, im, budget))
		}
	}
	return out
}

// encoder encodes an RGBA image at quality q and returns the JPEG size.
type encoder struct {
	name string
	enc  func(img *image.RGBA, q int) (int, error)
}

// publisherEncoder is the encoder vidhub's publisher uses in this build:
// OpenCV's where the build has it, else the standard library's.
var publisherEncoder = func() string {
	if media.OpenCVAvailable() {
		return "gocv"
	}
	return "stdlib"
}()

// encoders are the encoders of this build: OpenCV's (libjpeg-turbo),
// where the build has it, and the standard library's.
func encoders() []encoder {
	if !media.OpenCVAvailable() {
		return []encoder{stdlibEncoder()}
	}
	return []encoder{{"gocv", func(img *image.RGBA, q int) (int, error) {
		n := 0
		err := encodeCV(img, q, func(b []byte) error { n = len(b); return nil })
		return n, err
	}}, stdlibEncoder()}
}

// encodeCV does what the publisher does with a Go image in a build with
// OpenCV: convert RGBA to BGR, encode with libjpeg-turbo. use gets the
// JPEG, valid during the call.
func encodeCV(img *image.RGBA, q int, use func([]byte) error) error {
	b := img.Bounds()
	p, err := media.PictureFrom(media.Image{Fmt: media.RGBA, Width: b.Dx(), Height: b.Dy(), Stride: img.Stride, Pix: img.Pix})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer p.Close()
	return p.EncodeJPEG(b.Dx(), b.Dy(), q, use)
}

// encodeJPEG encodes img at quality q as the publisher does in this
// build, and returns the JPEG.
func encodeJPEG(img *image.RGBA, q int) ([]byte, error) {
	if !media.OpenCVAvailable() {
		var buf bytes.Buffer
		err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q})
		return buf.Bytes(), err
	}
	var out []byte
	err := encodeCV(img, q, func(b []byte) error { out = append([]byte(nil), b...); return nil })
	return out, err
}

// decodeJPEG decodes a JPEG as a viewer of this build does: as the
// desktop window does (OpenCV, into BGR) where the build has OpenCV,
// else with the standard library.
func decodeJPEG(b []byte) error {
	if !media.OpenCVAvailable() {
		_, err := jpeg.Decode(bytes.NewReader(b))
		return err
	}
	p, err := media.DecodeJPEG(b)
	if err != nil {
		return err
	}
	p.Close()
	return nil
}

// stdlibEncoder is the standard library's encoder.
func stdlibEncoder() encoder {
	var buf bytes.Buffer
	return encoder{"stdlib", func(img *image.RGBA, q int) (int, error) {
		buf.Reset()
		err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q})
		return buf.Len(), err
	}}
}

func timeEncode(e encoder, img *image.RGBA, budget time.Duration) EncodeResult {
	r := EncodeResult{Encoder: e.name, Size: protocol.FormatSize(img.Bounds().Dx(), img.Bounds().Dy())}
	if _, err := e.enc(img, encodeQuality); err != nil { // warm up
		return r
	}
	start := time.Now()
	var total int
	for r.Frames < maxEncodes && (r.Frames < 3 || time.Since(start) < budget) {
		n, err := e.enc(img, encodeQuality)
		if err != nil {
			break
		}
		total += n
		r.Frames++
	}
	if r.Frames > 0 {
		r.Ms = round3(float64(time.Since(start)) / float64(time.Millisecond) / float64(r.Frames))
		r.Bytes = round3(float64(total) / float64(r.Frames))
	}
	return r
}
