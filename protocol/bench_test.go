package protocol

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// Hot paths of every frame: the publisher sets headers, every viewer and
// the gateway parse the subject and the frame.

var benchJPEG = append(append([]byte{0xFF, 0xD8}, make([]byte, 40<<10)...), 0xFF, 0xD9)

func benchHeader() nats.Header {
	return FrameHeaders(FrameMeta{Seq: 123456, Time: 1_700_000_000_123_456_789, Width: 1280, Height: 720})
}

func BenchmarkHotFrameHeaderSetSteady(b *testing.B) {
	fh := NewFrameHeader()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = fh.Set(FrameMeta{Seq: uint64(i + 1), Time: 1_700_000_000_123_456_789 + int64(i), Width: 1280, Height: 720})
	}
}

func BenchmarkHotParseFrame(b *testing.B) {
	h := benchHeader()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrame(h, benchJPEG); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHotParseSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSubject("vidhub.lobby.alice-cam_1.hi"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHotFrameSubject(b *testing.B) {
	a, err := NewAddress("lobby", "alice")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = a.FrameSubject(Hi)
	}
}

// TestHotPathAllocs pins the allocations of the per-frame protocol work:
// a regression here costs every frame of every viewer.
func TestHotPathAllocs(t *testing.T) {
	h := benchHeader()
	fh := NewFrameHeader()
	var i uint64
	cases := []struct {
		name string
		max  float64
		fn   func()
	}{
		// Set formats two numbers (seq and time) into strings; the size
		// string is reused while the size does not change.
		{"FrameHeader.Set", 2, func() {
			i++
			fh.Set(FrameMeta{Seq: i, Time: 1_700_000_000_000_000_000 + int64(i), Width: 1280, Height: 720})
		}},
		{"ParseFrame", 0, func() {
			if _, err := ParseFrame(h, benchJPEG); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseSubject", 0, func() {
			if _, err := ParseSubject("vidhub.lobby.alice.hi"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(200, c.fn); got > c.max {
			t.Errorf("%s: %.1f allocations per frame, want at most %.0f", c.name, got, c.max)
		}
	}
}
