package web

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vidhub/vidhub/protocol"
)

// WireVersion is the version byte that starts every binary WebSocket
// message of the gateway.
const WireVersion = 1

// Layer codes on the wire.
const (
	wireHi = 0
	wireLo = 1
)

// wireFixed is the size of a frame header without the participant name:
// version, layer, name length, seq, time, width, height.
const wireFixed = 1 + 1 + 1 + 8 + 8 + 2 + 2

// MaxWireHeader is the largest header before the JPEG of a frame message.
const MaxWireHeader = wireFixed + protocol.MaxNameLen

// ErrBadMessage is returned (wrapped) for a WebSocket message that breaks
// the gateway's framing.
var ErrBadMessage = errors.New("bad websocket message")

// WireFrame is one frame as it travels over a gateway WebSocket, in either
// direction. Every integer is big-endian:
//
//	offset  size  field
//	0       1     version, WireVersion (1)
//	1       1     layer: 0 = hi, 1 = lo
//	2       1     N, the length of the participant name (0 to 64)
//	3       N     participant name, ASCII (A-Z a-z 0-9 _ -)
//	3+N     8     seq, uint64, per participant and layer, from 1
//	11+N    8     capture time, int64 Unix nanoseconds
//	19+N    2     width in pixels, uint16
//	21+N    2     height in pixels, uint16
//	23+N    rest  one complete JPEG (FF D8 ... FF D9)
//
// From the gateway to a browser the name is always set. From a browser
// that publishes it is empty or the socket's own name; the gateway
// renumbers seq itself.
type WireFrame struct {
	Participant string
	Layer       protocol.Layer
	Meta        protocol.FrameMeta
	JPEG        []byte
}

// AppendWire appends the message for f to b. It checks nothing: callers
// pass names and metadata that were validated when they were received.
func AppendWire(b []byte, f WireFrame) []byte {
	l := byte(wireHi)
	if f.Layer == protocol.Lo {
		l = wireLo
	}
	b = append(b, WireVersion, l, byte(len(f.Participant)))
	b = append(b, f.Participant...)
	b = binary.BigEndian.AppendUint64(b, f.Meta.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Meta.Time))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Meta.Width))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Meta.Height))
	return append(b, f.JPEG...)
}

// ParseWire parses and checks one binary message. The JPEG aliases b.
// Seq and time may be zero (a browser leaves numbering to the gateway);
// the size must be within protocol.MaxDimension and the body must carry
// the JPEG SOI and EOI markers.
func ParseWire(b []byte) (WireFrame, error) {
	if len(b) < 3 {
		return WireFrame{}, fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrBadMessage, len(b))
	}
	if b[0] != WireVersion {
		return WireFrame{}, fmt.Errorf("%w: version %d, want %d", ErrBadMessage, b[0], WireVersion)
	}
	var f WireFrame
	switch b[1] {
	case wireHi:
		f.Layer = protocol.Hi
	case wireLo:
		f.Layer = protocol.Lo
	default:
		return WireFrame{}, fmt.Errorf("%w: layer code %d, want 0 (hi) or 1 (lo)", ErrBadMessage, b[1])
	}
	n := int(b[2])
	if n > protocol.MaxNameLen {
		return WireFrame{}, fmt.Errorf("%w: name length %d, limit %d", ErrBadMessage, n, protocol.MaxNameLen)
	}
	if len(b) < wireFixed+n {
		return WireFrame{}, fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrBadMessage, len(b))
	}
	if n > 0 {
		f.Participant = string(b[3 : 3+n])
		if err := protocol.ValidParticipant(f.Participant); err != nil {
			return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
		}
	}
	p := b[3+n:]
	f.Meta.Seq = binary.BigEndian.Uint64(p)
	f.Meta.Time = int64(binary.BigEndian.Uint64(p[8:]))
	f.Meta.Width = int(binary.BigEndian.Uint16(p[16:]))
	f.Meta.Height = int(binary.BigEndian.Uint16(p[18:]))
	f.JPEG = p[20:]
	if _, _, err := protocol.ParseSize(protocol.FormatSize(f.Meta.Width, f.Meta.Height)); err != nil {
		return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if f.Meta.Time < 0 {
		return WireFrame{}, fmt.Errorf("%w: negative capture time", ErrBadMessage)
	}
	if err := protocol.CheckJPEG(f.JPEG); err != nil {
		return WireFrame{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return f, nil
}
