package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

// presenceChan subscribes to a's presence on nc, flushed.
func presenceChan(t *testing.T, nc *nats.Conn, a protocol.Address) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe(a.PresenceSubject(), ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// drainPresence returns the presence documents that reached ch up to a
// flush of nc: everything the broker had sent before.
func drainPresence(t *testing.T, nc *nats.Conn, ch chan *nats.Msg) []protocol.Presence {
	t.Helper()
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var out []protocol.Presence
	for {
		select {
		case m := <-ch:
			if p, err := protocol.DecodePresence(m.Data); err == nil {
				out = append(out, p)
			}
		default:
			return out
		}
	}
}

// sendFrames sends a small JPEG on both layers every 50 ms until ctx
// ends or a write fails.
func sendFrames(ctx context.Context, c *websocket.Conn, jpg []byte) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		for _, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
			msg := AppendWire(nil, WireFrame{Layer: l, Meta: protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: 64, Height: 48}, Body: jpg})
			if c.Write(ctx, websocket.MessageBinary, msg) != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closeOf reads c until it ends and returns how.
func closeOf(ctx context.Context, c *websocket.Conn) error {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}

// TestViewerNameIsTheGateways (issue 10, finding 1): a view token
// holder cannot make the gateway announce, or leave, a name of its
// choosing. A socket asking for ?name=alice while the real alice
// publishes is refused; the gateway sends no presence for alice, and
// the directory keeps her as a publisher.
func TestViewerNameIsTheGateways(t *testing.T) {
	key, _ := tokenKey(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 10, 160, 90)
	alice, _ := protocol.NewAddress("lobby", "alice")
	watch := hubtest.Connect(t, h.b.ClientURL())
	hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.dir.has("lobby", "alice", protocol.RolePublisher) }, "alice not in the directory")
	pres := presenceChan(t, watch, alice)
	tok := mint(t, key, webtoken.Claims{Room: "lobby", View: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i := range 3 {
		c, status, body := dialStatus(t, ctx, wsURL(h.url, "/ws/view/lobby?name=alice&token="+tok), nil)
		if c != nil {
			// Today's gateway: it announces alice as a viewer, every beat.
			_, b, err := c.Read(ctx)
			var hello viewHello
			_ = json.Unmarshal(b, &hello)
			if err != nil || hello.Viewer == "alice" {
				t.Errorf("attempt %d: the gateway took ?name=alice for a viewer: hello %s %v", i, b, err)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
			continue
		}
		if status != http.StatusBadRequest || !strings.Contains(body, "names each viewer itself") {
			t.Errorf("attempt %d: ?name= answered %d %q, want 400 saying the gateway names viewers", i, status, body)
		}
	}
	// A socket without it is named by the gateway.
	c, name := dialViewer(t, ctx, h.url, "/ws/view/lobby?token="+tok)
	if !strings.HasPrefix(name, "web-") {
		t.Errorf("viewer named %q, want web-<8 hex>", name)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")

	for _, p := range drainPresence(t, watch, pres) {
		if p.Role != protocol.RolePublisher || p.Leaving {
			t.Errorf("presence for alice that the real alice did not send: %+v", p)
		}
	}
	if !h.g.dir.has("lobby", "alice", protocol.RolePublisher) {
		t.Error("the directory lost the live publisher alice")
	}
}

// fakeLeave publishes leaving beats for a on nc (as any NATS user with
// the right to announce the name may) until the gateway's directory has
// dropped a.
func fakeLeave(t *testing.T, nc *nats.Conn, g *Gateway, a protocol.Address) {
	t.Helper()
	b, _ := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(), Leaving: true}.Encode()
	hubtest.Eventually(t, 20*time.Second, func() bool {
		_ = nc.Publish(a.PresenceSubject(), b)
		_ = nc.Flush()
		return !g.dir.has(a.Room(), a.Participant(), protocol.RolePublisher)
	}, "a leaving beat did not remove %s from the directory", a)
}

// TestPublisherNameHeld (issue 10, finding 2): a live publisher's name
// cannot be taken through the gateway, even right after a fake leaving
// beat has removed it from the directory; a browser publisher that
// reconnects gets its name back at once, and a name that went quiet is
// free again.
func TestPublisherNameHeld(t *testing.T) {
	key, _ := tokenKey(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key})
	alicePub := startPattern(t, h.b.ClientURL(), "lobby", "alice", 10, 160, 90)
	alice, _ := protocol.NewAddress("lobby", "alice")
	hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.dir.has("lobby", "alice", protocol.RolePublisher) }, "alice not in the directory")
	attacker := hubtest.Connect(t, h.b.ClientURL())
	anyName := mint(t, key, webtoken.Claims{Room: "lobby", Publish: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := func(name, tok string) (*websocket.Conn, int, string) {
		return dialStatus(t, ctx, wsURL(h.url, "/ws/publish/lobby/"+name+"?token="+tok), nil)
	}

	for i := range 5 {
		fakeLeave(t, attacker, h.g, alice)
		c, status, body := pub("alice", anyName)
		if c != nil {
			t.Errorf("attempt %d: a publishing socket as the live alice opened right after a fake leaving beat", i)
			_ = c.CloseNow()
			continue
		}
		if status != http.StatusConflict || !strings.Contains(body, "alice is in room lobby") {
			t.Errorf("attempt %d: answered %d %q, want 409 naming alice", i, status, body)
		}
	}

	// A browser publisher that reconnects (same token, its socket
	// closed) gets its name back at once, even though its beats are still
	// fresh; while it is open, nobody else gets the name.
	annTok := mint(t, key, webtoken.Claims{Room: "lobby", Publish: true, Name: "ann"})
	jpg := testJPEG(t, 64, 48, color.RGBA{200, 40, 40, 255})
	for i := range 3 {
		c, status, body := pub("ann", annTok)
		if c == nil {
			t.Fatalf("ann's socket %d refused: %d %s", i, status, body)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); sendFrames(sctx, c, jpg) }()
		hubtest.Eventually(t, 15*time.Second, func() bool { return h.g.dir.has("lobby", "ann", protocol.RolePublisher) }, "ann not announced")
		if c2, status, _ := pub("ann", anyName); c2 != nil || status != http.StatusConflict {
			t.Errorf("a second socket as the live ann: %d, want 409", status)
		}
		stop()
		<-done
		_ = c.Close(websocket.StatusNormalClosure, "")
		hubtest.Eventually(t, 10*time.Second, func() bool { return h.g.m.socketsNow[1].Load() == 0 }, "ann's socket still open")
	}

	// Once alice has stopped and gone quiet, the name is free.
	if err := alicePub.Stop(); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 20*time.Second, func() bool {
		c, _, _ := pub("alice", anyName)
		if c != nil {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
		return c != nil
	}, "the name of a publisher that stopped is still refused")
}

// TestNoGhostPublisher (issue 10, finding 6): a publish token for a room
// the gateway's NATS user may not publish in (an access file that lists
// only lobby): the browser's socket is closed at once with 1008 and a
// reason naming the room, the gateway logs it once, and no publisher
// appears in the room.
func TestNoGhostPublisher(t *testing.T) {
	f, err := access.Parse([]byte(`
users:
  - name: gateway
    password: gw-secret
    view: ["*"]
    publish: [lobby]
    any_name: true
  - name: wall
    password: wall-secret
    view: ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	b := hubtest.Broker(t, broker.Config{Access: f})
	nc := hubtest.Connect(t, b.ClientURL(), nats.UserInfo("gateway", "gw-secret"))
	key, _ := tokenKey(t)
	log, logBuf := capturedLog(t)
	g, err := New(Config{Conn: nc, Listen: "127.0.0.1:0", Logger: log, Tokens: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	wall := hubtest.Connect(t, b.ClientURL(), nats.UserInfo("wall", "wall-secret"))
	ann, _ := protocol.NewAddress("hall", "ann")
	pres := presenceChan(t, wall, ann)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tok := mint(t, key, webtoken.Claims{Room: "hall", Publish: true, Name: "ann"})
	c, status, body := dialStatus(t, ctx, wsURL(g.URL(), "/ws/publish/hall/ann?token="+tok), nil)
	if c == nil {
		t.Fatalf("upgrade refused: %d %s", status, body)
	}
	go sendFrames(ctx, c, testJPEG(t, 64, 48, color.RGBA{40, 40, 200, 255}))
	err = closeOf(ctx, c)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "publish into room hall") {
		t.Fatalf("socket ended with %v, want 1008 saying the gateway may not publish into room hall", err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return g.m.socketsNow[1].Load() == 0 }, "the socket is still open at the gateway")
	for _, p := range drainPresence(t, wall, pres) {
		t.Errorf("the refused socket announced ann: %+v", p)
	}
	if g.dir.has("hall", "ann", protocol.RolePublisher) {
		t.Error("a ghost publisher ann in hall")
	}
	g.Close()
	if n := strings.Count(logBuf.String(), "refuses the gateway's frames"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once:\n%s", n, logBuf.String())
	}
	g.m.refusedMu.Lock()
	n := g.m.refused["not_allowed"]
	g.m.refusedMu.Unlock()
	if n != 1 {
		t.Errorf("refused_total{reason=not_allowed} = %d, want 1", n)
	}
}

// respell returns tok with its signature's last character spelled the
// other way a lenient base64 decoder takes: the same bytes, other unused
// low bits.
func respell(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	// 32 bytes are 43 characters: the last holds 4 bits and 2 unused.
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

// TestTokenSpellingHostsAndSocketCap (issue 10, finding 7): a token has
// one spelling; with AllowedHosts the gateway answers only those hosts
// (421 otherwise, /healthz for any); one token holds at most
// MaxSocketsPerToken sockets (429 beyond, free again once one closes).
func TestTokenSpellingHostsAndSocketCap(t *testing.T) {
	key, _ := tokenKey(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key, AllowedHosts: []string{"hub.test", "127.0.0.1"}, MaxSocketsPerToken: 3})
	tok := mint(t, key, webtoken.Claims{Room: "lobby", View: true})
	client := noRedirect(nil)

	t.Run("one spelling", func(t *testing.T) {
		other := respell(tok)
		if other == tok {
			t.Fatal("respell did nothing")
		}
		if resp, _ := fetch(t, client, h.url+"/rooms/lobby", tok); resp.StatusCode != http.StatusOK {
			t.Fatalf("the token itself: %d", resp.StatusCode)
		}
		resp, body := fetch(t, client, h.url+"/rooms/lobby", other)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "malformed") {
			t.Errorf("another spelling of the token: %d %q, want 401 malformed", resp.StatusCode, body)
		}
	})

	t.Run("allowed hosts", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(h.url, "http://"))
		for _, tc := range []struct {
			host, path string
			status     int
		}{
			{"hub.test:" + port, "/rooms/lobby", 200},
			{"HUB.test", "/rooms/lobby", 200},
			{"127.0.0.1:" + port, "/rooms/lobby", 200},
			{"evil.test:" + port, "/rooms/lobby", http.StatusMisdirectedRequest},
			{"evil.test", "/api/rooms", http.StatusMisdirectedRequest},
			{"evil.test", "/healthz", 200},
		} {
			req, _ := http.NewRequest(http.MethodGet, h.url+tc.path, nil)
			req.Host = tc.host
			req.AddCookie(&http.Cookie{Name: RoomCookie("lobby"), Value: tok})
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("Host %s %s: %d, want %d", tc.host, tc.path, resp.StatusCode, tc.status)
			}
		}
	})

	t.Run("sockets per token", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		url := wsURL(h.url, "/ws/view/lobby?presence=0&token="+tok)
		var open []*websocket.Conn
		for i := range 3 {
			c, status, body := dialStatus(t, ctx, url, nil)
			if c == nil {
				t.Fatalf("socket %d refused: %d %s", i, status, body)
			}
			open = append(open, c)
		}
		if c, status, body := dialStatus(t, ctx, url, nil); c != nil || status != http.StatusTooManyRequests || !strings.Contains(body, "3 sockets open") {
			t.Fatalf("a 4th socket: %d %q, want 429 naming the limit", status, body)
		}
		// Another token is not held back by this one's sockets.
		other := mint(t, key, webtoken.Claims{Room: "lobby", View: true, Expires: time.Now().Add(2 * time.Hour).Unix()})
		if c, status, body := dialStatus(t, ctx, wsURL(h.url, "/ws/view/lobby?presence=0&token="+other), nil); c == nil {
			t.Fatalf("another token refused: %d %s", status, body)
		}
		_ = open[0].Close(websocket.StatusNormalClosure, "")
		hubtest.Eventually(t, 15*time.Second, func() bool {
			c, _, _ := dialStatus(t, ctx, url, nil)
			return c != nil
		}, "the token's socket count did not go down when one closed")
	})
}

// TestBrowserLinkFromAnotherSite (issue 10, finding 5): a visitor with
// a cookie for room lobby follows links from a page on another site (a
// server on 127.0.0.2) to the gateway with tokens for room hall: the
// links work (the hall page shows its publisher), the visitor's lobby
// cookie is untouched (lobby still works), and a link asking the publish
// page to start by itself (autostart=1) opens it without autostart.
func TestBrowserLinkFromAnotherSite(t *testing.T) {
	ctx := browser(t)
	key, _ := tokenKey(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 10, 320, 180)
	startPattern(t, h.b.ClientURL(), "hall", "bob", 10, 320, 180)
	tokA := mint(t, key, webtoken.Claims{Room: "lobby", View: true})
	tokB := mint(t, key, webtoken.Claims{Room: "hall", View: true})
	tokBPub := mint(t, key, webtoken.Claims{Room: "hall", View: true, Publish: true})

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		hubtest.Unavailable(t, "no 127.0.0.2 to serve another site on: %v", err)
	}
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>elsewhere</title>
<a id="view" href="%[1]s/rooms/hall?token=%[2]s">hall</a>
<a id="pub" href="%[1]s/rooms/hall/publish?name=mallory&autostart=1&token=%[3]s">publish</a>`, h.url, tokB, tokBPub)
	}))
	other.Listener.Close()
	other.Listener = ln
	other.Start()
	t.Cleanup(other.Close)

	nav := func(url string) {
		t.Helper()
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
	}
	live := func(name string) bool { return tiles(t, ctx)[name].Frames > 3 }
	body := hubtest.Lazy(func() any { return clip(eval[string](t, ctx, `document.body.innerText`), 200) })

	nav(h.url + "/rooms/lobby?token=" + tokA)
	hubtest.Eventually(t, 30*time.Second, func() bool { return live("alice") }, "lobby not live with its own token: %v", body)

	// A link from another site with a token for hall: it works.
	nav(other.URL)
	eval[bool](t, ctx, `document.getElementById("view").click(), true`)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		return strings.HasPrefix(eval[string](t, ctx, `location.href`), h.url+"/rooms/hall") && live("bob")
	}, "a token link from another site does not open the hall: %v at %v", body,
		hubtest.Lazy(func() any { return eval[string](t, ctx, `location.href`) }))

	// The visitor's lobby still works: its cookie was not replaced.
	nav(h.url + "/rooms/lobby")
	hubtest.Eventually(t, 30*time.Second, func() bool { return live("alice") }, "lobby lost after following a link from another site: %v", body)

	// A link asking the publish page to start the camera by itself.
	nav(other.URL)
	eval[bool](t, ctx, `document.getElementById("pub").click(), true`)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		href := eval[string](t, ctx, `location.href`)
		return strings.HasPrefix(href, h.url+"/rooms/hall/publish") && !strings.Contains(href, "token=") &&
			eval[bool](t, ctx, `!!document.getElementById("name")`)
	}, "the publish page did not open from the link: %v", body)
	if href := eval[string](t, ctx, `location.href`); strings.Contains(href, "autostart") {
		t.Errorf("a link from another site opened the publish page with autostart: %s", href)
	}
	if n := metric(t, h.url, `vidhub_web_websocket_clients{kind="publish"}`); n > 0 {
		t.Errorf("a link from another site started publishing (%v sockets)", n)
	}
}
