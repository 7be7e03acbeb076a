package bench

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"time"

	"golang.org/x/image/draw"

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
