//go:build cgo && !vidhub_lite

package media

/*
#include <stdlib.h>
#include "media_cgo.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

// DemuxTimeout bounds each blocking step of a demuxer: connecting and
// reading the source's header, finding its streams, and reading one
// access unit. A camera that sends nothing for this long is an error,
// not a hang.
const DemuxTimeout = 5 * time.Second

type demuxer struct {
	mu      sync.Mutex // held while C reads; Close takes it to free
	c       *C.vdmx
	closing atomic.Bool
	url     string
	live    bool
	w, h    int
	fps     float64
	cmu     sync.Mutex // guards codec, which Codec reads during a Read
	codec   string
	sps     []byte // the last SPS NAL seen (with its start code)
	pps     []byte // the last PPS NAL seen (with its start code)
	buf     []byte
	keyBuf  []byte
	asm     assembler // packets into whole access units
	stalled error     // a stall found while flushing the last access unit
	n       int       // access units read
	msg     msgBuf
}

var _ Demuxer = (*demuxer)(nil)

// OpenH264 opens a file or stream whose video is H.264 (see
// OpenH264Context).
func OpenH264(url string) (Demuxer, error) { return OpenH264Context(context.Background(), url) }

// OpenH264Context opens a file or stream (a path, or an rtsp://, http://,
// udp:// ... URL) through libavformat and returns its best video stream's
// access units in Annex B, each keyframe with SPS and PPS ahead of its
// IDR. RTSP goes over TCP. Cancelling ctx abandons the opening (it does
// not affect the Demuxer once returned); a source that answers nothing
// fails after DemuxTimeout. A source whose video is not H.264 gives an
// error wrapping ErrNotH264.
func OpenH264Context(ctx context.Context, url string) (Demuxer, error) {
	setup()
	d := &demuxer{url: url, live: isLive(url)}
	d.c = C.vdmx_alloc()
	if d.c == nil {
		return nil, fmt.Errorf("opening %s: out of memory", url)
	}
	curl := C.CString(url)
	defer C.free(unsafe.Pointer(curl))
	rtsp := C.int(0)
	if strings.HasPrefix(strings.ToLower(url), "rtsp://") || strings.HasPrefix(strings.ToLower(url), "rtsps://") {
		rtsp = 1
	}
	r := d.open(ctx, curl, rtsp)
	if r < 0 {
		err := d.openError(ctx, r)
		C.vdmx_free(d.c)
		return nil, err
	}
	var w, h C.int
	var fps C.double
	C.vdmx_info(d.c, &w, &h, &fps)
	d.w, d.h, d.fps = int(w), int(h), float64(fps)
	var n C.int
	if p := C.vdmx_extradata(d.c, &n); n > 0 {
		d.learn(C.GoBytes(unsafe.Pointer(p), n))
	}
	return d, nil
}

// open runs vdmx_open, interrupting it when ctx ends first.
func (d *demuxer) open(ctx context.Context, url *C.char, rtsp C.int) C.int {
	if ctx.Done() != nil {
		done, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-ctx.Done():
				C.vdmx_interrupt(d.c)
			case <-done:
			}
		}()
		defer func() { close(done); <-watched }()
	}
	return C.vdmx_open(d.c, url, rtsp, C.int64_t(DemuxTimeout/time.Microsecond), d.msg.ptr())
}

func (d *demuxer) openError(ctx context.Context, r C.int) error {
	switch r {
	case C.VM_ENOTH264:
		return fmt.Errorf("opening %s: %w: its video is %s; transcode it to H.264 or publish it as JPEG (--codec jpeg)", d.url, ErrNotH264, d.msg.String())
	case C.VM_ECLOSED:
		return fmt.Errorf("opening %s: %w", d.url, context.Cause(ctx))
	case C.VM_ETIMEDOUT:
		return fmt.Errorf("opening %s: %s: no answer within %v; check that the camera is on and the URL is right", d.url, d.msg.String(), DemuxTimeout)
	}
	return fmt.Errorf("opening %s: %s", d.url, d.msg.String())
}

// isLive reports whether url names a network source, which delivers at
// its own pace, rather than a file.
func isLive(url string) bool {
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		return false
	}
	scheme = strings.ToLower(scheme)
	return scheme != "file"
}

// Read returns the next access unit: Annex B, each keyframe with SPS and
// PPS ahead of its IDR; io.EOF at the end of a file.
func (d *demuxer) Read() (AU, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.stalled; err != nil {
		d.stalled = nil
		return AU{}, err
	}
	for {
		if d.c == nil || d.closing.Load() {
			return AU{}, fmt.Errorf("reading %s: %w", d.url, errClosed)
		}
		r := C.vdmx_read(d.c, d.msg.ptr())
		switch {
		case r == C.VM_EOF:
			if au, pts, ok := d.asm.flush(); ok {
				return d.emit(au, pts), nil
			}
			return AU{}, io.EOF
		case r == C.VM_ECLOSED:
			return AU{}, fmt.Errorf("reading %s: %w", d.url, errClosed)
		case r == C.VM_ETIMEDOUT:
			err := fmt.Errorf("reading %s: nothing came for %v: the source stalled", d.url, DemuxTimeout)
			if au, pts, ok := d.asm.flush(); ok {
				d.stalled = err // said by the next Read
				return d.emit(au, pts), nil
			}
			return AU{}, err
		case r < 0:
			return AU{}, fmt.Errorf("reading %s: %s", d.url, d.msg.String())
		}
		var n, flagKey C.int
		var pts C.int64_t
		p := C.vdmx_packet(d.c, &n, &pts, &flagKey)
		if n <= 0 {
			continue
		}
		pkt, ok := d.annexB(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
		if !ok {
			continue // no slice: parameter sets or SEI alone, learnt
		}
		if au, at, ok := d.asm.push(pkt, time.Duration(pts)); ok {
			return d.emit(au, at), nil
		}
	}
}

// emit makes an AU of an assembled access unit, with its SPS and PPS
// ahead of an IDR that lacks them.
func (d *demuxer) emit(au []byte, pts time.Duration) AU {
	if protocol.IsKeyframe(au) && protocol.CheckH264(au, true) != nil && d.sps != nil && d.pps != nil {
		d.keyBuf = append(append(append(d.keyBuf[:0], d.sps...), d.pps...), au...)
		au = d.keyBuf
	}
	if pts < 0 {
		// No timestamps (a raw .h264 file): count frames.
		pts = 0
		if d.fps > 0 {
			pts = time.Duration(float64(d.n) * float64(time.Second) / d.fps)
		}
	}
	d.n++
	return AU{Data: au, Key: protocol.IsKeyframe(au), PTS: pts}
}

// annexB copies the packet pkt into d.buf, with the last SPS and PPS put
// ahead of an IDR that lacks them. ok is false for a packet without a
// slice.
func (d *demuxer) annexB(pkt []byte) (au []byte, ok bool) {
	var sps, pps, slice, idrFirst bool
	_ = protocol.SplitAnnexB(pkt, func(nal []byte) bool {
		switch t := protocol.NALType(nal); t {
		case protocol.NALSPS:
			sps = true
		case protocol.NALPPS:
			pps = pps || sps
		case protocol.NALIDR, protocol.NALSlice:
			if t == protocol.NALIDR && !slice {
				idrFirst = !(sps && pps)
			}
			slice = true
		}
		return true
	})
	d.learn(pkt)
	if !slice {
		return nil, false
	}
	d.buf = d.buf[:0]
	if idrFirst && d.sps != nil && d.pps != nil {
		d.buf = append(append(d.buf, d.sps...), d.pps...)
	}
	d.buf = append(d.buf, pkt...)
	return d.buf, true
}

// learn keeps the last SPS and PPS of b (Annex B).
func (d *demuxer) learn(b []byte) {
	_ = protocol.SplitAnnexB(b, func(nal []byte) bool {
		switch protocol.NALType(nal) {
		case protocol.NALSPS:
			d.sps = append(append(d.sps[:0], 0, 0, 0, 1), nal...)
			if c, err := protocol.H264CodecString(d.sps); err == nil {
				d.cmu.Lock()
				d.codec = c
				d.cmu.Unlock()
			}
		case protocol.NALPPS:
			d.pps = append(append(d.pps[:0], 0, 0, 0, 1), nal...)
		}
		return true
	})
}

// Size is the video's size.
func (d *demuxer) Size() (w, h int) { return d.w, d.h }

// FPS is the frame rate the container states (0 if none).
func (d *demuxer) FPS() float64 { return d.fps }

// Codec is the codec string from the video's SPS.
func (d *demuxer) Codec() string {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	return d.codec
}

// Live reports whether the source is a network stream.
func (d *demuxer) Live() bool { return d.live }

// Close interrupts a Read in progress (it returns an error) and frees the
// demuxer; it is safe to call twice, and from another goroutine.
func (d *demuxer) Close() error {
	if !d.closing.CompareAndSwap(false, true) {
		return nil
	}
	C.vdmx_interrupt(d.c)
	d.mu.Lock()
	defer d.mu.Unlock()
	C.vdmx_free(d.c)
	d.c = nil
	return nil
}
