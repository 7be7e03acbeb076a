package web

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// fakeJPEG is n bytes that pass the gateway's JPEG check (SOI ... EOI):
// the gateway never decodes a frame, so its size is all that matters.
func fakeJPEG(n int) []byte {
	b := make([]byte, n)
	b[0], b[1], b[n-2], b[n-1] = 0xFF, 0xD8, 0xFF, 0xD9
	return b
}

// TestStalledViewerClosed: a browser that stops reading is disconnected
// once one write to it takes over WriteTimeout, and that is counted as
// refused "stalled"; a viewer of the same room that reads gets frames
// before, during and after, and stays connected.
func TestStalledViewerClosed(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{WriteTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Big frames fill the stalled socket's buffers (a few MB on loopback)
	// within seconds. The ticker sets the rate; nothing waits on it.
	nc := hubtest.Connect(t, h.b.ClientURL())
	cam, _ := protocol.NewAddress("slow", "cam")
	body := fakeJPEG(256 << 10)
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	defer func() { stopPub(); <-pubDone }()
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Second / 25)
		defer tick.Stop()
		hdr := protocol.NewFrameHeader()
		for seq := uint64(1); ; seq++ {
			select {
			case <-pubCtx.Done():
				return
			case <-tick.C:
			}
			meta := protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: 320, Height: 180}
			_ = nc.PublishMsg(&nats.Msg{Subject: cam.FrameSubject(protocol.Lo), Header: hdr.Set(meta), Data: body})
		}
	}()

	good := dial(t, ctx, h.url, "/ws/view/slow?presence=0")
	var got atomic.Int64
	goodEnded := make(chan error, 1)
	go func() {
		for {
			f, err := readFrame(ctx, good, nil)
			if err != nil {
				goodEnded <- err
				return
			}
			if f.Participant == "cam" {
				got.Add(1)
			}
		}
	}()
	hubtest.Eventually(t, 20*time.Second, func() bool { return got.Load() > 0 }, "the reading viewer got no frame")

	stuck, stuckName := dialViewer(t, ctx, h.url, "/ws/view/slow") // never read again until it is closed
	hubtest.Eventually(t, 10*time.Second, func() bool { return h.g.viewerNamed(stuckName) != nil }, "the stalled viewer did not register")
	before := got.Load()
	const stalled = `vidhub_web_refused_total{reason="stalled"}`
	hubtest.Eventually(t, 60*time.Second, func() bool { return metric(t, h.url, stalled) >= 1 },
		"a viewer that never reads was not closed as stalled (dropped %d)", h.g.m.dropped.Load())
	if h.g.viewerNamed(stuckName) != nil {
		t.Error("the stalled viewer is still registered after it was counted")
	}
	if n := got.Load(); n <= before {
		t.Errorf("the reading viewer got no frame while the other one stalled (%d before, %d after)", before, n)
	}

	// The stalled client finds its socket closed once it reads what the
	// buffers held.
	var err error
	for err == nil {
		_, _, err = stuck.Read(ctx)
	}
	if ctx.Err() != nil {
		t.Fatalf("the stalled socket was not closed: %v", err)
	}

	// The reader carries on, alone.
	after := got.Load()
	hubtest.Eventually(t, 30*time.Second, func() bool { return got.Load() >= after+20 },
		"the reading viewer stopped getting frames after the stall (%d, then %d)", after, got.Load())
	select {
	case err := <-goodEnded:
		t.Fatalf("the reading viewer was disconnected: %v", err)
	default:
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return h.g.m.socketsNow[0].Load() == 1 },
		"open view sockets: %d, want 1", h.g.m.socketsNow[0].Load())
	if n := metric(t, h.url, stalled); n != 1 {
		t.Errorf("%s = %v, want 1: only the stalled viewer", stalled, n)
	}
}

// controlCases are control messages and whether a viewing socket takes
// them; they seed FuzzControl too.
var controlCases = []struct {
	msg string
	ok  bool
}{
	{`{"hi":["alice"]}`, true},
	{`{"hi":["alice","bob_2","c-3"]}`, true},
	{`{"hi":[]}`, true},
	{`{"hi":null}`, true},
	{`{}`, true},
	{`null`, true},
	{`{"hi":["a","b","c","d","e","f","g","h"]}`, true},
	{`{"hi":["alice"],"other":1}`, true},
	{`{"hi":["a","b","c","d","e","f","g","h","i"]}`, false},
	{`{"hi":["a.b"]}`, false},
	{`{"hi":["*"]}`, false},
	{`{"hi":[">"]}`, false},
	{`{"hi":[""]}`, false},
	{`{"hi":["al ice"]}`, false},
	{`{"hi":["` + strings.Repeat("x", protocol.MaxNameLen+1) + `"]}`, false},
	{`{"hi":"alice"}`, false},
	{`{"hi":[1]}`, false},
	{`{"hi":["alice"]`, false},
	{`[]`, false},
	{`nonsense`, false},
	{``, false},
	{"{\"hi\":[\"\xff\"]}", false},
	{`{"hi":["alice"],"h264":["alice","bob"],"jpeg":false}`, true},
	{`{"h264":[]}`, true},
	{`{"h264":["a.b"]}`, false},
	{`{"h264":"alice"}`, false},
	{`{"jpeg":"no"}`, false},
	{`{"h264":[` + strings.Repeat(`"x",`, maxH264) + `"y"]}`, false},
}

func TestParseControl(t *testing.T) {
	for _, tc := range controlCases {
		hi, err := parseControl([]byte(tc.msg))
		if (err == nil) != tc.ok {
			t.Errorf("parseControl(%q) = %v, %v; want ok %t", tc.msg, hi, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadMessage) {
			t.Errorf("parseControl(%q): error %v is not ErrBadMessage", tc.msg, err)
		}
	}
	c, _ := parseControl([]byte(`{"hi":["bob","alice","bob"]}`))
	if !maps.Equal(c.hi, map[string]bool{"alice": true, "bob": true}) || len(c.h264) != 0 || !c.jpeg {
		t.Errorf("choice = %+v, want hi alice and bob, all in JPEG", c)
	}
	c, _ = parseControl([]byte(`{"hi":["bob"],"h264":["bob","carol"],"jpeg":false}`))
	if !maps.Equal(c.h264, map[string]bool{"bob": true, "carol": true}) || c.jpeg {
		t.Errorf("choice = %+v, want bob and carol in H.264, nobody in JPEG", c)
	}
}

// TestViewerLayers pins which layer a viewer takes each participant in,
// and which layers (feeds, presence) that adds up to.
func TestViewerLayers(t *testing.T) {
	tests := []struct {
		msg    string
		want   map[string]protocol.Layer // "" for none
		layers []protocol.Layer
	}{
		{`{}`, map[string]protocol.Layer{"a": protocol.Lo}, []protocol.Layer{protocol.Lo}},
		{`{"hi":["a"]}`, map[string]protocol.Layer{"a": protocol.Hi, "b": protocol.Lo}, []protocol.Layer{protocol.Hi, protocol.Lo}},
		{`{"hi":["a"],"h264":["a","b"]}`, map[string]protocol.Layer{"a": protocol.H264, "b": protocol.H264Lo, "c": protocol.Lo},
			[]protocol.Layer{protocol.Lo, protocol.H264, protocol.H264Lo}},
		{`{"hi":["a"],"h264":["a","b"],"jpeg":false}`, map[string]protocol.Layer{"a": protocol.H264, "b": protocol.H264Lo, "c": ""},
			[]protocol.Layer{protocol.H264, protocol.H264Lo}},
		{`{"hi":["c"],"h264":["b"],"jpeg":false}`, map[string]protocol.Layer{"b": protocol.H264Lo, "c": ""},
			[]protocol.Layer{protocol.H264Lo}},
		{`{"jpeg":false}`, map[string]protocol.Layer{"a": ""}, nil},
	}
	for _, tt := range tests {
		c, err := parseControl([]byte(tt.msg))
		if err != nil {
			t.Fatal(err)
		}
		v := &viewer{hi: c.hi, h264: c.h264, jpeg: c.jpeg}
		for p, want := range tt.want {
			got, ok := v.layerForLocked(p)
			if !ok {
				got = ""
			}
			if got != want {
				t.Errorf("%s: %s in %q, want %q", tt.msg, p, got, want)
			}
		}
		if got := v.layers(); !slices.Equal(got, tt.layers) {
			t.Errorf("%s: layers %v, want %v", tt.msg, got, tt.layers)
		}
	}
}

// FuzzControl feeds the view socket's message decoding anything: it must
// refuse with ErrBadMessage, ignore it, take a clock probe with a finite
// time, or return at most maxHi valid names, which encode and decode to
// the same set.
func FuzzControl(f *testing.F) {
	for _, tc := range controlCases {
		f.Add([]byte(tc.msg))
	}
	for _, msg := range []string{`{"type":"ping","t0":1795787398827.452}`, `{"type":"ping","t0":-1e308}`, `{"type":"ping"}`,
		`{"type":"ping","t0":"1"}`, `{"type":"pong","t0":1}`, `{"type":null,"hi":["a"]}`, `{"type":"ping","hi":["a.b"],"t0":0}`,
		`{"type":"key","name":"alice","layer":"h264"}`, `{"type":"key","name":"a.b","layer":"h264"}`, `{"type":"key","name":"alice","layer":"hi"}`,
		`{"type":"key","name":"alice","layer":"h264lo","room":"other"}`, `{"type":"key"}`} {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseViewMessage(b)
		switch {
		case err != nil && !errors.Is(err, ErrBadMessage):
			t.Fatalf("error %v is not ErrBadMessage", err)
		case err == nil && m.ping && (math.IsInf(m.t0, 0) || math.IsNaN(m.t0)):
			t.Fatalf("took a probe at time %v", m.t0)
		case err == nil && (m.ping || m.ignore || m.key) && m.choice != nil:
			t.Fatalf("a probe, request or ignored message set a choice %+v", m.choice)
		case err == nil && m.key && (protocol.ValidParticipant(m.keyName) != nil || m.keyLayer.Codec() != protocol.CodecH264):
			t.Fatalf("took a keyframe request for %q layer %q", m.keyName, m.keyLayer)
		}
		c, err := parseControl(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if len(c.hi) > maxHi || len(c.h264) > maxH264 {
			t.Fatalf("accepted %d names in hi, %d in h264", len(c.hi), len(c.h264))
		}
		for n := range c.hi {
			if protocol.ValidParticipant(n) != nil {
				t.Fatalf("accepted name %q", n)
			}
		}
		for n := range c.h264 {
			if protocol.ValidParticipant(n) != nil {
				t.Fatalf("accepted name %q", n)
			}
		}
		again, _ := json.Marshal(control{Hi: slices.Sorted(maps.Keys(c.hi)), H264: slices.Sorted(maps.Keys(c.h264)), JPEG: &c.jpeg})
		c2, err := parseControl(again)
		if err != nil || !maps.Equal(c.hi, c2.hi) || !maps.Equal(c.h264, c2.h264) || c.jpeg != c2.jpeg {
			t.Fatalf("%s decoded to %+v, re-encoded %s to %+v, %v", b, c, again, c2, err)
		}
	})
}
