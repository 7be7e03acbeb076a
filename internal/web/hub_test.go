package web

import (
	"context"
	"fmt"
	"image/color"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestHostileFrames: a stock NATS client that may publish in a room sends
// garbage, truncated and non-JPEG bodies, broken headers and then a flood
// on the room's frame subjects while a real publisher runs. The gateway
// counts each one as a bad frame, never passes one on, and a WebSocket
// viewer keeps getting the real publisher's frames.
func TestHostileFrames(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 10, 320, 180)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A viewer taking alice in hi holds both of the room's feeds.
	c := dial(t, ctx, h.url, "/ws/view/lobby?presence=0")
	sendJSON(t, ctx, c, control{Hi: []string{"alice"}})
	var good atomic.Int64 // alice's hi frames
	ended := make(chan error, 1)
	go func() {
		for {
			f, err := readFrame(ctx, c, nil)
			if err == nil && f.Participant != "alice" {
				err = fmt.Errorf("a frame from %q reached the viewer", f.Participant)
			}
			if err != nil {
				ended <- err
				return
			}
			if f.Layer == protocol.Hi {
				good.Add(1)
			}
		}
	}()
	// A hi frame means both subscriptions are in place at the broker.
	hubtest.Eventually(t, 20*time.Second, func() bool { return good.Load() > 0 }, "no hi frame from alice")

	const bad = "vidhub_web_frames_bad_total"
	base := metric(t, h.url, bad)
	nc := hubtest.Connect(t, h.b.ClientURL())
	mallory, _ := protocol.NewAddress("lobby", "mallory")
	img := testJPEG(t, 32, 32, color.White)
	meta := protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 32, Height: 32}
	with := func(key, val string) nats.Header {
		hd := protocol.FrameHeaders(meta)
		if val == "" {
			delete(hd, key)
		} else {
			hd.Set(key, val)
		}
		return hd
	}
	lower := nats.Header{}
	for k, v := range protocol.FrameHeaders(meta) {
		lower[strings.ToLower(k)] = v
	}
	hostile := []struct {
		name string
		hdr  nats.Header
		body []byte
	}{
		{"garbage without headers", nil, []byte("\x00\x01garbage\xff")},
		{"a JPEG without headers", nil, img},
		{"empty body", protocol.FrameHeaders(meta), nil},
		{"truncated JPEG", protocol.FrameHeaders(meta), img[:len(img)-10]},
		{"only the SOI marker", protocol.FrameHeaders(meta), img[:2]},
		{"not a JPEG", protocol.FrameHeaders(meta), []byte("GIF89a\x01\x00\x01\x00 not a jpeg")},
		{"PNG content type", with(protocol.HeaderContentType, "image/png"), img},
		{"no content type", with(protocol.HeaderContentType, ""), img},
		{"no seq", with(protocol.HeaderSeq, ""), img},
		{"seq 0", with(protocol.HeaderSeq, "0"), img},
		{"seq not a number", with(protocol.HeaderSeq, "one"), img},
		{"negative time", with(protocol.HeaderTime, "-1"), img},
		{"no time", with(protocol.HeaderTime, ""), img},
		{"no size", with(protocol.HeaderSize, ""), img},
		{"size 0x0", with(protocol.HeaderSize, "0x0"), img},
		{"size too big", with(protocol.HeaderSize, "99999x1"), img},
		{"size not WxH", with(protocol.HeaderSize, "big"), img},
		{"lower-case header keys", lower, img},
	}
	for _, m := range hostile {
		if _, err := protocol.ParseFrame(m.hdr, m.body); err == nil {
			t.Fatalf("%s: the test's hostile frame is a good one", m.name)
		}
		for _, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
			if err := nc.PublishMsg(&nats.Msg{Subject: mallory.FrameSubject(l), Header: m.hdr, Data: m.body}); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := base + float64(2*len(hostile))
	hubtest.Eventually(t, 10*time.Second, func() bool { return metric(t, h.url, bad) == want },
		"%s = %v, want %v: each hostile frame counted once per layer", bad, metric(t, h.url, bad), want)

	// A flood on both layers, as fast as the client goes. The feeds'
	// pending limits may shed some of it before the gateway looks: those
	// the subscriptions count as dropped (alice's frames may be among
	// them, so the sum is a lower bound).
	const flood = 5000
	for i := range flood {
		l := protocol.Hi
		if i%2 == 1 {
			l = protocol.Lo
		}
		m := &nats.Msg{Subject: mallory.FrameSubject(l), Data: []byte{0xFF, 0xD8, byte(i), 0xFF, 0xD9}}
		if i%3 == 1 {
			m.Header, m.Data = protocol.FrameHeaders(meta), img[:len(img)/2]
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want += flood
	var dropped int
	hubtest.Eventually(t, 20*time.Second, func() bool {
		dropped = h.g.hub.dropped(feedKey{"lobby", protocol.Hi}) + h.g.hub.dropped(feedKey{"lobby", protocol.Lo})
		return metric(t, h.url, bad)+float64(dropped) >= want
	}, "%s = %v with %d dropped, want %v", bad, metric(t, h.url, bad), dropped, want)
	t.Logf("flood: %d of %d messages shed by the pending limit", dropped, flood)

	// The viewer keeps getting alice, and nothing else.
	after := good.Load()
	hubtest.Eventually(t, 20*time.Second, func() bool { return good.Load() >= after+10 },
		"the viewer stopped getting alice's frames after the flood (%d, then %d)", after, good.Load())
	select {
	case err := <-ended:
		t.Fatalf("viewer: %v", err)
	default:
	}
	if n := metric(t, h.url, bad); n > want {
		t.Errorf("%s = %v, more than the %v hostile frames: good frames counted as bad", bad, n, want)
	}
	if n := metric(t, h.url, `vidhub_web_frames_in_total{layer="hi"}`); n < float64(after+10) {
		t.Errorf("frames in (hi) = %v, fewer than the viewer got", n)
	}
}

// dropped is how many messages the feed of k's subscription shed at its
// pending limit, 0 when there is no such feed.
func (h *hub) dropped(k feedKey) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.feeds[k]
	if f == nil {
		return 0
	}
	n, _ := f.sub.Dropped()
	return n
}
