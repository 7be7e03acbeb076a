package web

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vidhub/vidhub/protocol"
)

// WireVersion is the version byte that starts every binary WebSocket
// message of the gateway. Version 2 added the flags byte (codec and
// keyframe), for H.264.
const WireVersion = 2

// Size codes on the wire: the layer's size; the codec flag says which
// of the two layers of that size it is.
const (
	wireFull  = 0 // hi, h264
	wireSmall = 1 // lo, h264lo
)

// Flags on the wire.
const (
	wireFlagH264 = 1 << 0 // the body is an H.264 access unit (else a JPEG)
	wireFlagKey  = 1 << 1 // a keyframe: always set for JPEG
	wireFlags    = wireFlagH264 | wireFlagKey
)

// wireFixed is the size of a frame header without the participant name:
// version, layer, flags, name length, seq, time, width, height.
const wireFixed = 1 + 1 + 1 + 1 + 8 + 8 + 2 + 2

// wireSeqAt is the offset of seq in a message whose name is n bytes.
func wireSeqAt(n int) int { return 4 + n }

// MaxWireHeader is the largest header before the body of a frame message.
const MaxWireHeader = wireFixed + protocol.MaxNameLen

// ErrBadMessage is returned (wrapped) for a WebSocket message that breaks
// the gateway's framing.
var ErrBadMessage = errors.New("bad websocket message")

// WireFrame is one frame as it travels over a gateway WebSocket, in either
// direction. Every integer is big-endian:
//
//	offset  size  field
//	0       1     version, WireVersion (2)
//	1       1     size: 0 = full (hi, h264), 1 = small (lo, h264lo)
//	2       1     flags: bit 0 (1) H.264, else JPEG; bit 1 (2) keyframe,
//	              always set for JPEG; the other bits 0
//	3       1     N, the length of the participant name (0 to 64)
//	4       N     participant name, ASCII (A-Z a-z 0-9 _ -)
//	4+N     8     seq, uint64, per participant and layer, from 1
//	12+N    8     capture time, int64 Unix nanoseconds
//	20+N    2     width in pixels, uint16
//	22+N    2     height in pixels, uint16
//	24+N    rest  one complete JPEG (FF D8 ... FF D9), or one H.264
//	              access unit, Annex B (a keyframe with SPS and PPS
//	              ahead of its IDR slice)
//
// The layer is the size and the codec: full JPEG is hi, small H.264 is
// h264lo. From the gateway to a browser the name is always set. From a
// browser that publishes it is empty or the socket's own name; the
// gateway renumbers seq itself.
type WireFrame struct {
	Participant string
	Layer       protocol.Layer
	// Meta's Codec is the Layer's; Key is always true for JPEG.
	Meta protocol.FrameMeta
	Body []byte
}

// AppendWire appends the message for f to b. It checks nothing: callers
// pass names and metadata that were validated when they were received.
func AppendWire(b []byte, f WireFrame) []byte {
	size := byte(wireFull)
	if f.Layer.Small() {
		size = wireSmall
	}
	flags := byte(0)
	if f.Layer.Codec() == protocol.CodecH264 {
		flags |= wireFlagH264
	}
	if f.Meta.Key || f.Layer.Codec() == protocol.CodecJPEG {
		flags |= wireFlagKey
	}
	b = append(b, WireVersion, size, flags, byte(len(f.Participant)))
	b = append(b, f.Participant...)
	b = binary.BigEndian.AppendUint64(b, f.Meta.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Meta.Time))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Meta.Width))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Meta.Height))
	return append(b, f.Body...)
}

// wireLayer reads the layer of a message AppendWire made (b is at least
// wireFixed bytes).
func wireLayer(b []byte) protocol.Layer {
	c := protocol.CodecJPEG
	if b[2]&wireFlagH264 != 0 {
		c = protocol.CodecH264
	}
	if b[1] == wireSmall {
		return protocol.Lo.As(c)
	}
	return protocol.Hi.As(c)
}

// ParseWire parses and checks one binary message. The body aliases b.
// Seq and time may be zero (a browser leaves numbering to the gateway);
// the size must be within protocol.MaxDimension, a JPEG body must carry
// the SOI and EOI markers, and an H.264 body must pass protocol.CheckH264
// (a keyframe flag on every IDR access unit, and only there).
func ParseWire(b []byte) (WireFrame, error) {
	if len(b) < 4 {
		return WireFrame{}, fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrBadMessage, len(b))
	}
	if b[0] != WireVersion {
		return WireFrame{}, fmt.Errorf("%w: version %d, want %d (reload the page)", ErrBadMessage, b[0], WireVersion)
	}
	if b[1] != wireFull && b[1] != wireSmall {
		return WireFrame{}, fmt.Errorf("%w: size code %d, want 0 (full: hi, h264) or 1 (small: lo, h264lo)", ErrBadMessage, b[1])
	}
	flags := b[2]
	if flags&^wireFlags != 0 {
		return WireFrame{}, fmt.Errorf("%w: flags %#x, want bit 0 (H.264) and bit 1 (keyframe) only", ErrBadMessage, flags)
	}
	if flags&wireFlagH264 == 0 && flags&wireFlagKey == 0 {
		return WireFrame{}, fmt.Errorf("%w: a JPEG frame without the keyframe flag: every JPEG is one", ErrBadMessage)
	}
	f := WireFrame{Layer: wireLayer(b)}
	f.Meta.Codec = f.Layer.Codec()
	f.Meta.Key = flags&wireFlagKey != 0
	n := int(b[3])
	if n > protocol.MaxNameLen {
		return WireFrame{}, fmt.Errorf("%w: name length %d, limit %d", ErrBadMessage, n, protocol.MaxNameLen)
	}
	if len(b) < wireFixed+n {
		return WireFrame{}, fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrBadMessage, len(b))
	}
	if n > 0 {
		f.Participant = string(b[4 : 4+n])
		if err := protocol.ValidParticipant(f.Participant); err != nil {
			return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
		}
	}
	p := b[wireSeqAt(n):]
	f.Meta.Seq = binary.BigEndian.Uint64(p)
	f.Meta.Time = int64(binary.BigEndian.Uint64(p[8:]))
	f.Meta.Width = int(binary.BigEndian.Uint16(p[16:]))
	f.Meta.Height = int(binary.BigEndian.Uint16(p[18:]))
	f.Body = p[20:]
	if _, _, err := protocol.ParseSize(protocol.FormatSize(f.Meta.Width, f.Meta.Height)); err != nil {
		return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if f.Meta.Time < 0 {
		return WireFrame{}, fmt.Errorf("%w: negative capture time", ErrBadMessage)
	}
	var err error
	if f.Meta.Codec == protocol.CodecH264 {
		err = protocol.CheckH264(f.Body, f.Meta.Key)
	} else {
		err = protocol.CheckJPEG(f.Body)
	}
	if err != nil {
		return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return f, nil
}
