//go:build cgo && !vidhub_lite

package subscriber_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

func h264Pattern(room, name string) publisher.Config {
	return publisher.Config{Room: room, Name: name, Source: "pattern", FPS: 30, Width: 320, Height: 180, Codec: protocol.CodecH264}
}

// TestH264Room checks that a viewer takes an H.264 publisher's H.264
// layer, decodes it, and reports the codec, its first frame and no
// corruption; and that it takes JPEG from a JPEG publisher in the same
// room, announcing the JPEG layer only because of it.
func TestH264Room(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	publish(t, b.ClientURL(), h264Pattern("mixed", "alice"))
	r := join(t, b.ClientURL(), subscriber.Config{Room: "mixed", Layer: subscriber.LayerHi, StatsEvery: 200 * time.Millisecond})
	var st subscriber.TileStats
	hubtest.Eventually(t, 20*time.Second, func() bool {
		if tl := tile(r, "alice"); tl != nil {
			st = tl.Stats()
		}
		return st.Frames >= 30 && strings.HasPrefix(st.Codec, "avc1.")
	}, "alice: no decoded frames: %+v", hubtest.Lazy(func() any { return st }))
	if !strings.HasPrefix(st.Codec, "avc1.") || st.Layer != protocol.H264 || st.FirstFrameMS < 0 || st.Keyframes < 1 ||
		st.CorruptShown != 0 || st.DecodeErrors != 0 || st.Width != 320 || st.Height != 180 {
		t.Errorf("alice's stats %#v: want an avc1 codec on layer h264, a first frame, a keyframe, 320x180 and no corruption", st)
	}

	// A JPEG-only publisher joins: the viewer shows it from hi.
	publish(t, b.ClientURL(), publisher.Config{Room: "mixed", Name: "bob", Source: "pattern", Codec: protocol.CodecJPEG})
	var bs subscriber.TileStats
	hubtest.Eventually(t, 20*time.Second, func() bool {
		if tl := tile(r, "bob"); tl != nil {
			bs = tl.Stats()
		}
		return bs.Frames >= 10
	}, "bob: no JPEG frames: %+v", hubtest.Lazy(func() any { return bs }))
	if bs.Codec != "jpeg" || bs.Layer != protocol.Hi {
		t.Errorf("bob's stats %+v: want jpeg on hi", bs)
	}
	if st := tile(r, "alice").Stats(); st.Layer != protocol.H264 {
		t.Errorf("alice switched to %s with a JPEG publisher in the room, want h264", st.Layer)
	}
}

// relay copies room src into room dst, dropping every dropEvery-th H.264
// access unit that is not a keyframe, and carries dst's keyframe requests
// back to src: a lossy link between publisher and viewer.
func relay(t *testing.T, url, src, dst string, dropEvery int) (dropped *atomic.Int64) {
	t.Helper()
	nc := hubtest.Connect(t, url)
	dropped = new(atomic.Int64)
	var n atomic.Int64
	sub, err := nc.Subscribe(protocol.RoomAll(src), func(m *nats.Msg) {
		s, err := protocol.ParseSubject(m.Subject)
		if err != nil || s.Key {
			return
		}
		if s.Layer.Codec() == protocol.CodecH264 && m.Header.Get(protocol.HeaderKey) == "" && n.Add(1)%int64(dropEvery) == 0 {
			dropped.Add(1)
			return
		}
		out := nats.NewMsg(protocol.RoomPrefix(dst) + strings.TrimPrefix(m.Subject, protocol.RoomPrefix(src)))
		out.Header, out.Data = m.Header, m.Data
		_ = nc.PublishMsg(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	keys, err := nc.Subscribe(protocol.ParticipantKey(dst, protocol.AnyParticipant), func(m *nats.Msg) {
		_ = nc.Publish(protocol.RoomPrefix(src)+strings.TrimPrefix(m.Subject, protocol.RoomPrefix(dst)), m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe(); _ = keys.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return dropped
}

// TestH264Loss checks latest decodable frame wins over a lossy link: a
// viewer that misses access units never shows a corrupted picture; it
// asks for keyframes and goes on showing frames.
func TestH264Loss(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	cfg := h264Pattern("src", "alice")
	cfg.KeyInt = time.Minute // recovery must come from keyframe requests
	pub := publish(t, b.ClientURL(), cfg)
	dropped := relay(t, b.ClientURL(), "src", "dst", 15)
	r := join(t, b.ClientURL(), subscriber.Config{Room: "dst", Layer: subscriber.LayerHi})
	var st subscriber.TileStats
	hubtest.Eventually(t, 30*time.Second, func() bool {
		if tl := tile(r, "alice"); tl != nil {
			st = tl.Stats()
		}
		return dropped.Load() >= 8 && st.Keyframes >= 6 && st.Frames >= 60
	}, "no recovery from loss: dropped %d, stats %+v", hubtest.Lazy(func() any { return dropped.Load() }), hubtest.Lazy(func() any { return st }))
	if st.CorruptShown != 0 {
		t.Errorf("corrupt_shown %d after %d access units were lost, want 0", st.CorruptShown, dropped.Load())
	}
	if st.Gaps == 0 || st.Waited == 0 {
		t.Errorf("stats %+v: the viewer saw no gap and waited for no keyframe", st)
	}
	if pub.Stats().KeyRequests == 0 {
		t.Error("the publisher heard no keyframe request")
	}
}

// TestDecoderCatchesGaps checks the second line of defence: with the gap
// gate off, access units after a loss reach the decoder, which refuses
// them (they refer to a picture it never got) instead of showing a
// corrupted one.
func TestDecoderCatchesGaps(t *testing.T) {
	subscriber.SetGateGaps(false)
	t.Cleanup(func() { subscriber.SetGateGaps(true) })
	b := hubtest.Broker(t, broker.Config{})
	cfg := h264Pattern("src", "alice")
	cfg.KeyInt = time.Minute
	publish(t, b.ClientURL(), cfg)
	relay(t, b.ClientURL(), "src", "dst", 15)
	r := join(t, b.ClientURL(), subscriber.Config{Room: "dst", Layer: subscriber.LayerHi})
	var st subscriber.TileStats
	hubtest.Eventually(t, 30*time.Second, func() bool {
		if tl := tile(r, "alice"); tl != nil {
			st = tl.Stats()
		}
		return st.DecodeErrors >= 3 && st.Frames >= 60
	}, "no decode errors without the gate: %+v", hubtest.Lazy(func() any { return st }))
	if st.CorruptShown != 0 {
		t.Errorf("corrupt_shown %d: the decoder showed pictures from a broken chain", st.CorruptShown)
	}
}

// TestReceiverReports checks that a viewer sends an H.264 publisher a
// receiver report about the layer it takes every ReportEvery: its name,
// the layer, frames and bytes received, no loss, and sane delays.
func TestReceiverReports(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	nc := hubtest.Connect(t, b.ClientURL())
	reports := make(chan protocol.Report, 64)
	sub, err := nc.Subscribe(protocol.ParticipantReport("rr", "alice", protocol.AnyParticipant), func(m *nats.Msg) {
		r, err := protocol.ParseReport(m.Subject, m.Data)
		if err != nil {
			t.Errorf("bad report %q: %v", m.Data, err)
			return
		}
		select {
		case reports <- r:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	publish(t, b.ClientURL(), h264Pattern("rr", "alice"))
	join(t, b.ClientURL(), subscriber.Config{Room: "rr", Name: "v1", Layer: subscriber.LayerHi})
	var got []protocol.Report
	deadline := time.After(20 * time.Second)
	for len(got) < 4 {
		select {
		case r := <-reports:
			if r.Frames > 0 {
				got = append(got, r)
			}
		case <-deadline:
			t.Fatalf("%d reports with frames in 20 s: %+v", len(got), got)
		}
	}
	for _, r := range got {
		if r.From != "v1" || r.Layer != protocol.H264 || r.Interval < 100 || r.Interval > 2000 || r.Bytes <= 0 ||
			r.Missed != 0 || r.DelayMin < 0 || r.DelayMax > 5000 || r.Frames > 60 {
			t.Errorf("report %+v: want one from v1 on h264 over about 500 ms, frames and bytes received, none missed, delays of 0 to 5 s", r)
		}
	}
}
