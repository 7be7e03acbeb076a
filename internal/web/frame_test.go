package web

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

var tinyJPEG = []byte{0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9}

// tinyKey and tinyDelta are H.264 access units as CheckH264 reads them
// (Annex B; SPS, PPS and an IDR slice; a non-IDR slice). They are not
// decodable: the gateway never decodes.
var (
	tinyKey   = []byte{0, 0, 0, 1, 0x67, 0x42, 0xE0, 0x1F, 0xDA, 0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80, 0, 0, 1, 0x65, 0x88, 0x84, 0x21}
	tinyDelta = []byte{0, 0, 0, 1, 0x41, 0x9A, 0x02, 0x03}
)

func jpegMeta(m protocol.FrameMeta) protocol.FrameMeta {
	m.Codec, m.Key = protocol.CodecJPEG, true
	return m
}

func h264Meta(m protocol.FrameMeta, key bool) protocol.FrameMeta {
	m.Codec, m.Key = protocol.CodecH264, key
	return m
}

func TestWireRoundTrip(t *testing.T) {
	for _, f := range []WireFrame{
		{Participant: "alice", Layer: protocol.Hi, Meta: jpegMeta(protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 1280, Height: 720}), Body: tinyJPEG},
		{Participant: "", Layer: protocol.Lo, Meta: jpegMeta(protocol.FrameMeta{Seq: 0, Time: 0, Width: 320, Height: 180}), Body: tinyJPEG},
		{Participant: "x-_9", Layer: protocol.Lo, Meta: jpegMeta(protocol.FrameMeta{Seq: 1<<64 - 1, Time: 1<<63 - 1, Width: protocol.MaxDimension, Height: 1}), Body: tinyJPEG},
		{Participant: "alice", Layer: protocol.H264, Meta: h264Meta(protocol.FrameMeta{Seq: 7, Time: time.Now().UnixNano(), Width: 1280, Height: 720}, true), Body: tinyKey},
		{Participant: "bob", Layer: protocol.H264Lo, Meta: h264Meta(protocol.FrameMeta{Seq: 8, Time: 1, Width: 320, Height: 180}, false), Body: tinyDelta},
		{Participant: "bob", Layer: protocol.H264Lo, Meta: h264Meta(protocol.FrameMeta{Seq: 9, Time: 1, Width: 320, Height: 180}, true), Body: tinyKey},
	} {
		b := AppendWire(nil, f)
		if len(b) != wireFixed+len(f.Participant)+len(f.Body) {
			t.Errorf("%+v: %d bytes", f, len(b))
		}
		got, err := ParseWire(b)
		if err != nil {
			t.Fatalf("ParseWire(%+v): %v", f, err)
		}
		if got.Participant != f.Participant || got.Layer != f.Layer || got.Meta != f.Meta || !bytes.Equal(got.Body, f.Body) {
			t.Errorf("round trip: got %+v, want %+v", got, f)
		}
	}
}

// TestWireLayout pins the byte layout the README documents.
func TestWireLayout(t *testing.T) {
	b := AppendWire(nil, WireFrame{Participant: "ab", Layer: protocol.Lo,
		Meta: protocol.FrameMeta{Seq: 0x0102, Time: 0x0A0B, Width: 640, Height: 360}, Body: tinyJPEG})
	want := []byte{
		2, 1, 2, 2, 'a', 'b',
		0, 0, 0, 0, 0, 0, 1, 2,
		0, 0, 0, 0, 0, 0, 0x0A, 0x0B,
		0x02, 0x80, 0x01, 0x68,
	}
	want = append(want, tinyJPEG...)
	if !bytes.Equal(b, want) {
		t.Errorf("JPEG layout:\n got % x\nwant % x", b, want)
	}
	for _, tt := range []struct {
		layer       protocol.Layer
		key         bool
		size, flags byte
		body        []byte
	}{
		{protocol.H264, true, 0, 3, tinyKey},
		{protocol.H264, false, 0, 1, tinyDelta},
		{protocol.H264Lo, true, 1, 3, tinyKey},
		{protocol.H264Lo, false, 1, 1, tinyDelta},
		{protocol.Hi, false, 0, 2, tinyJPEG}, // every JPEG is a keyframe
	} {
		b := AppendWire(nil, WireFrame{Participant: "c", Layer: tt.layer, Meta: protocol.FrameMeta{Seq: 1, Time: 2, Width: 3, Height: 4, Key: tt.key}, Body: tt.body})
		want := append([]byte{2, tt.size, tt.flags, 1, 'c', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 4}, tt.body...)
		if !bytes.Equal(b, want) {
			t.Errorf("%s key %t layout:\n got % x\nwant % x", tt.layer, tt.key, b, want)
		}
		if wireLayer(b) != tt.layer {
			t.Errorf("%s: wireLayer says %s", tt.layer, wireLayer(b))
		}
	}
}

func TestParseWireRejects(t *testing.T) {
	good := func() []byte {
		return AppendWire(nil, WireFrame{Participant: "a", Layer: protocol.Hi, Meta: protocol.FrameMeta{Width: 2, Height: 2}, Body: tinyJPEG})
	}
	h264 := func(key bool, body []byte) func() []byte {
		return func() []byte {
			return AppendWire(nil, WireFrame{Participant: "a", Layer: protocol.H264, Meta: protocol.FrameMeta{Width: 2, Height: 2, Key: key}, Body: body})
		}
	}
	const body = 5 + 20 // offset of the body after the name "a"
	tests := []struct {
		name string
		good func() []byte
		mod  func([]byte) []byte
	}{
		{"empty", good, func([]byte) []byte { return nil }},
		{"short", good, func(b []byte) []byte { return b[:10] }},
		{"version 1", good, func(b []byte) []byte { b[0] = 1; return b }},
		{"version 3", good, func(b []byte) []byte { b[0] = 3; return b }},
		{"size", good, func(b []byte) []byte { b[1] = 7; return b }},
		{"unknown flag", good, func(b []byte) []byte { b[2] |= 4; return b }},
		{"JPEG not key", good, func(b []byte) []byte { b[2] = 0; return b }},
		{"name too long", good, func(b []byte) []byte { b[3] = 65; return b }},
		{"name past end", good, func(b []byte) []byte { b[3] = 60; return b[:30] }},
		{"bad name", good, func(b []byte) []byte { b[4] = '.'; return b }},
		{"zero width", good, func(b []byte) []byte { b[5+16], b[5+17] = 0, 0; return b }},
		{"huge height", good, func(b []byte) []byte { b[5+18], b[5+19] = 0xFF, 0xFF; return b }},
		{"negative time", good, func(b []byte) []byte { b[5+8] = 0x80; return b }},
		{"not jpeg", good, func(b []byte) []byte { b[body] = 'P'; return b }},
		{"truncated jpeg", good, func(b []byte) []byte { return b[:len(b)-1] }},
		{"no jpeg", good, func(b []byte) []byte { return b[:body] }},
		{"JPEG flagged H.264", good, func(b []byte) []byte { b[2] |= wireFlagH264; return b }},
		{"H.264 flagged JPEG", h264(true, tinyKey), func(b []byte) []byte { b[2] &^= wireFlagH264; return b }},
		{"keyframe not flagged", h264(true, tinyKey), func(b []byte) []byte { b[2] &^= wireFlagKey; return b }},
		{"delta flagged key", h264(false, tinyDelta), func(b []byte) []byte { b[2] |= wireFlagKey; return b }},
		{"no start code", h264(false, tinyDelta), func(b []byte) []byte { b[body+3] = 7; return b }},
		{"forbidden bit", h264(false, tinyDelta), func(b []byte) []byte { b[body+4] |= 0x80; return b }},
		{"no slice", h264(false, tinyDelta), func(b []byte) []byte { b[body+4] = 0x06; return b }},
		{"no H.264", h264(false, tinyDelta), func(b []byte) []byte { return b[:body] }},
	}
	for _, tt := range tests {
		if _, err := ParseWire(tt.good()); err != nil {
			t.Fatalf("%s: the unmodified message is refused: %v", tt.name, err)
		}
		_, err := ParseWire(tt.mod(tt.good()))
		if !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err = %v, want ErrBadMessage", tt.name, err)
		}
	}
}

func TestFrameLimiter(t *testing.T) {
	b := frameLimiter(10)
	now := time.Unix(1000, 0)
	n := 0
	for range 100 {
		if b.AllowN(now, 1) {
			n++
		}
	}
	if n != 10 {
		t.Errorf("burst let %d through, want 10", n)
	}
	// 30 frames at 10 per second, spaced exactly: all pass.
	for i := range 30 {
		now = now.Add(100 * time.Millisecond)
		if !b.AllowN(now, 1) {
			t.Fatalf("frame %d at the allowed rate refused", i)
		}
	}
	// Twice the rate: about half refused.
	refused := 0
	for range 100 {
		now = now.Add(50 * time.Millisecond)
		if !b.AllowN(now, 1) {
			refused++
		}
	}
	if refused < 45 || refused > 55 {
		t.Errorf("at twice the rate %d of 100 refused, want about 50", refused)
	}
}

func FuzzParseWire(f *testing.F) {
	f.Add(AppendWire(nil, WireFrame{Participant: "alice", Layer: protocol.Hi, Meta: protocol.FrameMeta{Seq: 1, Time: 1, Width: 1, Height: 1}, Body: tinyJPEG}))
	f.Add(AppendWire(nil, WireFrame{Layer: protocol.Lo, Meta: protocol.FrameMeta{Width: 320, Height: 180}, Body: tinyJPEG}))
	f.Add(AppendWire(nil, WireFrame{Participant: "bob", Layer: protocol.H264, Meta: protocol.FrameMeta{Seq: 1, Time: 1, Width: 320, Height: 180, Key: true}, Body: tinyKey}))
	f.Add(AppendWire(nil, WireFrame{Participant: "bob", Layer: protocol.H264Lo, Meta: protocol.FrameMeta{Seq: 2, Time: 1, Width: 320, Height: 180}, Body: tinyDelta}))
	f.Add([]byte{2, 0, 2, 64})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWire(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if w.Participant != "" && protocol.ValidParticipant(w.Participant) != nil {
			t.Fatalf("accepted name %q", w.Participant)
		}
		var berr error
		if w.Layer.Codec() == protocol.CodecH264 {
			berr = protocol.CheckH264(w.Body, w.Meta.Key)
		} else {
			berr = protocol.CheckJPEG(w.Body)
		}
		if berr != nil || w.Meta.Codec != w.Layer.Codec() || w.Meta.Width < 1 || w.Meta.Height < 1 || w.Meta.Time < 0 {
			t.Fatalf("accepted %+v", w)
		}
		again := AppendWire(nil, w)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs:\n% x\n% x", again, b)
		}
	})
}
