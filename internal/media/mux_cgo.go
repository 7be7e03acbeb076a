//go:build cgo && !vidhub_lite

package media

/*
#include <stdlib.h>
#include "media_cgo.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/vidhub/vidhub/protocol"
)

type mp4Writer struct {
	path  string
	w, h  int
	c     *C.vmux
	start time.Duration
	last  time.Duration
	n     int
	msg   msgBuf
}

// CreateMP4 makes an MP4 file at path for H.264 of w x h, written access
// unit by access unit as they are: nothing is decoded or encoded again
// (FFmpeg's libavformat). The file is created at the first Write, which
// must be a keyframe carrying its SPS and PPS, as vidhub's always do.
func CreateMP4(path string, w, h int) (MP4Writer, error) {
	setup()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("MP4 writer: size %dx%d: want a width and height above 0", w, h)
	}
	return &mp4Writer{path: path, w: w, h: h}, nil
}

// Write adds one access unit, at pts (any origin: the file starts at the
// first one's).
func (m *mp4Writer) Write(au []byte, pts time.Duration, key bool) error {
	if m.c == nil {
		if !key {
			return fmt.Errorf("MP4 writer: the first access unit must be a keyframe")
		}
		var extra []byte
		if err := protocol.SplitAnnexB(au, func(nal []byte) bool {
			if t := protocol.NALType(nal); t == protocol.NALSPS || t == protocol.NALPPS {
				extra = append(append(extra, 0, 0, 0, 1), nal...)
			}
			return true
		}); err != nil {
			return fmt.Errorf("MP4 writer: %w", err)
		}
		if len(extra) == 0 {
			return fmt.Errorf("MP4 writer: the first keyframe carries no SPS and PPS")
		}
		path := C.CString(m.path)
		defer C.free(unsafe.Pointer(path))
		m.c = C.vmux_open(path, C.int(m.w), C.int(m.h), (*C.uint8_t)(unsafe.Pointer(&extra[0])), C.int(len(extra)), m.msg.ptr())
		if m.c == nil {
			return fmt.Errorf("MP4 writer: %s: %s", m.path, m.msg.String())
		}
		m.start, m.last = pts, pts-1
	}
	if len(au) == 0 {
		return fmt.Errorf("MP4 writer: an empty access unit")
	}
	if pts <= m.last {
		pts = m.last + 1 // timestamps only go forward
	}
	// A frame lasts as long as the one before it: the last one's is all
	// the file says of it.
	dur := pts - m.last
	if m.n == 0 {
		dur = 0
	}
	m.last = pts
	k := C.int(0)
	if key {
		k = 1
	}
	ticks := int64(((pts-m.start)*90000 + time.Second/2) / time.Second)
	dticks := int64((dur*90000 + time.Second/2) / time.Second)
	if C.vmux_write(m.c, (*C.uint8_t)(unsafe.Pointer(&au[0])), C.int(len(au)), C.int64_t(ticks), C.int64_t(dticks), k, m.msg.ptr()) < 0 {
		return fmt.Errorf("MP4 writer: %s: %s", m.path, m.msg.String())
	}
	m.n++
	return nil
}

// Close finishes the file: without it, the file has no index and plays
// nowhere. Closing a writer that wrote nothing creates no file.
func (m *mp4Writer) Close() error {
	if m.c == nil {
		return nil
	}
	var err error
	if C.vmux_finish(m.c, m.msg.ptr()) < 0 {
		err = fmt.Errorf("MP4 writer: %s: %s", m.path, m.msg.String())
	}
	C.vmux_close(m.c)
	m.c = nil
	return err
}
