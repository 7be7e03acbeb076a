package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// fakeAU is an H.264 access unit of about n bytes that passes
// protocol.CheckH264: SPS, PPS and an IDR slice for a keyframe, one
// non-IDR slice otherwise. The gateway never decodes, so its size and
// structure are all that matter to it.
func fakeAU(n int, key bool) []byte {
	var b []byte
	if key {
		b = append(b, 0, 0, 0, 1, 0x67, 0x42, 0xE0, 0x1F, 0xDA)
		b = append(b, 0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80)
		b = append(b, 0, 0, 0, 1, 0x65)
	} else {
		b = append(b, 0, 0, 0, 1, 0x41)
	}
	return append(b, bytes.Repeat([]byte{0xA5}, max(1, n-len(b)))...)
}

// fakeH264 is a publisher of synthetic H.264 access units on layer h264
// (keyframes only at the start and when asked, no more than once per
// publisher.KeyRequestEvery) that beats an H.264 publisher's presence and
// records the keyframe requests it hears.
type fakeH264 struct {
	addr protocol.Address
	mu   sync.Mutex
	reqs []keyReq
	keys atomic.Uint64 // keyframes sent
	sent atomic.Uint64
}

type keyReq struct {
	at    time.Time
	layer string
}

func (p *fakeH264) requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

// startFakeH264 runs a fakeH264 as room/name with frames of about size
// bytes at fps until ctx ends or the test does.
func startFakeH264(t *testing.T, ctx context.Context, url, room, name string, size int, fps float64) *fakeH264 {
	t.Helper()
	nc := hubtest.Connect(t, url)
	a, err := protocol.NewAddress(room, name)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeH264{addr: a}
	var wanted atomic.Bool
	sub, err := nc.Subscribe(a.KeySubject(), func(m *nats.Msg) {
		p.mu.Lock()
		p.reqs = append(p.reqs, keyReq{time.Now(), string(m.Data)})
		p.mu.Unlock()
		if string(m.Data) == string(protocol.H264) {
			wanted.Store(true)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; _ = sub.Unsubscribe() })
	key, delta := fakeAU(size, true), fakeAU(size, false)
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / fps))
		defer tick.Stop()
		beat := time.NewTicker(protocol.Beat / 2)
		defer beat.Stop()
		hdr := protocol.NewCodecHeader(protocol.CodecH264)
		pres := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(),
			Streams: []protocol.LayerInfo{{Layer: protocol.H264, Width: 640, Height: 360, FPS: fps, Codec: "avc1.42E01F"}}}
		announce := func() {
			b, _ := pres.Encode()
			_ = nc.Publish(a.PresenceSubject(), b)
		}
		announce()
		var lastKey time.Time
		for seq := uint64(1); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				announce()
				seq--
				continue
			case <-tick.C:
			}
			now := time.Now()
			isKey := seq == 1 || (wanted.Load() && now.Sub(lastKey) >= 300*time.Millisecond)
			body := delta
			if isKey {
				body, lastKey = key, now
				wanted.Store(false)
				p.keys.Add(1)
			}
			meta := protocol.FrameMeta{Seq: seq, Time: now.UnixNano(), Width: 640, Height: 360, Key: isKey}
			if nc.PublishMsg(&nats.Msg{Subject: a.FrameSubject(protocol.H264), Header: hdr.Set(meta), Data: body}) == nil {
				p.sent.Add(1)
			}
		}
	}()
	return p
}

// chainLog records the H.264 frames one socket got, and checks that each
// could be decoded: the first is a keyframe, and every later one is a
// keyframe or the next of the same layer.
type chainLog struct {
	mu     sync.Mutex
	frames []WireFrame // bodies not kept
	gaps   int         // jumps in seq, each at a keyframe
	err    error       // the first broken link
}

func (c *chainLog) add(f WireFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f.Body = nil
	if f.Meta.Codec != protocol.CodecH264 && c.err == nil {
		c.err = fmt.Errorf("frame %d is %s, want H.264", len(c.frames), f.Meta.Codec)
	}
	if n := len(c.frames); n == 0 {
		if !f.Meta.Key && c.err == nil {
			c.err = fmt.Errorf("the first frame (seq %d) is not a keyframe", f.Meta.Seq)
		}
	} else if prev := c.frames[n-1]; f.Layer != prev.Layer || f.Meta.Seq != prev.Meta.Seq+1 {
		if !f.Meta.Key && c.err == nil {
			c.err = fmt.Errorf("frame %d: %s seq %d after %s seq %d is not a keyframe: it cannot be decoded", n, f.Layer, f.Meta.Seq, prev.Layer, prev.Meta.Seq)
		}
		c.gaps++
	}
	c.frames = append(c.frames, f)
}

func (c *chainLog) state() (frames, gaps int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames), c.gaps, c.err
}

// h264Only is the control message of a page that takes cam in H.264,
// full size, and nobody in JPEG.
func h264Only(names ...string) control {
	no := false
	return control{Hi: names, H264: names, JPEG: &no}
}

// TestH264SkipToKeyframe: a socket that stops reading while an H.264
// publisher sends big frames falls behind; the gateway drops its frames
// up to a keyframe and asks the publisher for one (one request per
// keyAskEvery at most), so that once it reads again, every frame it gets
// can be decoded: after the frames the buffers held comes a keyframe,
// never a delta across the gap. A socket that reads meanwhile gets the
// stream unbroken.
func TestH264SkipToKeyframe(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{WriteTimeout: 2 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	// 256 KB at 25 fps fills a stalled socket's buffers within seconds.
	pub := startFakeH264(t, ctx, h.b.ClientURL(), "slow", "cam", 256<<10, 25)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	good := dial(t, ctx, h.url, "/ws/view/slow?presence=0")
	sendJSON(t, ctx, good, h264Only("cam"))
	goodLog := &chainLog{}
	wg.Go(func() {
		for {
			f, err := readFrame(ctx, good, nil)
			if err != nil {
				return
			}
			goodLog.add(f)
		}
	})

	stuck, stuckName := dialViewer(t, ctx, h.url, "/ws/view/slow")
	sendJSON(t, ctx, stuck, h264Only("cam"))
	stuckLog := &chainLog{}
	readSome := func(n int) {
		t.Helper()
		for range n {
			f, err := readFrame(ctx, stuck, nil)
			if err != nil {
				t.Fatalf("reading the stalled socket: %v", err)
			}
			stuckLog.add(f)
		}
	}
	readSome(5)
	sv := h.g.viewerNamed(stuckName)
	if sv == nil {
		t.Fatal("the stalled viewer is not registered")
	}
	if _, _, err := stuckLog.state(); err != nil {
		t.Fatalf("before the stall: %v", err)
	}

	// Stall: read nothing until the gateway drops frames of this socket
	// to wait for a keyframe, and asked the publisher for one since.
	reqs := pub.requests()
	goodN, _, _ := goodLog.state()
	hubtest.Eventually(t, time.Minute, func() bool {
		return sv.dropped.Load() > 0 && h.g.m.h264Waited.Load() > 0 && pub.requests() > reqs
	}, "a stalled socket did not make the gateway wait for a keyframe (dropped %v, waited %v, requests %v)",
		hubtest.Lazy(func() any { return sv.dropped.Load() }), hubtest.Lazy(func() any { return h.g.m.h264Waited.Load() }),
		hubtest.Lazy(func() any { return pub.requests() }))
	// Stay stalled for another second of video: the reader keeps going.
	hubtest.Eventually(t, time.Minute, func() bool {
		n, _, _ := goodLog.state()
		return n >= goodN+25
	}, "the reading socket got no frames while the other one stalled")

	// Resume: drain what the buffers held, then the gateway's skip must
	// show as a jump in seq at a keyframe.
	hubtest.Eventually(t, time.Minute, func() bool {
		readSome(1)
		_, gaps, err := stuckLog.state()
		return gaps > 0 || err != nil
	}, "the stalled socket saw no skip after it resumed")
	readSome(10) // and it goes on from there
	n, gaps, err := stuckLog.state()
	if err != nil {
		t.Fatalf("the stalled socket got a frame it cannot decode: %v", err)
	}
	t.Logf("stalled socket: %d frames, %d skips to a keyframe; gateway dropped %d for it", n, gaps, sv.dropped.Load())
	gn, ggaps, gerr := goodLog.state()
	if gerr != nil {
		t.Fatalf("the reading socket got a frame it cannot decode: %v", gerr)
	}
	t.Logf("reading socket: %d frames, %d skips; publisher sent %d frames, %d keyframes, heard %d requests",
		gn, ggaps, pub.sent.Load(), pub.keys.Load(), pub.requests())

	// One request per keyAskEvery at most, over all sockets.
	pub.mu.Lock()
	defer pub.mu.Unlock()
	for i := 1; i < len(pub.reqs); i++ {
		if d := pub.reqs[i].at.Sub(pub.reqs[i-1].at); d < keyAskEvery*3/4 {
			t.Errorf("keyframe requests %d and %d came %v apart, want about %v or more", i-1, i, d, keyAskEvery)
		}
		if pub.reqs[i].layer != string(protocol.H264) {
			t.Errorf("request %d asks for layer %q, want h264", i, pub.reqs[i].layer)
		}
	}
	if limit := int(time.Since(start)/keyAskEvery) + 1; len(pub.reqs) > limit {
		t.Errorf("%d keyframe requests in %v, want at most %d", len(pub.reqs), time.Since(start), limit)
	}
}

// TestH264KeyRequestsHostile: what browsers send as keyframe requests is
// checked and paced. Requests with bad names or layers, for a publisher
// of another room, or for one the socket does not take in H.264, reach no
// publisher and leave the socket open; a flood from several sockets
// reaches the publisher at most once per keyAskEvery; bytes that are not
// JSON close the socket; and no key subject but the watched publisher's
// ever sees a message.
func TestH264KeyRequestsHostile(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var seenMu sync.Mutex
	seen := map[string]int{} // subject and body of every key request
	spy := hubtest.Connect(t, h.b.ClientURL())
	if _, err := spy.Subscribe(protocol.Prefix+".*.*.key", func(m *nats.Msg) {
		seenMu.Lock()
		seen[m.Subject+" "+string(m.Data)]++
		seenMu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	_ = spy.Flush()
	cam := startFakeH264(t, ctx, h.b.ClientURL(), "lobby", "cam", 2000, 10)
	startFakeH264(t, ctx, h.b.ClientURL(), "lobby", "cam3", 2000, 10)
	startFakeH264(t, ctx, h.b.ClientURL(), "other", "cam2", 2000, 10)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		return h.g.dir.has("lobby", "cam", protocol.RolePublisher) && h.g.dir.has("other", "cam2", protocol.RolePublisher) &&
			h.g.dir.has("lobby", "cam3", protocol.RolePublisher)
	}, "the gateway did not hear the publishers' presence")

	socks := make([]*websocket.Conn, 3)
	for i := range socks {
		socks[i] = dial(t, ctx, h.url, "/ws/view/lobby?presence=0")
		sendJSON(t, ctx, socks[i], h264Only("cam"))
		f, err := readFrame(ctx, socks[i], nil)
		if err != nil || f.Participant != "cam" || !f.Meta.Key {
			t.Fatalf("socket %d: first frame %+v, %v; want a keyframe of cam", i, f.Meta, err)
		}
	}
	// answered sends a clock probe and waits for its answer: the gateway
	// reads a socket's messages in order, so all before it were handled
	// and the socket is still open.
	answered := func(c *websocket.Conn) error {
		sendJSON(t, ctx, c, ping{Type: "ping", T0: 1})
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return err
			}
			if typ == websocket.MessageText && strings.Contains(string(b), `"pong"`) {
				return nil
			}
		}
	}
	h.g.keys.prune(time.Now().Add(time.Hour)) // forget the gateway's own first requests
	before := cam.requests()
	bad := []string{
		`{"type":"key","name":"a.b","layer":"h264"}`,
		`{"type":"key","name":"*","layer":"h264"}`,
		`{"type":"key","name":">","layer":"h264lo"}`,
		`{"type":"key","name":"","layer":"h264"}`,
		`{"type":"key","name":"` + strings.Repeat("x", 65) + `","layer":"h264"}`,
		`{"type":"key","name":"cam","layer":"hi"}`,
		`{"type":"key","name":"cam","layer":"lo"}`,
		`{"type":"key","name":"cam","layer":"key"}`,
		`{"type":"key","name":"cam","layer":"presence"}`,
		`{"type":"key","name":"cam","layer":"h264.>"}`,
		`{"type":"key","name":"cam"}`,
		`{"type":"key","name":7,"layer":"h264"}`,
		`{"type":"key","name":["cam"],"layer":"h264"}`,
		`{"type":"key","name":"cam\u0000","layer":"h264"}`,
	}
	unwatched := []string{
		`{"type":"key","name":"cam2","layer":"h264"}`,                 // publishes in another room
		`{"type":"key","name":"cam2","layer":"h264","room":"other"}`,  // the socket's room is the only one
		`{"type":"key","name":"cam3","layer":"h264"}`,                 // in the room, not taken in H.264
		`{"type":"key","name":"nobody","layer":"h264"}`,               // not in the room
		`{"type":"key","name":"cam","layer":"h264lo"}`,                // cam is taken full size
		`{"type":"key","name":"gateway-00000000","layer":"h264"}`,     // not a publisher
		`{"type":"key","name":"cam","layer":"h264lo","room":"lobby"}`, // still the wrong layer
	}
	for _, m := range append(bad, unwatched...) {
		if err := socks[0].Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := answered(socks[0]); err != nil {
		t.Fatalf("the socket was closed for requests it should have ignored: %v", err)
	}
	if n := cam.requests(); n != before {
		t.Errorf("cam heard %d requests from bad or unwatched ones", n-before)
	}

	// A flood from every socket at once.
	start := time.Now()
	const flood = 1000
	var wg sync.WaitGroup
	req := []byte(`{"type":"key","name":"cam","layer":"h264"}`)
	for _, c := range socks {
		wg.Go(func() {
			for range flood {
				if c.Write(ctx, websocket.MessageText, req) != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for i, c := range socks {
		if err := answered(c); err != nil {
			t.Fatalf("socket %d was closed for a flood it should have ignored: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	got := cam.requests() - before
	if limit := int(elapsed/keyAskEvery) + 1; got < 1 || got > limit {
		t.Errorf("a flood of %d requests in %v reached the publisher %d times, want 1 to %d", 3*flood, elapsed, got, limit)
	}
	t.Logf("flood of %d requests in %v: %d reached the publisher", 3*flood, elapsed, got)
	for _, series := range []string{
		`vidhub_web_key_requests_total{result="bad"}`,
		`vidhub_web_key_requests_total{result="not_watched"}`,
		`vidhub_web_key_requests_total{result="socket_limited"}`,
		`vidhub_web_key_requests_total{result="limited"}`,
	} {
		if metric(t, h.url, series) < 1 {
			t.Errorf("%s not counted", series)
		}
	}
	if n := metric(t, h.url, `vidhub_web_key_requests_total{result="bad"}`); n != float64(len(bad)) {
		t.Errorf("bad requests counted %v, want %d", n, len(bad))
	}

	// Bytes that are not JSON end the socket, as before.
	if err := socks[1].Write(ctx, websocket.MessageText, []byte(`{"type":"key",`)); err != nil {
		t.Fatal(err)
	}
	var ce websocket.CloseError
	if err := answered(socks[1]); !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		t.Errorf("garbage: socket ended with %v, want a policy violation", err)
	}

	_ = spy.Flush()
	seenMu.Lock()
	defer seenMu.Unlock()
	for k := range seen {
		if k != "vidhub.lobby.cam.key h264" {
			t.Errorf("a key request went out as %q: only vidhub.lobby.cam.key h264 was asked for by a socket that takes it", k)
		}
	}
	b, _ := json.Marshal(seen)
	t.Logf("key requests on the broker: %s", b)
}

// TestGatewayReports: while a browser watches an H.264 publisher, the
// gateway, a receiver on the NATS side, sends the publisher receiver
// reports under its own participant name.
func TestGatewayReports(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reports := make(chan protocol.Report, 16)
	nc := hubtest.Connect(t, h.b.ClientURL())
	sub, err := nc.Subscribe(protocol.ParticipantReport("rr", "cam", protocol.AnyParticipant), func(m *nats.Msg) {
		if r, err := protocol.ParseReport(m.Subject, m.Data); err == nil && r.Frames > 0 {
			select {
			case reports <- r:
			default:
			}
		} else if err != nil {
			t.Errorf("bad report %q: %v", m.Data, err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	startFakeH264(t, ctx, h.b.ClientURL(), "rr", "cam", 1<<10, 25)
	c := dial(t, ctx, h.url, "/ws/view/rr?presence=0")
	sendJSON(t, ctx, c, h264Only("cam"))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := readFrame(ctx, c, nil); err != nil {
				return
			}
		}
	})
	for range 3 {
		select {
		case r := <-reports:
			if !strings.HasPrefix(r.From, "gateway-") || r.Layer != protocol.H264 || r.Bytes < r.Frames || r.Interval < 100 || r.Interval > 2000 {
				t.Errorf("report %+v: want one from the gateway on h264 over about 500 ms", r)
			}
		case <-ctx.Done():
			t.Fatal("no receiver report from the gateway within a minute")
		}
	}
}
