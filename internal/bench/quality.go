package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"strconv"
	"time"

	"github.com/vidhub/vidhub/internal/media"
)

// QualityResult is one codec setting's bitrate and picture quality on the
// camera-like clip.
type QualityResult struct {
	Setting string `json:"setting"` // e.g. "jpeg q80 (gocv)", "h264 default bitrate"
	// TargetKbps is the H.264 encoder's target; 0 for JPEG.
	TargetKbps float64 `json:"target_kbps,omitempty"`
	Kbps       float64 `json:"kbps"` // measured: every frame's bytes over the clip's duration
	BytesFrame float64 `json:"bytes_per_frame"`
	// SSIM is the mean SSIM (luma, 11x11 Gaussian windows) of the decoded
	// frames against the source, over every ssimEvery-th frame; SSIMMin
	// the lowest of them.
	SSIM    float64 `json:"ssim"`
	SSIMMin float64 `json:"ssim_min"`
	Frames  int     `json:"frames"`
	Scored  int     `json:"frames_scored"`
	// EncodeMs is the mean encode time per frame, on this machine while
	// nothing else of the bench runs.
	EncodeMs float64 `json:"encode_ms"`
}

// ssimEvery says which frames are scored: SSIM at 720p costs more than
// encoding, so every third frame stands for its neighbours.
const ssimEvery = 3

// frameCodec encodes one frame and decodes it back into out, returning
// the coded size and the time the encode took.
type frameCodec interface {
	code(src, out *image.RGBA, i int) (n int, enc time.Duration, ok bool, err error)
	close()
}

// jpegCodec is the publisher's JPEG path at quality q, decoded with the
// standard library.
type jpegCodec struct{ q int }

func (c jpegCodec) code(src, out *image.RGBA, _ int) (int, time.Duration, bool, error) {
	t0 := time.Now()
	b, err := encodeJPEG(src, c.q)
	el := time.Since(t0)
	if err != nil {
		return 0, el, false, err
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return 0, el, false, fmt.Errorf("bench: decoding a JPEG: %w", err)
	}
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return len(b), el, true, nil
}

func (jpegCodec) close() {}

// h264Codec is media's encoder (the publisher's) and decoder (the
// viewer's), one access unit per frame.
type h264Codec struct {
	enc media.Encoder
	dec media.Decoder
}

func newH264Codec(w, h int, fps float64, bitrate int) (*h264Codec, error) {
	enc, err := media.NewEncoder(media.EncoderConfig{Width: w, Height: h, FPS: fps, Bitrate: bitrate})
	if err != nil {
		return nil, err
	}
	dec, err := media.NewDecoder()
	if err != nil {
		enc.Close()
		return nil, err
	}
	return &h264Codec{enc: enc, dec: dec}, nil
}

func (c *h264Codec) code(src, out *image.RGBA, i int) (int, time.Duration, bool, error) {
	b := src.Bounds()
	t0 := time.Now()
	au, err := c.enc.Encode(media.Image{Fmt: media.RGBA, Width: b.Dx(), Height: b.Dy(), Stride: src.Stride, Pix: src.Pix}, i == 0)
	el := time.Since(t0)
	if err != nil {
		return 0, el, false, err
	}
	n := len(au.Data)
	ok, err := c.dec.Decode(au.Data)
	if err != nil || !ok {
		return n, el, false, err
	}
	return n, el, true, c.dec.Picture(media.Image{Fmt: media.RGBA, Width: b.Dx(), Height: b.Dy(), Stride: out.Stride, Pix: out.Pix})
}

func (c *h264Codec) close() {
	c.enc.Close()
	c.dec.Close()
}

// codeClip runs every frame of the clip through each codec (the frame is
// made once for all of them) and scores what comes back.
func codeClip(ctx context.Context, c *clip, settings []string, fcs []frameCodec) ([]QualityResult, error) {
	defer func() {
		for _, fc := range fcs {
			fc.close()
		}
	}()
	rs := make([]QualityResult, len(fcs))
	sums := make([]float64, len(fcs))
	totals := make([]int, len(fcs))
	encTimes := make([]time.Duration, len(fcs))
	for k := range rs {
		rs[k] = QualityResult{Setting: settings[k], Frames: c.frames, SSIMMin: 1}
	}
	src := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	out := image.NewRGBA(src.Rect)
	var la, lb []float32
	for i := range c.frames {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.frame(i, src)
		score := i%ssimEvery == 0
		if score {
			la = lumaOf(src, la)
		}
		for k, fc := range fcs {
			n, el, ok, err := fc.code(src, out, i)
			if err != nil {
				return nil, fmt.Errorf("bench: %s, frame %d: %w", settings[k], i, err)
			}
			totals[k] += n
			encTimes[k] += el
			if !ok || !score {
				continue
			}
			lb = lumaOf(out, lb)
			v := ssim(la, lb, c.w, c.h)
			sums[k] += v
			rs[k].SSIMMin = min(rs[k].SSIMMin, v)
			rs[k].Scored++
		}
	}
	secs := float64(c.frames) / c.fps
	for k := range rs {
		r := &rs[k]
		r.Kbps = round3(float64(totals[k]) * 8 / secs / 1000)
		r.BytesFrame = round3(float64(totals[k]) / float64(c.frames))
		r.EncodeMs = round3(float64(encTimes[k]) / float64(time.Millisecond) / float64(c.frames))
		if r.Scored > 0 {
			r.SSIM = round4(sums[k] / float64(r.Scored))
			r.SSIMMin = round4(r.SSIMMin)
		} else {
			r.SSIMMin = 0
		}
	}
	return rs, nil
}

func round4(v float64) float64 { return float64(int64(v*10000+0.5)) / 10000 }

// qualityScenario codes the clip with JPEG at the publisher's quality,
// and with H.264 at its default bitrate and at a tenth and a fifth of the
// bitrate JPEG took.
func qualityScenario(ctx context.Context, env *runEnv) (string, []QualityResult, error) {
	w, h, frames := frameW, frameH, 5*frameFPS
	if env.opts.Quick {
		w, h, frames = 640, 360, 12
	}
	c := newClip(w, h, frames, frameFPS)
	js, err := codeClip(ctx, c, []string{fmt.Sprintf("jpeg q%d (%s)", encodeQuality, publisherEncoder)}, []frameCodec{jpegCodec{encodeQuality}})
	if err != nil {
		return "", nil, err
	}
	// H.264 at its default bitrate, at a tenth of what JPEG took (the
	// target), and at a fifth (where the two meet, or not).
	bitrates := []int{media.DefaultBitrate(w, h, frameFPS), int(js[0].Kbps * 1000 / 10), int(js[0].Kbps * 1000 / 5)}
	names := []string{"h264 default bitrate", "h264 at 1/10 of jpeg", "h264 at 1/5 of jpeg"}
	var fcs []frameCodec
	for _, b := range bitrates {
		hc, err := newH264Codec(w, h, frameFPS, b)
		if err != nil {
			for _, fc := range fcs {
				fc.close()
			}
			return "", nil, err
		}
		fcs = append(fcs, hc)
	}
	hs, err := codeClip(ctx, c, names, fcs)
	if err != nil {
		return "", nil, err
	}
	for k := range hs {
		hs[k].TargetKbps = round3(float64(bitrates[k]) / 1000)
	}
	out := append(js, hs...)
	if env.opts.Quick {
		return c.describe(), out, nil
	}
	// The same clip without sensor noise: how much of the gap is the
	// noise, which JPEG keeps and H.264 at a low bitrate smooths away.
	c.sigma = 0
	clear(c.noise)
	cj, err := codeClip(ctx, c, []string{"no noise: jpeg q" + strconv.Itoa(encodeQuality)}, []frameCodec{jpegCodec{encodeQuality}})
	if err != nil {
		return "", nil, err
	}
	b := int(cj[0].Kbps * 1000 / 10)
	hc, err := newH264Codec(w, h, frameFPS, b)
	if err != nil {
		return "", nil, err
	}
	ch, err := codeClip(ctx, c, []string{"no noise: h264 at 1/10 of jpeg"}, []frameCodec{hc})
	if err != nil {
		return "", nil, err
	}
	ch[0].TargetKbps = round3(float64(b) / 1000)
	c.sigma = clipNoise
	return c.describe(), append(out, cj[0], ch[0]), nil
}
