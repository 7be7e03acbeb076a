//go:build cgo

package media

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lx264 -lm -lpthread -ldl
#include <stdlib.h>
#include "encoder.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

// CanEncodeH264 reports whether this build can encode H.264: both native
// builds link libx264, so they always can.
func CanEncodeH264() bool { return true }

// encoder is the Encoder of both native builds: libx264 through its own
// API. It converts and scales pictures itself: libswscale took as much
// CPU as libx264 at 720p (BENCHMARKS.md), and the lite build has no
// FFmpeg.
type encoder struct {
	mu    sync.Mutex
	c     *C.vx264
	w, h  int
	codec string
	buf   []byte
	coded bool // Input holds a picture
	msg   msgBuf
}

var _ Encoder = (*encoder)(nil)

// NewEncoder opens a libx264 encoder with live settings: zero latency (an
// access unit out for every picture in), no B-frames, no lookahead, no
// scene cuts, Constrained Baseline, SPS and PPS before every IDR, ABR
// with a one-second VBV buffer whose rate is the bitrate.
func NewEncoder(cfg EncoderConfig) (Encoder, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	num, den := fpsRational(cfg.FPS)
	preset := C.CString(encPreset)
	defer C.free(unsafe.Pointer(preset))
	profile := C.CString(encProfile)
	defer C.free(unsafe.Pointer(profile))
	tune := C.CString(encTune)
	defer C.free(unsafe.Pointer(tune))
	ccfg := C.vx264_config{
		width: C.int(cfg.Width), height: C.int(cfg.Height),
		fps_num: C.int(num), fps_den: C.int(den),
		bitrate: C.int(cfg.Bitrate), vbv_bufsize: C.int(cfg.Bitrate), keyint: C.int(cfg.KeyInt),
		threads: encThreads, preset: preset, tune: tune, profile: profile,
	}
	e := &encoder{w: cfg.Width, h: cfg.Height}
	e.c = C.vx264_open(&ccfg, e.msg.ptr())
	if e.c == nil {
		return nil, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	var n C.int
	p := C.vx264_headers(e.c, &n, e.msg.ptr())
	if p == nil {
		C.vx264_close(e.c)
		return nil, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	if e.codec, err = protocol.H264CodecString(C.GoBytes(unsafe.Pointer(p), n)); err != nil {
		C.vx264_close(e.c)
		return nil, fmt.Errorf("H.264 encoder: reading the codec string from libx264's SPS: %w", err)
	}
	return e, nil
}

// Encode codes img (scaled to the encoder's size) and returns its access
// unit; forceKey makes it an IDR. A BGR24 or RGBA picture is converted to
// I420 (BT.601, limited range); one of another size is box-filtered to
// the encoder's.
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
	if C.vx264_encode(e.c, pixPtr(img), C.int(img.Fmt), C.int(img.Width), C.int(img.Height), C.int(img.Stride), force, e.msg.ptr()) < 0 {
		return AU{}, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	e.coded = true
	var n, key C.int
	p := C.vx264_packet(e.c, &n, &key)
	e.buf = append(e.buf[:0], unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...)
	au := AU{Data: e.buf, Key: key != 0}
	if au.Key {
		if c, err := protocol.H264CodecString(au.Data); err == nil {
			e.codec = c
		}
	}
	return au, nil
}

// SetBitrate changes the target bitrate (and the one-second VBV buffer
// with it) from the next picture on, without a keyframe.
func (e *encoder) SetBitrate(bps int) error {
	if bps < minBitrate || bps > maxBitrate {
		return fmt.Errorf("H.264 encoder: bitrate %d bit/s is out of range; use %d to %d", bps, minBitrate, maxBitrate)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return fmt.Errorf("H.264 encoder: %w", errClosed)
	}
	if C.vx264_set_bitrate(e.c, C.int(bps), C.int(bps), e.msg.ptr()) < 0 {
		return fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	return nil
}

// Input is the I420 picture the last Encode coded, at the encoder's size,
// in C memory: valid until the next Encode or Close. A smaller encoder
// codes it for a fraction of the cost of converting the source again.
func (e *encoder) Input() Image {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil || !e.coded {
		return Image{}
	}
	n := e.w * e.h * 3 / 2
	return Image{Fmt: I420, Width: e.w, Height: e.h, Stride: e.w, Pix: unsafe.Slice((*byte)(unsafe.Pointer(C.vx264_picture(e.c))), n)}
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
	C.vx264_close(e.c)
	e.c = nil
}
