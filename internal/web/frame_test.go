package web

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

var tinyJPEG = []byte{0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9}

func TestWireRoundTrip(t *testing.T) {
	for _, f := range []WireFrame{
		{Participant: "alice", Layer: protocol.Hi, Meta: protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 1280, Height: 720}, JPEG: tinyJPEG},
		{Participant: "", Layer: protocol.Lo, Meta: protocol.FrameMeta{Seq: 0, Time: 0, Width: 320, Height: 180}, JPEG: tinyJPEG},
		{Participant: "x-_9", Layer: protocol.Lo, Meta: protocol.FrameMeta{Seq: 1<<64 - 1, Time: 1<<63 - 1, Width: protocol.MaxDimension, Height: 1}, JPEG: tinyJPEG},
	} {
		b := AppendWire(nil, f)
		if len(b) != wireFixed+len(f.Participant)+len(f.JPEG) {
			t.Errorf("%+v: %d bytes", f, len(b))
		}
		got, err := ParseWire(b)
		if err != nil {
			t.Fatalf("ParseWire(%+v): %v", f, err)
		}
		if got.Participant != f.Participant || got.Layer != f.Layer || got.Meta != f.Meta || !bytes.Equal(got.JPEG, f.JPEG) {
			t.Errorf("round trip: got %+v, want %+v", got, f)
		}
	}
}

// TestWireLayout pins the byte layout the README documents.
func TestWireLayout(t *testing.T) {
	b := AppendWire(nil, WireFrame{Participant: "ab", Layer: protocol.Lo,
		Meta: protocol.FrameMeta{Seq: 0x0102, Time: 0x0A0B, Width: 640, Height: 360}, JPEG: tinyJPEG})
	want := []byte{
		1, 1, 2, 'a', 'b',
		0, 0, 0, 0, 0, 0, 1, 2,
		0, 0, 0, 0, 0, 0, 0x0A, 0x0B,
		0x02, 0x80, 0x01, 0x68,
	}
	want = append(want, tinyJPEG...)
	if !bytes.Equal(b, want) {
		t.Errorf("layout:\n got % x\nwant % x", b, want)
	}
}

func TestParseWireRejects(t *testing.T) {
	good := func() []byte {
		return AppendWire(nil, WireFrame{Participant: "a", Layer: protocol.Hi, Meta: protocol.FrameMeta{Width: 2, Height: 2}, JPEG: tinyJPEG})
	}
	tests := []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:10] }},
		{"version", func(b []byte) []byte { b[0] = 2; return b }},
		{"layer", func(b []byte) []byte { b[1] = 7; return b }},
		{"name too long", func(b []byte) []byte { b[2] = 65; return b }},
		{"name past end", func(b []byte) []byte { b[2] = 60; return b[:30] }},
		{"bad name", func(b []byte) []byte { b[3] = '.'; return b }},
		{"zero width", func(b []byte) []byte { b[4+16], b[4+17] = 0, 0; return b }},
		{"huge height", func(b []byte) []byte { b[4+18], b[4+19] = 0xFF, 0xFF; return b }},
		{"negative time", func(b []byte) []byte { b[4+8] = 0x80; return b }},
		{"not jpeg", func(b []byte) []byte { b[4+20] = 'P'; return b }},
		{"truncated jpeg", func(b []byte) []byte { return b[:len(b)-1] }},
		{"no jpeg", func(b []byte) []byte { return b[:4+20] }},
	}
	for _, tt := range tests {
		_, err := ParseWire(tt.mod(good()))
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
	f.Add(AppendWire(nil, WireFrame{Participant: "alice", Layer: protocol.Hi, Meta: protocol.FrameMeta{Seq: 1, Time: 1, Width: 1, Height: 1}, JPEG: tinyJPEG}))
	f.Add(AppendWire(nil, WireFrame{Layer: protocol.Lo, Meta: protocol.FrameMeta{Width: 320, Height: 180}, JPEG: tinyJPEG}))
	f.Add([]byte{1, 0, 64})
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
		if protocol.CheckJPEG(w.JPEG) != nil || w.Meta.Width < 1 || w.Meta.Height < 1 || w.Meta.Time < 0 {
			t.Fatalf("accepted %+v", w)
		}
		again := AppendWire(nil, w)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs:\n% x\n% x", again, b)
		}
	})
}
