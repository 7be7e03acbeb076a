package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"image/jpeg"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestViewSocket: a browser-like client gets hello, the room's state and
// lo frames; asking for hi switches that publisher to hi through one new
// shared subscription, which ends when the last viewer leaves.
func TestViewSocket(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 15, 640, 360)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := dial(t, ctx, h.url, "/ws/view/lobby")
	var hello viewHello
	var state roomState
	gotState := false
	onText := func(b []byte) {
		var typ struct{ Type string }
		_ = json.Unmarshal(b, &typ)
		switch typ.Type {
		case "hello":
			_ = json.Unmarshal(b, &hello)
		case "room":
			var s roomState
			if json.Unmarshal(b, &s) == nil && len(s.Publishers) > 0 {
				state, gotState = s, true
			}
		}
	}
	for !gotState {
		f, err := readFrame(ctx, c, onText)
		if err != nil {
			t.Fatal(err)
		}
		if f.Layer != protocol.Lo || f.Participant != "alice" || f.Meta.Width != 320 || f.Meta.Height != 180 {
			t.Fatalf("before asking for hi got %s %s %dx%d", f.Participant, f.Layer, f.Meta.Width, f.Meta.Height)
		}
		if _, err := jpeg.DecodeConfig(bytes.NewReader(f.Body)); err != nil {
			t.Fatalf("frame is not a Body: %v", err)
		}
	}
	if hello.Room != "lobby" || hello.Version != WireVersion || !strings.HasPrefix(hello.Viewer, "web-") {
		t.Errorf("hello = %+v", hello)
	}
	if state.Publishers[0].Name != "alice" || len(state.Publishers[0].Layers) != 2 {
		t.Errorf("room state = %+v", state)
	}
	if n := metric(t, h.url, `vidhub_web_subscription_viewers{room="lobby",layer="hi"}`); n != -1 {
		t.Errorf("hi subscribed before anyone asked: %v", n)
	}

	sendJSON(t, ctx, c, control{Hi: []string{"alice"}})
	for {
		f, err := readFrame(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.Layer == protocol.Hi {
			if f.Meta.Width != 640 || f.Meta.Height != 360 || f.Meta.Seq == 0 {
				t.Errorf("hi frame %+v", f.Meta)
			}
			break
		}
	}
	if n := metric(t, h.url, `vidhub_web_subscription_viewers{room="lobby",layer="hi"}`); n != 1 {
		t.Errorf("hi feed viewers = %v, want 1", n)
	}
	// The viewer announced itself; the directory and /api/rooms show it.
	hubtest.Eventually(t, 15*time.Second, func() bool {
		return h.g.dir.has("lobby", hello.Viewer, protocol.RoleViewer)
	}, "viewer %s not in the directory", hello.Viewer)
	code, body := get(t, h.url+"/api/rooms")
	var rooms []protocol.RoomInfo
	if code != 200 || json.Unmarshal([]byte(body), &rooms) != nil || len(rooms) != 1 || len(rooms[0].Members) != 2 {
		t.Errorf("/api/rooms = %d %s", code, body)
	}

	_ = c.Close(websocket.StatusNormalClosure, "")
	hubtest.Eventually(t, 15*time.Second, func() bool { return len(h.g.hub.stats()) == 0 },
		"subscriptions left after the last viewer: %+v", h.g.hub.stats())
	hubtest.Eventually(t, 15*time.Second, func() bool {
		return !h.g.dir.has("lobby", hello.Viewer, protocol.RoleViewer)
	}, "viewer still present after leaving")
}

// TestOneSubscriptionPerRoomAndLayer: many viewers, one NATS subscription.
func TestOneSubscriptionPerRoomAndLayer(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	startPattern(t, h.b.ClientURL(), "r1", "alice", 10, 320, 180)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The directory subscribes to a new publisher's frames until its first
	// one arrives; count from after that, or its going looks like a viewer's.
	hubtest.Eventually(t, 15*time.Second, func() bool {
		return h.g.dir.has("r1", "alice", protocol.RolePublisher) && len(h.g.dir.probing()) == 0
	}, "alice's first frame never reached the directory")
	base := h.nc.NumSubscriptions()
	var conns []*websocket.Conn
	for range 5 {
		c := dial(t, ctx, h.url, "/ws/view/r1?presence=0")
		if _, err := readFrame(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if n := h.nc.NumSubscriptions() - base; n != 1 {
		t.Errorf("5 viewers hold %d subscriptions, want 1", n)
	}
	for _, c := range conns[:2] {
		sendJSON(t, ctx, c, control{Hi: []string{"alice"}})
	}
	hubtest.Eventually(t, 15*time.Second, func() bool { return h.nc.NumSubscriptions()-base == 2 },
		"want one lo and one hi subscription, have %d", h.nc.NumSubscriptions()-base)
	for _, c := range conns {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	hubtest.Eventually(t, 15*time.Second, func() bool { return h.nc.NumSubscriptions() == base },
		"subscriptions left: %d", h.nc.NumSubscriptions()-base)
}

// TestPublishSocket: frames a client sends come out on NATS with protocol
// headers, renumbered, with presence while it publishes and a leaving beat
// when it stops.
func TestPublishSocket(t *testing.T) {
	checkGoroutines(t)
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := hubtest.Connect(t, h.b.ClientURL())
	a, _ := protocol.NewAddress("chat", "carol")
	frames := make(chan *nats.Msg, 64)
	if _, err := sub.ChanSubscribe(a.FrameSubject(protocol.Hi), frames); err != nil {
		t.Fatal(err)
	}
	var pres presenceLog
	if _, err := sub.Subscribe(a.PresenceSubject(), pres.add); err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()

	c := dial(t, ctx, h.url, "/ws/publish/chat/carol?fps=12")
	typ, b, err := c.Read(ctx)
	var hello publishHello
	if err != nil || typ != websocket.MessageText || json.Unmarshal(b, &hello) != nil || hello.MaxBytes <= 0 || hello.Name != "carol" {
		t.Fatalf("hello: %v %s", err, b)
	}
	img := testJPEG(t, 64, 48, color.RGBA{200, 30, 30, 255})
	capture := time.Now().Add(-50 * time.Millisecond)
	for range 3 {
		msg := AppendWire(nil, WireFrame{Layer: protocol.Hi, Meta: protocol.FrameMeta{Seq: 99, Time: capture.UnixNano(), Width: 64, Height: 48}, Body: img})
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		var m *nats.Msg
		select {
		case m = <-frames:
		case <-ctx.Done():
			t.Fatal("no frame on NATS")
		}
		meta, err := protocol.ParseFrame(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Seq != uint64(i+1) || meta.Time != capture.UnixNano() || meta.Width != 64 || meta.Height != 48 || !bytes.Equal(m.Data, img) {
			t.Errorf("frame %d: %+v", i, meta)
		}
	}
	hubtest.Eventually(t, 15*time.Second, func() bool {
		p, _ := pres.last()
		return p.Role == protocol.RolePublisher && p.Sends(protocol.Hi) && p.Layers[0].FPS == 12
	}, "no publisher presence announcing hi at 12 fps")
	_ = c.Close(websocket.StatusNormalClosure, "")
	hubtest.Eventually(t, 15*time.Second, func() bool { p, _ := pres.last(); return p.Leaving },
		"no leaving beat after the socket closed")
}

// TestHostile: every bad request is refused with a reason that says what
// was wrong, and the gateway keeps serving.
func TestHostile(t *testing.T) {
	checkGoroutines(t)
	const maxPayload = 64 << 10
	h := startHub(t, broker.Config{MaxPayload: maxPayload}, Config{MaxPublishFPS: 5})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 10, 320, 180)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("bad names in URLs", func(t *testing.T) {
		for _, path := range []string{
			"/rooms/a.b", "/rooms/%2A", "/rooms/a%20b/publish", "/rooms/" + strings.Repeat("x", 65),
			"/api/rooms/x%3Ey", "/ws/view/a.b", "/ws/view/%3E", "/ws/publish/lobby/a*b", "/ws/publish/a.b/alice",
			"/ws/view/lobby?self=x.y", "/ws/view/lobby?self=%2A",
		} {
			code, body := get(t, h.url+path)
			if code != http.StatusBadRequest || !strings.Contains(body, protocol.NameRule) {
				t.Errorf("GET %s = %d %q, want 400 stating the rule", path, code, body)
			}
		}
		if code, body := get(t, h.url+"/ws/view/lobby?fps=abc"); code != 400 || !strings.Contains(body, "fps") {
			t.Errorf("bad fps: %d %q", code, body)
		}
	})

	t.Run("cross-origin upgrade", func(t *testing.T) {
		hdr := http.Header{"Origin": {"http://evil.example"}}
		_, resp, err := websocket.Dial(ctx, wsURL(h.url, "/ws/view/lobby"), &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin view socket: err %v, resp %v", err, resp)
		}
		_, resp, err = websocket.Dial(ctx, wsURL(h.url, "/ws/publish/lobby/mallory"), &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin publish socket: err %v, resp %v", err, resp)
		}
		// The gateway's own origin is fine.
		c, _, err := websocket.Dial(ctx, wsURL(h.url, "/ws/view/lobby"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {h.url}}})
		if err != nil {
			t.Fatalf("same-origin socket refused: %v", err)
		}
		_ = c.CloseNow()
	})

	img := testJPEG(t, 32, 32, color.White)
	frame := func(jpeg []byte) []byte {
		return AppendWire(nil, WireFrame{Layer: protocol.Hi, Meta: protocol.FrameMeta{Width: 32, Height: 32}, Body: jpeg})
	}
	big := func(n int) []byte {
		b := make([]byte, n)
		b[0], b[1], b[n-2], b[n-1] = 0xFF, 0xD8, 0xFF, 0xD9
		return b
	}
	pubTests := []struct {
		name   string
		send   func(c *websocket.Conn) error
		code   websocket.StatusCode
		reason string
	}{
		{"not a JPEG", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, frame([]byte("GIF89a not a jpeg at all")))
		}, websocket.StatusPolicyViolation, "not a JPEG"},
		{"truncated JPEG", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, frame(img[:len(img)-10]))
		}, websocket.StatusPolicyViolation, "truncated"},
		{"garbage", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte{9, 9, 9})
		}, websocket.StatusPolicyViolation, "bad websocket message"},
		{"text", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"hello":1}`))
		}, websocket.StatusUnsupportedData, "binary"},
		{"someone else's name", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, AppendWire(nil, WireFrame{Participant: "alice", Layer: protocol.Hi, Meta: protocol.FrameMeta{Width: 32, Height: 32}, Body: img}))
		}, websocket.StatusPolicyViolation, "publishes as"},
		{"just over the limit", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, frame(big(maxPayload-headerRoom+1)))
		}, websocket.StatusMessageTooBig, "over the limit"},
		{"far over the limit", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, frame(big(4*maxPayload)))
		}, websocket.StatusMessageTooBig, "read limited"},
		{"over rate", func(c *websocket.Conn) error {
			for range 50 {
				if err := c.Write(ctx, websocket.MessageBinary, frame(img)); err != nil {
					return err
				}
			}
			return nil
		}, websocket.StatusPolicyViolation, "over rate"},
	}
	for _, tt := range pubTests {
		t.Run(tt.name, func(t *testing.T) {
			// The websocket package closes an over-limit socket itself,
			// before the gateway's handler has let go of the name.
			hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.m.socketsNow[1].Load() == 0 }, "the last publishing socket is still open")
			c := dial(t, ctx, h.url, "/ws/publish/lobby/mallory")
			_ = tt.send(c) // the gateway may close while we write
			var err error
			for err == nil {
				_, _, err = c.Read(ctx)
			}
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("closed with %v, want %v with a reason naming %q", err, tt.code, tt.reason)
			}
		})
	}

	t.Run("bad control message", func(t *testing.T) {
		for _, msg := range []string{`nonsense`, `{"hi":["a.b"]}`, `{"hi":["a","b","c","d","e","f","g","h","i"]}`} {
			c := dial(t, ctx, h.url, "/ws/view/lobby?presence=0")
			_ = c.Write(ctx, websocket.MessageText, []byte(msg))
			var err error
			for err == nil {
				_, _, err = c.Read(ctx)
			}
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Errorf("control %q: closed with %v, want policy violation", msg, err)
			}
		}
	})

	t.Run("name taken", func(t *testing.T) {
		hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.dir.has("lobby", "alice", protocol.RolePublisher) },
			"alice not in the directory")
		_, resp, err := websocket.Dial(ctx, wsURL(h.url, "/ws/publish/lobby/alice"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
			t.Errorf("publishing as a present publisher: %v %v", err, resp)
		}
	})

	// Still serving: health, and a viewer gets frames.
	if code, body := get(t, h.url+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("healthz after hostile input: %d %q", code, body)
	}
	c := dial(t, ctx, h.url, "/ws/view/lobby?presence=0")
	if f, err := readFrame(ctx, c, nil); err != nil || f.Participant != "alice" {
		t.Fatalf("viewer after hostile input: %+v %v", f, err)
	}
	for _, series := range []string{`vidhub_web_refused_total{reason="bad_request"}`, `vidhub_web_refused_total{reason="over_rate"}`,
		`vidhub_web_refused_total{reason="too_big"}`, `vidhub_web_refused_total{reason="bad_frame"}`, `vidhub_web_refused_total{reason="upgrade"}`} {
		if metric(t, h.url, series) < 1 {
			t.Errorf("%s not counted", series)
		}
	}
}

// TestCloseTwice: Close ends every socket with "going away" (the page
// reconnects on it), joins every goroutine, and may be called again.
func TestCloseTwice(t *testing.T) {
	checkGoroutines(t)
	b := hubtest.Broker(t, broker.Config{})
	nc := hubtest.Connect(t, b.ClientURL())
	g, err := New(Config{Conn: nc, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	view := dial(t, ctx, g.URL(), "/ws/view/lobby")
	pub := dial(t, ctx, g.URL(), "/ws/publish/lobby/dave")
	if _, _, err := pub.Read(ctx); err != nil {
		t.Fatal(err)
	}
	// Read as a browser does, so the closing handshake completes.
	ended := make(chan error, 2)
	for _, c := range []*websocket.Conn{view, pub} {
		go func() {
			var err error
			for err == nil {
				_, _, err = c.Read(ctx)
			}
			ended <- err
		}()
	}
	g.Close()
	g.Close()
	for range 2 {
		if err := <-ended; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("socket closed with %v, want going away", err)
		}
	}
	if err := g.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if _, err := New(Config{}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("New without a connection: %v", err)
	}
	if _, err := New(Config{Conn: nc, AllowedOrigins: []string{"*"}}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("New allowing any origin: %v", err)
	}
}
