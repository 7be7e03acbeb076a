//go:build cgo

package media

/*
#include "media_cgo.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// This file holds what both native builds share.

// Encoder settings, chosen by measurement (BenchmarkEncode720p): on a
// noisy 720p30 camera-like picture at the default bitrate, x264's
// superfast preset matches veryfast's PSNR (33.2 dB both) for 3% more
// bits at 60% of its CPU time. Constrained Baseline (no CABAC, no
// B-frames) decodes in every browser's WebCodecs and costs little more
// than Main at these settings. On the bench's camera-like clip at a tenth
// of JPEG's bitrate (SSIM, encode ms a 720p picture; BENCHMARKS.md):
// superfast Baseline with one reference picture 0.9612 (6.0), two 0.9647
// (7.2, taken: encoder.c), three 0.9651 (7.9); Main with two 0.9654
// (8.6), High 0.9651 (8.1); veryfast with two 0.9651 (11.4), faster with
// three 0.9666 (19.5); noise reduction, adaptive quantization and psy
// settings changed nothing or cost SSIM.
const (
	encPreset  = "superfast"
	encTune    = "zerolatency"
	encProfile = "baseline"
)

// encThreads is how many threads x264 codes a picture with: one. At 720p
// a second sliced thread saved no time per picture here (6.0 against 6.3
// ms, BenchmarkEncode720p) for more CPU and bits, and a publisher's
// layers and viewers have the other core.
const encThreads = 1

// checkConfig checks cfg and fills in its defaults: the bitrate from the
// picture size and frame rate, and two seconds' worth of frames between
// keyframes.
// The bitrates SetBitrate takes, in bits per second.
const (
	minBitrate = 16_000
	maxBitrate = 1_000_000_000
)

func checkConfig(cfg EncoderConfig) (EncoderConfig, error) {
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width%2 != 0 || cfg.Height%2 != 0 || cfg.Width > 8192 || cfg.Height > 8192 {
		return cfg, fmt.Errorf("H.264 encoder: size %dx%d: want even sizes from 2x2 to 8192x8192", cfg.Width, cfg.Height)
	}
	if cfg.FPS <= 0 || cfg.FPS > 1000 || math.IsNaN(cfg.FPS) {
		return cfg, fmt.Errorf("H.264 encoder: frame rate %v: want more than 0 and at most 1000", cfg.FPS)
	}
	if cfg.Bitrate < 0 || cfg.KeyInt < 0 {
		return cfg, fmt.Errorf("H.264 encoder: bitrate %d and key interval %d: want 0 (a default) or more", cfg.Bitrate, cfg.KeyInt)
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = DefaultBitrate(cfg.Width, cfg.Height, cfg.FPS)
	}
	if cfg.KeyInt == 0 {
		cfg.KeyInt = max(1, int(math.Round(2*cfg.FPS)))
	}
	return cfg, nil
}

// fpsRational turns a frame rate into a fraction: 30 is 30/1, 29.97 is
// 30000/1001.
func fpsRational(fps float64) (num, den int) {
	if r := math.Round(fps); math.Abs(fps-r) < 1e-6 {
		return int(r), 1
	}
	if r := math.Round(fps * 1.001); math.Abs(fps*1.001-r) < 1e-3 {
		return int(r) * 1000, 1001
	}
	return int(math.Round(fps * 1000)), 1000
}

// msgBuf carries an error's text back from C.
type msgBuf [C.VM_MSG]C.char

func (m *msgBuf) ptr() *C.char { return &m[0] }

func (m *msgBuf) String() string { return C.GoString(&m[0]) }

// errClosed is what the encoder, decoder and demuxer return after Close.
var errClosed = errors.New("already closed")

// checkImage checks that img's pixels cover its size, so that C never
// reads or writes past Pix.
func checkImage(img Image) error {
	switch {
	case img.Width <= 0 || img.Height <= 0 || img.Width > 1<<14 || img.Height > 1<<14:
		return fmt.Errorf("image is %dx%d: want a size from 1x1 to 16384x16384", img.Width, img.Height)
	case img.Fmt == I420:
		if img.Width%2 != 0 || img.Height%2 != 0 || img.Stride%2 != 0 {
			return fmt.Errorf("I420 image is %dx%d with stride %d: want even sizes and stride", img.Width, img.Height, img.Stride)
		}
		if img.Stride < img.Width {
			return fmt.Errorf("image stride %d is less than its width %d", img.Stride, img.Width)
		}
		if need := img.Stride * img.Height * 3 / 2; len(img.Pix) < need {
			return fmt.Errorf("I420 image of %dx%d with stride %d needs %d bytes, has %d", img.Width, img.Height, img.Stride, need, len(img.Pix))
		}
		return nil
	}
	bpp := 0
	switch img.Fmt {
	case BGR24:
		bpp = 3
	case RGBA:
		bpp = 4
	default:
		return fmt.Errorf("image has an unknown pixel format %d: use media.BGR24, media.RGBA or media.I420", img.Fmt)
	}
	switch {
	case img.Stride < img.Width*bpp:
		return fmt.Errorf("image stride %d is less than its width %d times %d bytes a pixel", img.Stride, img.Width, bpp)
	case len(img.Pix) < img.Stride*(img.Height-1)+img.Width*bpp:
		return fmt.Errorf("image of %dx%d with stride %d needs %d bytes, has %d", img.Width, img.Height, img.Stride,
			img.Stride*(img.Height-1)+img.Width*bpp, len(img.Pix))
	}
	return nil
}

// pixPtr is the address of img's first pixel.
func pixPtr(img Image) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(&img.Pix[0])) }
