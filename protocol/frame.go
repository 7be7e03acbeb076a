package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names and values. NATS header keys are case-sensitive: these
// spellings are the protocol. HeaderKey and ContentTypeH264 are protocol
// v2's, on the H.264 layers only.
const (
	HeaderContentType = "Content-Type"
	HeaderSeq         = "Vidhub-Seq"
	HeaderTime        = "Vidhub-Time"
	HeaderSize        = "Vidhub-Size"
	HeaderKey         = "Vidhub-Key" // "1" on an H.264 keyframe (an IDR access unit)
	ContentTypeJPEG   = "image/jpeg"
	ContentTypeH264   = "video/h264"
)

// MaxDimension bounds the width and height a frame header may claim.
const MaxDimension = 16384

// ErrBadFrame is returned (wrapped) for a frame whose headers or body break
// the protocol.
var ErrBadFrame = errors.New("bad frame")

// FrameMeta is what the headers of a frame say about it.
type FrameMeta struct {
	Seq    uint64 // per stream (participant and layer), from 1
	Time   int64  // capture time, Unix nanoseconds
	Width  int
	Height int
	Codec  Codec // from Content-Type
	Key    bool  // a keyframe: always for JPEG, HeaderKey for H.264
}

// CaptureTime returns Time as a time.Time.
func (m FrameMeta) CaptureTime() time.Time { return time.Unix(0, m.Time) }

// FrameHeader is a reusable set of frame headers. A publisher keeps one per
// layer and calls Set before each publish, so the header map is built once.
type FrameHeader struct {
	h              nats.Header
	seq, tim, size []string
	key            []string
	lastW, lastH   int
}

// NewFrameHeader returns headers for JPEG frames.
func NewFrameHeader() *FrameHeader { return NewCodecHeader(CodecJPEG) }

// NewCodecHeader returns headers for frames coded with c.
func NewCodecHeader(c Codec) *FrameHeader {
	f := &FrameHeader{
		h:    nats.Header{},
		seq:  make([]string, 1),
		tim:  make([]string, 1),
		size: make([]string, 1),
	}
	f.h[HeaderContentType] = []string{ContentTypeJPEG}
	if c == CodecH264 {
		f.h[HeaderContentType] = []string{ContentTypeH264}
		f.key = []string{"1"}
	}
	f.h[HeaderSeq] = f.seq
	f.h[HeaderTime] = f.tim
	f.h[HeaderSize] = f.size
	return f
}

// Set fills the headers for m and returns them, ready for nats.Msg.Header.
// The returned map is reused by the next call.
func (f *FrameHeader) Set(m FrameMeta) nats.Header {
	f.seq[0] = strconv.FormatUint(m.Seq, 10)
	f.tim[0] = strconv.FormatInt(m.Time, 10)
	if m.Width != f.lastW || m.Height != f.lastH || f.size[0] == "" {
		f.size[0] = FormatSize(m.Width, m.Height)
		f.lastW, f.lastH = m.Width, m.Height
	}
	if f.key != nil {
		if m.Key {
			f.h[HeaderKey] = f.key
		} else {
			delete(f.h, HeaderKey)
		}
	}
	return f.h
}

// FrameHeaders returns a fresh header map for m (m.Codec's, JPEG if unset).
func FrameHeaders(m FrameMeta) nats.Header {
	return NewCodecHeader(m.Codec).Set(m)
}

// ParseFrameHeader reads and checks the headers of a frame.
func ParseFrameHeader(h nats.Header) (FrameMeta, error) {
	var m FrameMeta
	switch ct := h.Get(HeaderContentType); ct {
	case ContentTypeJPEG:
		m.Codec, m.Key = CodecJPEG, true
	case ContentTypeH264:
		m.Codec = CodecH264
		switch k := h.Get(HeaderKey); k {
		case "1":
			m.Key = true
		case "":
		default:
			return FrameMeta{}, fmt.Errorf("%w: %s is %q, want 1 or no header", ErrBadFrame, HeaderKey, k)
		}
	default:
		return FrameMeta{}, fmt.Errorf("%w: %s is %q, want %q or %q", ErrBadFrame, HeaderContentType, ct, ContentTypeJPEG, ContentTypeH264)
	}
	if err := parseStamp(h, &m); err != nil {
		return FrameMeta{}, err
	}
	return m, nil
}

// parseStamp reads and checks the headers that frames and GOP replies
// share: HeaderSeq, HeaderTime and HeaderSize.
func parseStamp(h nats.Header, m *FrameMeta) error {
	var err error
	if m.Seq, err = strconv.ParseUint(h.Get(HeaderSeq), 10, 64); err != nil || m.Seq == 0 {
		return fmt.Errorf("%w: %s is %q, want a number from 1", ErrBadFrame, HeaderSeq, h.Get(HeaderSeq))
	}
	if m.Time, err = strconv.ParseInt(h.Get(HeaderTime), 10, 64); err != nil || m.Time <= 0 {
		return fmt.Errorf("%w: %s is %q, want Unix nanoseconds", ErrBadFrame, HeaderTime, h.Get(HeaderTime))
	}
	if m.Width, m.Height, err = ParseSize(h.Get(HeaderSize)); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadFrame, HeaderSize, err)
	}
	return nil
}

// CheckJPEG checks that b looks like one complete JPEG: it starts with the
// SOI marker and ends with EOI. It does not decode it.
func CheckJPEG(b []byte) error {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return fmt.Errorf("%w: body is not a JPEG (no SOI marker)", ErrBadFrame)
	}
	if b[len(b)-2] != 0xFF || b[len(b)-1] != 0xD9 {
		return fmt.Errorf("%w: JPEG is truncated (no EOI marker)", ErrBadFrame)
	}
	return nil
}

// ParseFrame checks the headers and body of a frame message: a JPEG, or an
// H.264 access unit (see CheckH264).
func ParseFrame(h nats.Header, body []byte) (FrameMeta, error) {
	m, err := ParseFrameHeader(h)
	if err != nil {
		return m, err
	}
	if m.Codec == CodecH264 {
		return m, CheckH264(body, m.Key)
	}
	return m, CheckJPEG(body)
}

// ParseLayerFrame is ParseFrame for a frame that came on layer l: its
// codec must be l's.
func ParseLayerFrame(l Layer, h nats.Header, body []byte) (FrameMeta, error) {
	m, err := ParseFrame(h, body)
	if err == nil && m.Codec != l.Codec() {
		err = fmt.Errorf("%w: a %s frame on the %s layer, which carries %s", ErrBadFrame, m.Codec, l, l.Codec())
	}
	return m, err
}

// FormatSize formats a frame size as "WxH".
func FormatSize(w, h int) string {
	return strconv.Itoa(w) + "x" + strconv.Itoa(h)
}

// ParseSize parses "WxH", each between 1 and MaxDimension.
func ParseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(ws)
		if err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil || w < 1 || h < 1 || w > MaxDimension || h > MaxDimension {
		return 0, 0, fmt.Errorf("size %q is not WxH with each side 1 to %d (e.g. 1280x720)", s, MaxDimension)
	}
	return w, h, nil
}

// LoSize returns the size of the lo layer for a hi frame of w x h: LoWidth
// wide (never wider than the frame), the aspect ratio kept, even sides.
func LoSize(w, h int) (int, int) {
	lw := min(LoWidth, w)
	lh := max(1, h*lw/max(w, 1))
	if lw > 1 {
		lw &^= 1
	}
	if lh > 1 {
		lh &^= 1
	}
	return lw, lh
}
