//go:build cgo && vidhub_lite

package media

/*
#cgo LDFLAGS: -lx264 -lm -lpthread -ldl
#include <stdlib.h>
#include "x264_lite.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

// CanEncodeH264 reports whether this build can encode H.264: the lite
// build links libx264 in, so it always can.
func CanEncodeH264() bool { return true }

// liteEncoder is the lite build's Encoder: libx264 through its own API.
type liteEncoder struct {
	mu    sync.Mutex
	c     *C.vlite
	w, h  int
	codec string
	buf   []byte
	msg   msgBuf
}

var _ Encoder = (*liteEncoder)(nil)

// NewEncoder opens a libx264 encoder with live settings: zero latency (an
// access unit out for every picture in), no B-frames, no lookahead, no
// scene cuts, Constrained Baseline, SPS and PPS before every IDR, ABR
// with a one-second VBV buffer whose rate is the bitrate. These are the
// full build's settings; only the way to libx264 differs.
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
	ccfg := C.vlite_config{
		width: C.int(cfg.Width), height: C.int(cfg.Height),
		fps_num: C.int(num), fps_den: C.int(den),
		bitrate: C.int(cfg.Bitrate), vbv_bufsize: C.int(cfg.Bitrate), keyint: C.int(cfg.KeyInt),
		threads: C.int(encThreads(cfg.Width, cfg.Height)), preset: preset, profile: profile,
	}
	e := &liteEncoder{w: cfg.Width, h: cfg.Height}
	e.c = C.vlite_open(&ccfg, e.msg.ptr())
	if e.c == nil {
		return nil, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	var n C.int
	p := C.vlite_headers(e.c, &n, e.msg.ptr())
	if p == nil {
		C.vlite_close(e.c)
		return nil, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	if e.codec, err = protocol.H264CodecString(C.GoBytes(unsafe.Pointer(p), n)); err != nil {
		C.vlite_close(e.c)
		return nil, fmt.Errorf("H.264 encoder: reading the codec string from libx264's SPS: %w", err)
	}
	return e, nil
}

// Encode codes img (scaled to the encoder's size) and returns its access
// unit; forceKey makes it an IDR.
func (e *liteEncoder) Encode(img Image, forceKey bool) (AU, error) {
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
	if C.vlite_encode(e.c, pixPtr(img), C.int(img.Fmt), C.int(img.Width), C.int(img.Height), C.int(img.Stride), force, e.msg.ptr()) < 0 {
		return AU{}, fmt.Errorf("H.264 encoder: %s", e.msg.String())
	}
	var n, key C.int
	p := C.vlite_packet(e.c, &n, &key)
	e.buf = append(e.buf[:0], unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...)
	au := AU{Data: e.buf, Key: key != 0}
	if au.Key {
		if c, err := protocol.H264CodecString(au.Data); err == nil {
			e.codec = c
		}
	}
	return au, nil
}

// Codec is the codec string from the encoder's SPS, e.g. "avc1.42C01F".
func (e *liteEncoder) Codec() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.codec
}

// Size is the coded picture's size.
func (e *liteEncoder) Size() (w, h int) { return e.w, e.h }

// Close frees the encoder; it is safe to call twice.
func (e *liteEncoder) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	C.vlite_close(e.c)
	e.c = nil
}
