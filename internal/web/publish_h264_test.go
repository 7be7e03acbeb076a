package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// pubClient is a publishing socket driven by a test, as a page would.
type pubClient struct {
	c    *websocket.Conn
	msgs chan pubMsg // the gateway's text messages after the hello
	done chan struct{}
	err  error // why reading ended, once done is closed
}

// pubMsg is any text message the gateway sends a publishing page.
type pubMsg struct {
	Type   string           `json:"type"`
	Layer  protocol.Layer   `json:"layer"`
	JPEG   []protocol.Layer `json:"jpeg"`
	Codecs []string         `json:"codecs"`
	at     time.Time
}

// dialPublisher opens a publishing socket as room/name and checks its
// hello offers H.264.
func dialPublisher(t *testing.T, ctx context.Context, base, room, name string) *pubClient {
	t.Helper()
	c := dial(t, ctx, base, "/ws/publish/"+room+"/"+name+"?fps=25")
	p := &pubClient{c: c, msgs: make(chan pubMsg, 64), done: make(chan struct{})}
	hello := make(chan pubMsg, 1)
	go func() {
		defer close(p.done)
		first := true
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				p.err = err
				return
			}
			var m pubMsg
			if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil {
				continue
			}
			m.at = time.Now()
			if first {
				hello <- m
				first = false
				continue
			}
			select {
			case p.msgs <- m:
			default:
			}
		}
	}()
	select {
	case m := <-hello:
		if m.Type != "hello" || !slices.Contains(m.Codecs, "h264") {
			t.Fatalf("hello %+v does not offer h264", m)
		}
	case <-p.done:
		t.Fatalf("no hello: %v", p.err)
	}
	return p
}

// declare sends a "layers" message.
func (p *pubClient) declare(t *testing.T, ctx context.Context, ls ...protocol.LayerInfo) {
	t.Helper()
	sendJSON(t, ctx, p.c, publishControl{Type: "layers", Layers: ls})
}

// frame sends one frame; a write error (the gateway closed) is the
// caller's to notice through closed.
func (p *pubClient) frame(ctx context.Context, l protocol.Layer, key bool, seq uint64, w, h int, body []byte) {
	_ = p.c.Write(ctx, websocket.MessageBinary, AppendWire(nil, WireFrame{Layer: l,
		Meta: protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: w, Height: h, Key: key}, Body: body}))
}

// next returns the next text message of type typ, skipping others.
func (p *pubClient) next(t *testing.T, typ string) pubMsg {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-p.msgs:
			if m.Type == typ {
				return m
			}
		case <-p.done:
			t.Fatalf("socket ended waiting for a %q message: %v", typ, p.err)
		case <-timeout:
			t.Fatalf("no %q message from the gateway", typ)
		}
	}
}

// closed waits for the gateway to close the socket and returns how.
func (p *pubClient) closed(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not close the socket")
		return nil
	}
}

var testH264 = protocol.LayerInfo{Layer: protocol.H264, Width: 64, Height: 48, Codec: "avc1.42E01F", Bitrate: 100_000}

// TestPublishH264Socket drives a publishing socket with H.264 as a page
// does: the gateway publishes each access unit with protocol v2's
// headers and its own continuous numbering, never a delta that does not
// continue a chain (the first frame, after a gap in the page's numbering)
// and asks the page for a keyframe then; it relays keyframe requests from
// the key subject (for declared layers, at most one per 300 ms), tells
// the page which JPEG layers the room views, and announces the H.264
// layer in presence with the declared codec string.
func TestPublishH264Socket(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, _ := protocol.NewAddress("studio", "cam")
	sub := hubtest.Connect(t, h.b.ClientURL())
	frames := make(chan *nats.Msg, 64)
	if _, err := sub.ChanSubscribe(a.FrameSubject(protocol.H264), frames); err != nil {
		t.Fatal(err)
	}
	var pres presenceLog
	if _, err := sub.Subscribe(a.PresenceSubject(), pres.add); err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()

	p := dialPublisher(t, ctx, h.url, "studio", "cam")
	if w := p.next(t, "want"); len(w.JPEG) != 0 {
		t.Errorf("want %v in a room where no one views JPEG", w.JPEG)
	}
	p.declare(t, ctx, protocol.LayerInfo{Layer: protocol.Hi, Width: 64, Height: 48}, protocol.LayerInfo{Layer: protocol.Lo, Width: 32, Height: 24}, testH264)

	// A delta first: not published, and the page is asked for a keyframe.
	p.frame(ctx, protocol.H264, false, 1, 64, 48, fakeAU(300, false))
	k1 := p.next(t, "key")
	if k1.Layer != protocol.H264 {
		t.Errorf("key request for %q, want h264", k1.Layer)
	}
	bodies := [][]byte{fakeAU(2000, true), fakeAU(300, false), fakeAU(2100, true), fakeAU(310, false), fakeAU(320, false)}
	p.frame(ctx, protocol.H264, true, 2, 64, 48, bodies[0])
	p.frame(ctx, protocol.H264, false, 3, 64, 48, bodies[1])
	// A gap in the page's numbering (4 never came): the deltas after it
	// are dropped until a keyframe, which the gateway asks for.
	p.frame(ctx, protocol.H264, false, 5, 64, 48, fakeAU(300, false))
	p.frame(ctx, protocol.H264, false, 6, 64, 48, fakeAU(300, false))
	k2 := p.next(t, "key")
	if d := k2.at.Sub(k1.at); d < keyAskEvery*3/4 {
		t.Errorf("two keyframe requests %v apart, want at least about %v", d, keyAskEvery)
	}
	p.frame(ctx, protocol.H264, true, 7, 64, 48, bodies[2])
	p.frame(ctx, protocol.H264, false, 8, 64, 48, bodies[3])
	p.frame(ctx, protocol.H264, false, 9, 64, 48, bodies[4])
	for i, want := range bodies {
		var m *nats.Msg
		select {
		case m = <-frames:
		case <-ctx.Done():
			t.Fatalf("frame %d not on NATS", i+1)
		}
		meta, err := protocol.ParseLayerFrame(protocol.H264, m.Header, m.Data)
		switch {
		case err != nil:
			t.Fatalf("frame %d: %v", i+1, err)
		case m.Header.Get(protocol.HeaderContentType) != protocol.ContentTypeH264:
			t.Errorf("frame %d: Content-Type %q", i+1, m.Header.Get(protocol.HeaderContentType))
		case meta.Seq != uint64(i+1) || !bytes.Equal(m.Data, want) || meta.Key != (i == 0 || i == 2) || meta.Width != 64 || meta.Height != 48:
			t.Errorf("frame %d: %+v, %d bytes; want seq %d, the %d bytes sent", i+1, meta, len(m.Data), i+1, len(want))
		}
	}
	if n := h.g.m.pubWaited.Load(); n != 3 {
		t.Errorf("%d deltas dropped, want 3 (the first, and the two after the gap)", n)
	}
	if n := metric(t, h.url, `vidhub_web_published_frames_total{layer="h264"}`); n != 5 {
		t.Errorf("published_frames_total h264 = %v, want 5", n)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		pr, _ := pres.last()
		li, ok := pr.Layer(protocol.H264)
		return ok && li.Codec == testH264.Codec && li.Bitrate == testH264.Bitrate && li.Width == 64 && li.FPS == 25 &&
			pr.Sends(protocol.Hi) && pr.Sends(protocol.Lo) && !pr.Sends(protocol.H264Lo)
	}, "presence does not announce h264 with its codec and the declared JPEG layers (and not the undeclared h264lo): %v",
		hubtest.Lazy(func() any { pr, _ := pres.last(); return pr }))

	// Keyframe requests from viewers: only for declared H.264 layers.
	ask := hubtest.Connect(t, h.b.ClientURL())
	for _, body := range []string{"h264lo", "bogus", "hi", "h264"} {
		if err := ask.Publish(a.KeySubject(), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if k := p.next(t, "key"); k.Layer != protocol.H264 {
		t.Errorf("relayed a request for %q", k.Layer)
	}

	// Someone views JPEG lo: the page is told, and again when it leaves.
	eve, _ := protocol.NewAddress("studio", "eve")
	beat := func(leaving bool) {
		b, _ := protocol.Presence{Role: protocol.RoleViewer, Views: []protocol.Layer{protocol.Lo}, Started: time.Unix(1, 0), Leaving: leaving}.Encode()
		if err := ask.Publish(eve.PresenceSubject(), b); err != nil {
			t.Fatal(err)
		}
	}
	beat(false)
	if w := p.next(t, "want"); !slices.Equal(w.JPEG, []protocol.Layer{protocol.Lo}) {
		t.Errorf("want %v while eve views lo", w.JPEG)
	}
	beat(true)
	if w := p.next(t, "want"); len(w.JPEG) != 0 {
		t.Errorf("want %v after eve left", w.JPEG)
	}
}

// TestPublishH264Hostile: a publishing socket that sends what is not
// H.264 as H.264, a keyframe without its parameter sets, a codec string
// that is not one, or frames its declaration does not cover is closed
// with a reason saying so, and nothing of it reaches NATS: no frame, no
// presence.
func TestPublishH264Hostile(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	var leaked []string
	spy := hubtest.Connect(t, h.b.ClientURL())
	if _, err := spy.Subscribe(protocol.RoomAll("lobby"), func(m *nats.Msg) {
		if strings.HasPrefix(m.Subject, protocol.RoomPrefix("lobby")+"mallory") {
			mu.Lock()
			leaked = append(leaked, m.Subject)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	marker := make(chan struct{}, 1)
	if _, err := spy.Subscribe("marker", func(*nats.Msg) { marker <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	_ = spy.Flush()

	noSPS := []byte{0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21, 0xA0}
	high := testH264
	high.Codec = "avc1.64001F"
	cases := []struct {
		name    string
		declare []protocol.LayerInfo // nil: none
		send    func(p *pubClient)
		code    websocket.StatusCode
		reason  string
	}{
		{"garbage claiming H.264", []protocol.LayerInfo{testH264}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, true, 1, 64, 48, []byte("this is not H.264 at all, just bytes"))
		}, websocket.StatusPolicyViolation, "start code"},
		{"start code then garbage", []protocol.LayerInfo{testH264}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, false, 1, 64, 48, append([]byte{0, 0, 1}, bytes.Repeat([]byte{0xFF}, 64)...))
		}, websocket.StatusPolicyViolation, "forbidden_zero_bit"},
		{"keyframe without SPS and PPS", []protocol.LayerInfo{testH264}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, true, 1, 64, 48, noSPS)
		}, websocket.StatusPolicyViolation, "lacks SPS and PPS"},
		{"IDR not marked a keyframe", []protocol.LayerInfo{testH264}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, false, 1, 64, 48, fakeAU(100, true))
		}, websocket.StatusPolicyViolation, "not marked"},
		{"bogus codec string", []protocol.LayerInfo{{Layer: protocol.H264, Width: 64, Height: 48, Codec: `avc1.42E01F","role":"viewer`}}, nil,
			websocket.StatusPolicyViolation, "H.264 codec string"},
		{"another codec's string", []protocol.LayerInfo{{Layer: protocol.H264Lo, Width: 64, Height: 48, Codec: "vp09.00.10.08"}}, nil,
			websocket.StatusPolicyViolation, "H.264 codec string"},
		{"codec string on a JPEG layer", []protocol.LayerInfo{{Layer: protocol.Hi, Width: 64, Height: 48, Codec: "avc1.42E01F"}}, nil,
			websocket.StatusPolicyViolation, "leave them out"},
		{"undeclared layer", nil, func(p *pubClient) {
			p.frame(ctx, protocol.H264, true, 1, 64, 48, fakeAU(100, true))
		}, websocket.StatusPolicyViolation, "has not declared"},
		{"another profile than declared", []protocol.LayerInfo{high}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, true, 1, 64, 48, fakeAU(100, true))
		}, websocket.StatusPolicyViolation, "profile"},
		{"another size than declared", []protocol.LayerInfo{testH264}, func(p *pubClient) {
			p.frame(ctx, protocol.H264, true, 1, 128, 96, fakeAU(100, true))
		}, websocket.StatusPolicyViolation, "declare the new size"},
		{"huge size", []protocol.LayerInfo{{Layer: protocol.H264, Width: 99999, Height: 48, Codec: "avc1.42E01F"}}, nil,
			websocket.StatusPolicyViolation, "each side"},
		{"text flood", nil, func(p *pubClient) {
			for range 3 * publishControlBurst {
				_ = p.c.Write(ctx, websocket.MessageText, []byte(`{"type":"layers","layers":[]}`))
			}
		}, websocket.StatusPolicyViolation, "over rate"},
		{"text that is no control message", nil, func(p *pubClient) {
			_ = p.c.Write(ctx, websocket.MessageText, []byte(`{"type":"streams"}`))
		}, websocket.StatusUnsupportedData, "binary frames"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := dialPublisher(t, ctx, h.url, "lobby", "mallory")
			if tc.declare != nil {
				p.declare(t, ctx, tc.declare...)
			}
			if tc.send != nil {
				tc.send(p)
			}
			err := p.closed(t)
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("closed with %v, want %v with a reason naming %q", err, tc.code, tc.reason)
			}
			// The name is free again once the gateway let go of it.
			hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.m.socketsNow[1].Load() == 0 }, "the socket is still open")
		})
	}
	// Whatever the gateway published is delivered before its marker.
	if err := h.nc.Publish("marker", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-marker:
	case <-ctx.Done():
		t.Fatal("no marker")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("hostile sockets reached NATS: %q", leaked)
	}
}

// auLog checks and counts the access units of one H.264 layer as a NATS
// subscriber gets them.
type auLog struct {
	layer protocol.Layer
	mu    sync.Mutex
	n     int
	bytes int
	last  protocol.FrameMeta
	keys  []time.Time // when each keyframe arrived
	times []time.Time // when each access unit arrived
	errs  []string
}

func (l *auLog) add(m *nats.Msg) {
	now := time.Now()
	meta, err := protocol.ParseLayerFrame(l.layer, m.Header, m.Data)
	l.mu.Lock()
	defer l.mu.Unlock()
	fail := func(format string, args ...any) {
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("%s frame %d: ", l.layer, l.n+1)+fmt.Sprintf(format, args...))
		}
	}
	switch {
	case err != nil:
		fail("%v", err)
		return
	case m.Header.Get(protocol.HeaderContentType) != protocol.ContentTypeH264:
		fail("Content-Type %q", m.Header.Get(protocol.HeaderContentType))
	case l.n == 0 && (!meta.Key || meta.Seq != 1):
		fail("the first frame is seq %d, key %v: want seq 1, a keyframe", meta.Seq, meta.Key)
	case l.n > 0 && meta.Seq != l.last.Seq+1:
		fail("seq %d after %d", meta.Seq, l.last.Seq)
	case meta.Key && protocol.CheckH264(m.Data, true) != nil:
		fail("keyframe without SPS and PPS ahead of its IDR")
	}
	if meta.Key {
		l.keys = append(l.keys, now)
	}
	l.times = append(l.times, now)
	l.n++
	l.bytes += len(m.Data)
	l.last = meta
}

func (l *auLog) state() (n int, last protocol.FrameMeta, keys []time.Time, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.last, slices.Clone(l.keys), slices.Clone(l.errs)
}

// longestGap is the longest time between two access units that arrived
// after since.
func (l *auLog) longestGap(since time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for i := 1; i < len(l.times); i++ {
		if l.times[i].After(since) {
			d = max(d, l.times[i].Sub(l.times[i-1]))
		}
	}
	return d
}

// pubLayerStats and pubStats are what the publish page measured
// (window.vidhubPublisher.stats()).
type pubLayerStats struct {
	Codec     string `json:"codec"`
	Size      string `json:"size"`
	Bitrate   int    `json:"bitrate"`
	Encoded   int    `json:"encoded"`
	Sent      int    `json:"sent"`
	Dropped   int    `json:"dropped"`
	Skipped   int    `json:"skipped"`
	Keys      int    `json:"keys"`
	Asked     int    `json:"asked"`
	Bytes     int    `json:"bytes"`
	Errors    int    `json:"errors"`
	LastError string `json:"lastError"`
}

type pubStats struct {
	Mode     string         `json:"mode"`
	FPS      int            `json:"fps"`
	Captured int            `json:"captured"`
	Seconds  float64        `json:"seconds"`
	Want     []string       `json:"want"`
	JPEGSent map[string]int `json:"jpegSent"`
	H264     pubLayerStats  `json:"h264"`
	H264Lo   pubLayerStats  `json:"h264lo"`
}

// TestBrowserPublishH264 publishes Chromium's fake camera from the
// publish page, which encodes H.264 with WebCodecs: a NATS subscriber
// gets both H.264 layers with protocol v2's headers, each starting at a
// keyframe with SPS and PPS, numbered without gaps; presence announces
// them with Constrained Baseline codec strings; a Go viewer decodes the
// stream without a picture from a broken chain; a keyframe request on
// the page's key subject brings a keyframe within a second; and the page
// encodes JPEG hi only while someone views it.
func TestBrowserPublishH264(t *testing.T) {
	ctx := browser(t)
	if !subscriber.DecodesH264() {
		t.Fatal("this build of the subscriber does not decode H.264: build with cgo and FFmpeg's libraries")
	}
	h := startHub(t, broker.Config{}, Config{})
	a, _ := protocol.NewAddress("studio", "webcam")
	sub := hubtest.Connect(t, h.b.ClientURL())
	logs := map[protocol.Layer]*auLog{protocol.H264: {layer: protocol.H264}, protocol.H264Lo: {layer: protocol.H264Lo}}
	for l, lg := range logs {
		if _, err := sub.Subscribe(a.FrameSubject(l), lg.add); err != nil {
			t.Fatal(err)
		}
	}
	var jpegHi atomic.Int64
	if _, err := sub.Subscribe(a.FrameSubject(protocol.Hi), func(m *nats.Msg) {
		if _, err := protocol.ParseLayerFrame(protocol.Hi, m.Header, m.Data); err == nil {
			jpegHi.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	var pres presenceLog
	if _, err := sub.Subscribe(a.PresenceSubject(), pres.add); err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()

	const fps = 15
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+fmt.Sprintf("/rooms/studio/publish?name=webcam&size=640x360&fps=%d&autostart=1", fps))); err != nil {
		t.Fatal(err)
	}
	stats := func() pubStats { return eval[pubStats](t, ctx, `window.vidhubPublisher.stats() || {}`) }
	lazy := hubtest.Lazy(func() any {
		return fmt.Sprintf("page: %q %+v", eval[string](t, ctx, `document.getElementById('notice').textContent`), stats())
	})
	hubtest.Eventually(t, 60*time.Second, func() bool {
		n1, _, _, _ := logs[protocol.H264].state()
		n2, _, _, _ := logs[protocol.H264Lo].state()
		return n1 >= 2*fps && n2 >= 2*fps
	}, "no H.264 from the page on both layers: %v", lazy)
	if s := stats(); s.Mode != "h264" {
		t.Fatalf("the page publishes in mode %q, want h264", s.Mode)
	}
	for l, size := range map[protocol.Layer]string{protocol.H264: "640x360", protocol.H264Lo: "320x180"} {
		n, last, keys, errs := logs[l].state()
		for _, e := range errs {
			t.Error(e)
		}
		if got := protocol.FormatSize(last.Width, last.Height); got != size {
			t.Errorf("%s is %s, want %s", l, got, size)
		}
		t.Logf("%s: %d access units, %d keyframes so far", l, n, len(keys))
	}
	codecRE := regexp.MustCompile(`^avc1\.42E0[0-9A-F]{2}$`)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		pr, _ := pres.last()
		hi, ok1 := pr.Layer(protocol.H264)
		lo, ok2 := pr.Layer(protocol.H264Lo)
		return ok1 && ok2 && codecRE.MatchString(hi.Codec) && codecRE.MatchString(lo.Codec) && hi.Bitrate > 0 && lo.Bitrate > 0 &&
			hi.Width == 640 && lo.Width == 320 && pr.Sends(protocol.Hi) && pr.Sends(protocol.Lo)
	}, "presence does not announce h264 and h264lo with Constrained Baseline codec strings, and the JPEG layers: %v",
		hubtest.Lazy(func() any { pr, _ := pres.last(); return pr }))

	// A Go viewer decodes it.
	room, err := subscriber.Join(hubtest.Connect(t, h.b.ClientURL()), subscriber.Config{Room: "studio", Name: "goviewer"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.Close()
	tile := func() subscriber.TileStats {
		for _, s := range room.Stats() {
			if s.Participant == "webcam" {
				return s
			}
		}
		return subscriber.TileStats{}
	}
	hubtest.Eventually(t, 60*time.Second, func() bool { ts := tile(); return ts.Frames >= 2*fps && ts.Keyframes >= 1 },
		"the Go viewer does not show the page's H.264: %v", hubtest.Lazy(func() any { return tile() }))

	// Encoding rate and bitrate, over a few seconds of video.
	s0, t0 := stats(), time.Now()
	n0 := map[protocol.Layer]int{}
	b0 := map[protocol.Layer]int{}
	for l, lg := range logs {
		lg.mu.Lock()
		n0[l], b0[l] = lg.n, lg.bytes
		lg.mu.Unlock()
	}
	hubtest.Eventually(t, 60*time.Second, func() bool { return stats().H264.Sent >= s0.H264.Sent+4*fps },
		"the page stopped sending h264: %v", lazy)
	s1, secs := stats(), time.Since(t0).Seconds()
	for l, ls := range map[protocol.Layer][2]pubLayerStats{protocol.H264: {s0.H264, s1.H264}, protocol.H264Lo: {s0.H264Lo, s1.H264Lo}} {
		d := s1.Seconds - s0.Seconds
		encFPS := float64(ls[1].Encoded-ls[0].Encoded) / d
		kbps := float64(ls[1].Bytes-ls[0].Bytes) * 8 / d / 1000
		lg := logs[l]
		lg.mu.Lock()
		natsFPS, natsKbps := float64(lg.n-n0[l])/secs, float64(lg.bytes-b0[l])*8/secs/1000
		lg.mu.Unlock()
		t.Logf("%s in Chromium: %s %s, encoded %.1f fps (camera at %d), %.0f kbit/s (target %d); on NATS %.1f fps, %.0f kbit/s; dropped %d, skipped %d, keyframes %d",
			l, ls[1].Codec, ls[1].Size, encFPS, fps, kbps, ls[1].Bitrate/1000, natsFPS, natsKbps, ls[1].Dropped, ls[1].Skipped, ls[1].Keys)
		if encFPS < 0.5*fps {
			t.Errorf("%s encodes at %.1f fps, want close to %d", l, encFPS, fps)
		}
		if ls[1].Errors > 0 {
			t.Errorf("%s: %d encoder errors: %s", l, ls[1].Errors, ls[1].LastError)
		}
	}

	// Keyframe requests: each brings a keyframe within a second. Each is
	// sent right after a keyframe arrived, when the next periodic one is
	// two seconds away.
	ask := hubtest.Connect(t, h.b.ClientURL())
	asked := stats().H264.Asked
	var worst time.Duration
	for range 3 {
		_, _, before, _ := logs[protocol.H264].state()
		at := time.Now()
		if err := ask.Publish(a.KeySubject(), []byte(protocol.H264)); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		hubtest.Eventually(t, 10*time.Second, func() bool {
			_, _, keys, _ := logs[protocol.H264].state()
			if len(keys) > len(before) {
				got = keys[len(before)]
				return true
			}
			return false
		}, "no keyframe after a keyframe request: %v", lazy)
		d := got.Sub(at)
		worst = max(worst, d)
		if d > time.Second {
			t.Errorf("a keyframe came %v after the request, want within a second", d)
		}
	}
	t.Logf("keyframe requests answered within %v", worst)
	if s := stats(); s.H264.Asked < asked+3 {
		t.Errorf("the page heard %d keyframe requests, want %d or more", s.H264.Asked-asked, 3)
	}

	// A backed-up socket: what the page cannot send it drops, and every
	// delta after it, up to a keyframe it forces at once. It never sends
	// a delta after a gap (the gateway would drop it:
	// published_h264_dropped). A keyframe came just now, so the next
	// periodic one is two seconds away: the stream resumes well before,
	// or the page did not force one.
	before, holdAt := stats(), time.Now()
	eval[any](t, ctx, `window.vidhubPublisher.hold(500)`)
	hubtest.Eventually(t, 20*time.Second, func() bool {
		s := stats()
		return s.H264.Dropped > before.H264.Dropped && s.H264.Sent >= before.H264.Sent+2*fps
	}, "the page dropped nothing while held, or did not resume: %v", lazy)
	held := stats()
	t.Logf("held 500 ms: h264 dropped %d, h264lo %d; then keyframes %d -> %d", held.H264.Dropped-before.H264.Dropped,
		held.H264Lo.Dropped-before.H264Lo.Dropped, before.H264.Keys, held.H264.Keys)
	if held.H264.Keys <= before.H264.Keys {
		t.Errorf("no keyframe after the drop")
	}
	if d := logs[protocol.H264].longestGap(holdAt); d > 1200*time.Millisecond {
		t.Errorf("h264 resumed %v after the last frame before the hold of 500 ms: the page did not force a keyframe", d)
	} else {
		t.Logf("h264 resumed %v after the last frame before the hold", d)
	}
	if n := h.g.m.pubWaited.Load(); n != 0 {
		t.Errorf("the page sent %d deltas after a gap in its chain", n)
	}

	// JPEG hi is encoded only while someone views it.
	// Its own view of the room (which takes JPEG lo while the room looks
	// empty) does not count, nor the Go viewer, which takes H.264.
	if w := stats().Want; len(w) != 0 {
		t.Fatalf("the page encodes JPEG %v while no one views it: %v", w, lazy)
	}
	jroom, err := subscriber.Join(hubtest.Connect(t, h.b.ClientURL()), subscriber.Config{Room: "studio", Name: "jpegviewer", Codec: protocol.CodecJPEG, Layer: subscriber.LayerHi})
	if err != nil {
		t.Fatal(err)
	}
	hi0 := jpegHi.Load()
	hubtest.Eventually(t, 20*time.Second, func() bool { return jpegHi.Load() >= hi0+fps },
		"no JPEG hi while a JPEG viewer views it: %v", lazy)
	jroom.Close()
	hubtest.Eventually(t, 20*time.Second, func() bool { return !slices.Contains(stats().Want, "hi") },
		"the page still encodes JPEG hi after its viewer left: %v", lazy)

	// What the Go viewer showed: the page's codec, no picture from a
	// broken chain.
	ts := tile()
	t.Logf("Go viewer: %+v", ts)
	if !strings.HasPrefix(ts.Codec, "avc1.") || ts.Layer != protocol.H264 {
		t.Errorf("the Go viewer shows codec %q layer %s, want avc1.* on h264", ts.Codec, ts.Layer)
	}
	if ts.CorruptShown != 0 || ts.DecodeErrors != 0 || ts.Bad != 0 {
		t.Errorf("the Go viewer: %d pictures from a broken chain, %d decode errors, %d bad frames; want none", ts.CorruptShown, ts.DecodeErrors, ts.Bad)
	}
	for l, lg := range logs {
		if _, _, _, errs := lg.state(); len(errs) > 0 {
			t.Errorf("%s: %q", l, errs)
		}
	}
}
