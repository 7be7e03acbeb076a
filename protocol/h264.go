package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/nats-io/nats.go"
)

// H.264 NAL unit types that vidhub reads (ITU-T H.264 table 7-1).
const (
	NALSlice = 1 // a coded slice of a non-IDR picture
	NALIDR   = 5 // a coded slice of an IDR picture: a keyframe
	NALSEI   = 6
	NALSPS   = 7 // sequence parameter set
	NALPPS   = 8 // picture parameter set
	NALAUD   = 9 // access unit delimiter
)

// MaxNALs bounds the NAL units one access unit may hold.
const MaxNALs = 1024

// SplitAnnexB calls fn with each NAL unit of an Annex B byte stream (each
// preceded by a 00 00 01 or 00 00 00 01 start code), without its start
// code, until fn returns false. It fails for a stream that does not start
// with a start code, an empty NAL unit, or more than MaxNALs of them.
func SplitAnnexB(b []byte, fn func(nal []byte) bool) error {
	i := startCode(b)
	if i < 0 {
		return fmt.Errorf("%w: H.264 access unit does not start with an Annex B start code (00 00 01)", ErrBadFrame)
	}
	b = b[i:]
	for n := 0; len(b) > 0; n++ {
		if n == MaxNALs {
			return fmt.Errorf("%w: H.264 access unit holds more than %d NAL units", ErrBadFrame, MaxNALs)
		}
		end := bytes.Index(b, []byte{0, 0, 1})
		next := len(b)
		if end >= 0 {
			next = end + 3
			for end > 0 && b[end-1] == 0 {
				end-- // 00 00 00 01, or trailing zero bytes
			}
		} else {
			end = len(b)
		}
		nal := b[:end]
		if len(nal) == 0 {
			return fmt.Errorf("%w: H.264 access unit holds an empty NAL unit", ErrBadFrame)
		}
		if !fn(nal) {
			return nil
		}
		b = b[next:]
	}
	return nil
}

// startCode returns the offset just past the leading start code of b, or -1.
func startCode(b []byte) int {
	switch {
	case len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1:
		return 4
	case len(b) >= 3 && b[0] == 0 && b[1] == 0 && b[2] == 1:
		return 3
	}
	return -1
}

// NALType is the type of a NAL unit (without its start code).
func NALType(nal []byte) int { return int(nal[0] & 0x1f) }

// CheckH264 checks that b is one H.264 access unit as protocol v2 carries
// it: Annex B, at least one slice, and for a keyframe (key) its SPS and PPS
// ahead of an IDR slice; a frame not marked key holds no IDR slice. It
// does not decode the slices.
func CheckH264(b []byte, key bool) error {
	var sps, pps, idr, slice, forbidden bool
	err := SplitAnnexB(b, func(nal []byte) bool {
		if nal[0]&0x80 != 0 {
			forbidden = true
			return false
		}
		switch NALType(nal) {
		case NALSPS:
			sps = true
		case NALPPS:
			pps = pps || sps
		case NALIDR:
			idr = idr || (sps && pps)
			slice = true
		case NALSlice, 2, 3, 4:
			slice = true
		}
		return true
	})
	switch {
	case err != nil:
		return err
	case forbidden:
		return fmt.Errorf("%w: H.264 NAL unit has its forbidden_zero_bit set: not H.264, or corrupted", ErrBadFrame)
	case !slice:
		return fmt.Errorf("%w: H.264 access unit holds no coded slice", ErrBadFrame)
	case key && !idr:
		return fmt.Errorf("%w: H.264 keyframe lacks SPS and PPS ahead of an IDR slice", ErrBadFrame)
	case !key && IsKeyframe(b):
		return fmt.Errorf("%w: H.264 IDR access unit not marked %s: 1", ErrBadFrame, HeaderKey)
	}
	return nil
}

// IsKeyframe reports whether the Annex B access unit b holds an IDR slice.
func IsKeyframe(b []byte) bool {
	key := false
	_ = SplitAnnexB(b, func(nal []byte) bool {
		key = NALType(nal) == NALIDR
		return !key
	})
	return key
}

// H264CodecString returns the codec string of the stream whose access
// unit b carries an SPS, as WebCodecs and RFC 6381 spell it:
// "avc1.PPCCLL" (profile, constraint flags, level in hex), e.g.
// "avc1.42E01F" for Constrained Baseline at level 3.1.
func H264CodecString(b []byte) (string, error) {
	var out string
	err := SplitAnnexB(b, func(nal []byte) bool {
		if NALType(nal) == NALSPS && len(nal) >= 4 {
			out = fmt.Sprintf("avc1.%02X%02X%02X", nal[1], nal[2], nal[3])
			return false
		}
		return true
	})
	if err == nil && out == "" {
		err = fmt.Errorf("%w: H.264 access unit holds no SPS", ErrBadFrame)
	}
	return out, err
}

// A GOP reply answers a keyframe request that a publisher cannot serve
// with a fresh keyframe (a camera passed through): it carries the access
// units since the last keyframe, which a joining viewer decodes at once.
// It goes to the request's reply subject, one message, with
// Content-Type ContentTypeGOP, HeaderSeq the number of its first access
// unit, HeaderCount how many it holds, HeaderTime and HeaderSize as for
// frames (the capture time of its first), and as body each access unit
// prefixed with its capture time (Unix nanoseconds, 8 bytes) and its
// length (4 bytes), both big endian.
const (
	ContentTypeGOP = "application/x-vidhub-gop"
	HeaderCount    = "Vidhub-Count"
)

// GOPUnit is one access unit of a GOP reply.
type GOPUnit struct {
	Time int64 // capture time, Unix nanoseconds
	AU   []byte
}

// AppendGOP appends one access unit, captured at t, to b, a GOP reply body.
func AppendGOP(b []byte, t int64, au []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	b = binary.BigEndian.AppendUint32(b, uint32(len(au)))
	return append(b, au...)
}

// SplitGOP splits a GOP reply body into its n access units, which alias
// body. The first must be a keyframe; each must pass CheckH264 and have
// a capture time.
func SplitGOP(body []byte, n int) ([]GOPUnit, error) {
	if n < 1 || n > MaxGOP {
		return nil, fmt.Errorf("%w: GOP of %d access units, want 1 to %d", ErrBadFrame, n, MaxGOP)
	}
	aus := make([]GOPUnit, 0, n)
	for len(body) > 0 {
		if len(body) < 12 || len(aus) == n {
			return nil, fmt.Errorf("%w: GOP body has bytes beyond its %d access units", ErrBadFrame, n)
		}
		t := int64(binary.BigEndian.Uint64(body))
		l := binary.BigEndian.Uint32(body[8:])
		if uint64(l) > uint64(len(body)-12) {
			return nil, fmt.Errorf("%w: GOP access unit %d claims %d bytes, %d left", ErrBadFrame, len(aus)+1, l, len(body)-12)
		}
		if t <= 0 {
			return nil, fmt.Errorf("%w: GOP access unit %d has capture time %d", ErrBadFrame, len(aus)+1, t)
		}
		au := body[12 : 12+l]
		if err := CheckH264(au, len(aus) == 0); err != nil {
			return nil, fmt.Errorf("GOP access unit %d: %w", len(aus)+1, err)
		}
		aus = append(aus, GOPUnit{Time: t, AU: au})
		body = body[12+l:]
	}
	if len(aus) != n {
		return nil, fmt.Errorf("%w: GOP holds %d access units, %s says %d", ErrBadFrame, len(aus), HeaderCount, n)
	}
	return aus, nil
}

// Bounds of what is kept, and replied, of one layer's GOP: its access
// units (20 s at 30 fps) and their bytes.
const (
	MaxGOP      = 600
	MaxGOPBytes = 8 << 20
)

// GOPRun keeps one H.264 layer's access units since its last keyframe:
// what a viewer that joins mid-GOP needs to decode the next picture. A
// run that would outgrow MaxGOP units or MaxGOPBytes is dropped, and
// nothing is kept until the next keyframe starts a new one. T is
// whatever the keeper hands on (a GOPUnit, a message ready to send).
// The zero GOPRun is empty; it is not safe for concurrent use.
type GOPRun[T any] struct {
	units []T
	bytes int
}

// Add adds u, an access unit of size bytes, key if it is a keyframe.
// It reports whether u was kept: not when no keyframe leads to it, or
// when the run would grow too long (which drops the run).
func (r *GOPRun[T]) Add(u T, key bool, size int) bool {
	if key {
		r.Reset()
	} else if len(r.units) == 0 {
		return false
	}
	if len(r.units) >= MaxGOP || r.bytes+size > MaxGOPBytes {
		r.Reset()
		return false
	}
	r.units = append(r.units, u)
	r.bytes += size
	return true
}

// Units returns the run, keyframe first; it is valid until the next Add
// or Reset.
func (r *GOPRun[T]) Units() []T { return r.units }

// Bytes returns the size of the run's access units.
func (r *GOPRun[T]) Bytes() int { return r.bytes }

// Reset empties the run, letting go of what it held.
func (r *GOPRun[T]) Reset() {
	clear(r.units)
	r.units, r.bytes = r.units[:0], 0
}

// GOPFrame is one access unit of a GOP reply, with what the reply says
// of it.
type GOPFrame struct {
	Meta FrameMeta
	AU   []byte
}

// ParseGOP checks a GOP reply, its headers h and its body, and returns its
// access units, which alias body, each with its metadata: numbered on from
// the reply's HeaderSeq, its own capture time, the reply's size, the first
// a keyframe.
func ParseGOP(h nats.Header, body []byte) ([]GOPFrame, error) {
	if ct := h.Get(HeaderContentType); ct != ContentTypeGOP {
		return nil, fmt.Errorf("%w: GOP reply with %s %q", ErrBadFrame, HeaderContentType, ct)
	}
	n, err := strconv.Atoi(h.Get(HeaderCount))
	if err != nil {
		return nil, fmt.Errorf("%w: GOP reply with %s %q", ErrBadFrame, HeaderCount, h.Get(HeaderCount))
	}
	units, err := SplitGOP(body, n)
	if err != nil {
		return nil, err
	}
	m := FrameMeta{Codec: CodecH264}
	if err := parseStamp(h, &m); err != nil {
		return nil, err
	}
	if m.Seq > math.MaxUint64-uint64(n) {
		return nil, fmt.Errorf("%w: GOP reply numbers overflow: %s %d and %d access units", ErrBadFrame, HeaderSeq, m.Seq, n)
	}
	out := make([]GOPFrame, n)
	for i, u := range units {
		out[i].Meta, out[i].AU = m, u.AU
		out[i].Meta.Seq += uint64(i)
		out[i].Meta.Time = u.Time
		out[i].Meta.Key = i == 0
	}
	return out, nil
}
