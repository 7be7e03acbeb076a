//go:build cgo

package media

/*
#include <stdlib.h>
#include "media_cgo.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

// Encoder settings, chosen by measurement (BenchmarkEncode720p): on a
// noisy 720p30 camera-like picture at the default bitrate, x264's
// superfast preset matches veryfast's PSNR (33.2 dB both) for 3% more
// bits at 60% of its CPU time. Constrained Baseline (no CABAC, no
// B-frames) decodes in every browser's WebCodecs and costs little more
// than Main at these settings.
const (
	encPreset  = "superfast"
	encProfile = "baseline"
)

// encThreads is how many sliced threads x264 uses for w x h: one slice
// for small pictures (cheapest, best compression), two from 720p up, so
// that a picture's latency halves when the second core is free.
func encThreads(w, h int) int {
	if w*h >= 1280*720 {
		return 2
	}
	return 1
}

type encoder struct {
	mu    sync.Mutex
	c     *C.venc
	w, h  int
	codec string
	buf   []byte
	msg   msgBuf
}

var _ Encoder = (*encoder)(nil)

// NewEncoder opens a libx264 encoder with live settings: zero latency (an
// access unit out for every picture in), no B-frames, no lookahead,
// Constrained Baseline, SPS and PPS before every IDR, ABR with a
// one-second VBV buffer whose rate is the bitrate.
func NewEncoder(cfg EncoderConfig) (Encoder, error) {
	setup()
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width%2 != 0 || cfg.Height%2 != 0 || cfg.Width > 8192 || cfg.Height > 8192 {
		return nil, fmt.Errorf("H.264 encoder: size %dx%d: want even sizes from 2x2 to 8192x8192", cfg.Width, cfg.Height)
	}
	if cfg.FPS <= 0 || cfg.FPS > 1000 || math.IsNaN(cfg.FPS) {
		return nil, fmt.Errorf("H.264 encoder: frame rate %v: want more than 0 and at most 1000", cfg.FPS)
	}
	if cfg.Bitrate < 0 || cfg.KeyInt < 0 {
		return nil, fmt.Errorf("H.264 encoder: bitrate %d and key interval %d: want 0 (a default) or more", cfg.Bitrate, cfg.KeyInt)
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = DefaultBitrate(cfg.Width, cfg.Height, cfg.FPS)
	}
	if cfg.KeyInt == 0 {
		cfg.KeyInt = max(1, int(math.Round(2*cfg.FPS)))
	}
	num, den := fpsRational(cfg.FPS)
	preset := C.CString(encPreset)
	defer C.free(unsafe.Pointer(preset))
	profile := C.CString(encProfile)
	defer C.free(unsafe.Pointer(profile))
	ccfg := C.venc_config{
		width: C.int(cfg.Width), height: C.int(cfg.Height),
		fps_num: C.int(num), fps_den: C.int(den),
		bitrate: C.int(cfg.Bitrate), vbv_bufsize: C.int(cfg.Bitrate), keyint: C.int(cfg.KeyInt),
		threads: C.int(encThreads(cfg.Width, cfg.Height)), preset: preset, profile: profile,
	}
	e := &encoder{w: cfg.Width, h: cfg.Height}
	e.c = C.venc_open(&ccfg, e.msg.ptr())
	if e.c == nil {
		return nil, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	var n C.int
	p := C.venc_extradata(e.c, &n)
	if n > 0 {
		e.codec, _ = protocol.H264CodecString(C.GoBytes(unsafe.Pointer(p), n))
	}
	return e, nil
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

// Encode codes img (scaled to the encoder's size) and returns its access
// unit; forceKey makes it an IDR.
func (e *encoder) Encode(img Image, forceKey bool) (AU, error) {
	if err := checkImage(img); err != nil {
		return AU{}, fmt.Errorf("H.264 encoder: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return AU{}, fmt.Errorf("H.264 encoder: %w", errClosed)
	}
	force := C.int(0)
	if forceKey {
		force = 1
	}
	if C.venc_encode(e.c, pixPtr(img), C.int(img.Fmt), C.int(img.Width), C.int(img.Height), C.int(img.Stride), force, e.msg.ptr()) < 0 {
		return AU{}, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	var n, key C.int
	p := C.venc_packet(e.c, &n, &key)
	e.buf = append(e.buf[:0], unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...)
	au := AU{Data: e.buf, Key: protocol.IsKeyframe(e.buf)}
	if au.Key {
		if c, err := protocol.H264CodecString(au.Data); err == nil {
			e.codec = c
		}
	}
	return au, nil
}

// Codec is the codec string from the encoder's SPS, e.g. "avc1.42C01F".
func (e *encoder) Codec() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.codec
}

// Size is the coded picture's size.
func (e *encoder) Size() (w, h int) { return e.w, e.h }

// Close frees the encoder; it is safe to call twice.
func (e *encoder) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	C.venc_close(e.c)
	e.c = nil
}
