package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
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
