package publisher

import (
	"context"
	"testing"

	"github.com/vidhub/vidhub/protocol"
)

// Hot paths of a publisher, per frame: capture into a pooled buffer, hand
// it over through the one-slot mailbox, encode hi and lo.

func BenchmarkHotPatternRead720p(b *testing.B) {
	s := newPatternSource("bench", DefaultWidth, DefaultHeight)
	b.ReportAllocs()
	for b.Loop() {
		f, err := s.Read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		f.release()
	}
}

func BenchmarkHotMailbox(b *testing.B) {
	var m mailbox[captured]
	m.init()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.put(captured{seq: uint64(i)})
		if _, ok := m.drain(); !ok {
			b.Fatal("empty mailbox")
		}
		select {
		case <-m.ready:
		default:
		}
	}
}

// BenchmarkHotEncodeLayers encodes one captured 720p frame as each layer,
// with this build's encoder (OpenCV with cgo, else the standard library).
func BenchmarkHotEncodeLayers(b *testing.B) {
	s := newPatternSource("bench", DefaultWidth, DefaultHeight)
	f, err := s.Read(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer f.release()
	loW, loH := protocol.LoSize(DefaultWidth, DefaultHeight)
	for _, l := range []struct {
		name string
		w, h int
	}{{"hi-1280x720", DefaultWidth, DefaultHeight}, {"lo-320x180", loW, loH}} {
		b.Run(l.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.encode(l.w, l.h, DefaultQuality, func(j []byte) error { b.SetBytes(int64(len(j))); return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCaptureHandoffAllocs pins the allocations of capture and hand-off:
// the pattern source reuses pooled frames and the mailbox allocates
// nothing, so a steady publisher's garbage is the encoder's alone.
func TestCaptureHandoffAllocs(t *testing.T) {
	if !inCleanProcess(t) {
		return
	}
	s := newPatternSource("bench", 320, 180)
	var m mailbox[captured]
	m.init()
	got := allocsPerCall(func() {
		f, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if old, replaced := m.put(captured{f: f}); replaced {
			old.f.release()
		}
		if c, ok := m.drain(); ok {
			c.f.release()
		}
		select {
		case <-m.ready:
		default:
		}
	})
	if got > 0 {
		t.Errorf("capture and hand-off: %.1f allocations per frame, want 0", got)
	}
}
