//go:build cgo && !vidhub_lite

package media

/*
#include "media_cgo.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vidhub/vidhub/protocol"
)

type decoder struct {
	mu   sync.Mutex
	c    *C.vdec
	gaps frameNums
	// broken says the pictures ahead reference something lost: every
	// access unit up to the next keyframe is refused.
	broken error
	w, h   int
	msg    msgBuf
	// noGaps turns frame_num tracking off, to show (in a test) what
	// FFmpeg does on its own.
	noGaps bool
}

var _ Decoder = (*decoder)(nil)

// NewDecoder opens FFmpeg's h264 decoder for live use: one thread, low
// delay (each access unit's picture comes out of the call that decodes
// it), and no pictures that are known to be damaged.
//
// FFmpeg 5.1 conceals a lost reference silently: after a missing access
// unit it makes up the frame from the one before and flags nothing. So
// the decoder tracks frame_num itself and, after a gap (or any error),
// refuses every access unit until the next keyframe.
func NewDecoder() (Decoder, error) {
	setup()
	d := &decoder{}
	d.c = C.vdec_open(d.msg.ptr())
	if d.c == nil {
		return nil, fmt.Errorf("H.264 decoder: %s", d.msg.String())
	}
	d.broken = errors.New("no keyframe yet")
	return d, nil
}

// Decode decodes one access unit (Annex B).
func (d *decoder) Decode(au []byte) (ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return false, fmt.Errorf("H.264 decoder: %w", errClosed)
	}
	if len(au) == 0 {
		return false, errors.New("H.264 decoder: empty access unit")
	}
	key := protocol.IsKeyframe(au)
	if gap := d.gaps.check(au); gap != nil && !key && d.broken == nil && !d.noGaps {
		d.broken = gap
	}
	if d.broken != nil && !key {
		return false, fmt.Errorf("H.264 decoder: waiting for a keyframe (%w)", d.broken)
	}
	r := C.vdec_decode(d.c, (*C.uint8_t)(&au[0]), C.int(len(au)), d.msg.ptr())
	if r < 0 {
		d.broken = errors.New("an access unit failed to decode")
		return false, fmt.Errorf("H.264 decoder: %s", d.msg.String())
	}
	if r == 0 {
		if key {
			// A low-delay decoder gives an IDR's picture at once; none
			// means the access unit held less than a whole picture.
			d.broken = errors.New("a keyframe gave no picture")
			return false, errors.New("H.264 decoder: a keyframe gave no picture: it is incomplete")
		}
		return false, nil
	}
	d.broken = nil
	var w, h C.int
	C.vdec_size(d.c, &w, &h)
	d.w, d.h = int(w), int(h)
	return true, nil
}

// Size is the size of the last picture.
func (d *decoder) Size() (w, h int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.w, d.h
}

// Picture converts the last picture into dst (BGR24 or RGBA), scaling it
// to dst's size.
func (d *decoder) Picture(dst Image) error {
	if dst.Fmt == I420 {
		return fmt.Errorf("H.264 decoder: pictures come out as media.BGR24 or media.RGBA, not I420")
	}
	if err := checkImage(dst); err != nil {
		return fmt.Errorf("H.264 decoder: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return fmt.Errorf("H.264 decoder: %w", errClosed)
	}
	if C.vdec_picture(d.c, pixPtr(dst), C.int(dst.Fmt), C.int(dst.Width), C.int(dst.Height), C.int(dst.Stride), d.msg.ptr()) < 0 {
		return fmt.Errorf("H.264 decoder: %s", d.msg.String())
	}
	return nil
}

// Close frees the decoder; it is safe to call twice.
func (d *decoder) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	C.vdec_close(d.c)
	d.c = nil
}
