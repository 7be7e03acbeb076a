//go:build cgo && !vidhub_lite

package media

/*
#include <stdlib.h>
#include "media_cgo.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

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
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
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
