package web

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

var screenshot = flag.String("screenshot", "", "write a screenshot of the room page to this PNG file (e.g. ../docs/web-room.png)")

// browser starts headless Chromium (Debian's package) with a fake camera,
// closed when the test ends.
func browser(t testing.TB) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("headless Chromium: skipped with -short")
	}
	hubtest.NeedTools(t, "chromium")
	path, _ := exec.LookPath("chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// eval runs JavaScript in the page and returns its result.
func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// tileInfo is what the page says about one tile.
type tileInfo struct {
	Name   string `json:"name"`
	Frames int    `json:"frames"`
	Layer  string `json:"layer"`
	Size   string `json:"size"`
}

func tiles(t *testing.T, ctx context.Context) map[string]tileInfo {
	list := eval[[]tileInfo](t, ctx, `[...document.querySelectorAll('.tile')].map(e => ({name: e.dataset.name, frames: +e.dataset.frames, layer: e.dataset.layer || "", size: e.dataset.size || ""}))`)
	out := map[string]tileInfo{}
	for _, ti := range list {
		out[ti.Name] = ti
	}
	return out
}

// lazyTiles shows the tiles in a failed wait's message as they were when
// it gave up.
func lazyTiles(t *testing.T, ctx context.Context) hubtest.Lazy {
	return func() any { return fmt.Sprintf("%+v", tiles(t, ctx)) }
}

func shot(t *testing.T, ctx context.Context, sel string) image.Image {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b, err := chromedp.Run(tctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", sel, err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tilePicture selects the element that shows name's picture: its
// canvas, or its video element (H.264 where the browser has a track for
// decoded pictures).
func tilePicture(name string) string {
	return fmt.Sprintf(`.tile[data-name=%q] :is(canvas, video):not(.hidden)`, name)
}

// changed returns the fraction of pixels that differ clearly.
func changed(a, b image.Image) float64 {
	r := a.Bounds().Intersect(b.Bounds())
	var n, diff float64
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			br, bg, bb, _ := b.At(x, y).RGBA()
			d := absDiff(ar, br) + absDiff(ag, bg) + absDiff(ab, bb)
			n++
			if d > 3*16*257 {
				diff++
			}
		}
	}
	return diff / n
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestBrowserRoom opens the room page in Chromium while two pattern
// publishers run: two live tiles appear whose pictures change and are not
// blank; clicking a tile switches it (and only it) to hi at the gateway;
// after the gateway restarts the page reconnects by itself.
func TestBrowserRoom(t *testing.T) {
	ctx := browser(t)
	h := startHub(t, broker.Config{}, Config{})
	for _, name := range []string{"alice", "bob"} {
		startPattern(t, h.b.ClientURL(), "lobby", name, 15, 640, 360)
	}
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/lobby")); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 30*time.Second, func() bool {
		ts := tiles(t, ctx)
		return len(ts) == 2 && ts["alice"].Frames > 2 && ts["bob"].Frames > 2
	}, "two live tiles did not appear: %v", lazyTiles(t, ctx))

	before := map[string]image.Image{}
	start := tiles(t, ctx)
	for _, name := range []string{"alice", "bob"} {
		before[name] = shot(t, ctx, tilePicture(name))
	}
	// One second of video later (15 frames at 15 fps), counted by frames.
	hubtest.Eventually(t, 30*time.Second, func() bool {
		ts := tiles(t, ctx)
		return ts["alice"].Frames >= start["alice"].Frames+15 && ts["bob"].Frames >= start["bob"].Frames+15
	}, "tiles stopped updating: %v", lazyTiles(t, ctx))
	for _, name := range []string{"alice", "bob"} {
		after := shot(t, ctx, tilePicture(name))
		if s := hubtest.LumaSpread(after); s < 100 {
			t.Errorf("tile %s looks blank (brightness variance %.0f)", name, s)
		}
		if c := changed(before[name], after); c < 0.02 {
			t.Errorf("tile %s did not change in a second of video (%.1f%% of pixels differ)", name, 100*c)
		} else {
			t.Logf("tile %s: %.0f%% of pixels changed in a second", name, 100*c)
		}
	}
	labels := eval[[]string](t, ctx, `[...document.querySelectorAll('.tile .stat')].map(e => e.textContent)`)
	t.Logf("tile labels: %q", labels)

	// Focus alice: her tile goes hi, bob's stays lo.
	hiSeries := `vidhub_web_subscription_viewers{room="lobby",layer="hi"}`
	if n := metric(t, h.url, hiSeries); n != -1 {
		t.Fatalf("hi subscribed with two tiles and no focus: %v", n)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS(`.tile[data-name="alice"]`))); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 20*time.Second, func() bool { return metric(t, h.url, hiSeries) == 1 },
		"the gateway did not subscribe to hi for the focused tile")
	hubtest.Eventually(t, 20*time.Second, func() bool {
		ts := tiles(t, ctx)
		return ts["alice"].Layer == "hi" && ts["alice"].Size == "640x360" && ts["bob"].Layer == "lo"
	}, "focused tile not in hi: %v", lazyTiles(t, ctx))
	if *screenshot != "" {
		writeScreenshot(t, ctx, *screenshot)
	}

	// Restart the gateway on the same address, and stay away longer than
	// the page's stall threshold (its tiles show "stalled"), as a gateway
	// restarted by compose or systemd does. The new gateway first serves
	// without following presence: that is a freshly started gateway
	// before the publishers' next beat, which lists nobody in the room.
	// The page must keep its tiles, their focus and frame counts, and
	// resume. (It used to drop every tile whose last frame was older than
	// the stall threshold, losing the focus: the flake of issue 9.)
	addr := h.g.Addr().String()
	h.g.Close()
	status := func() string { return eval[string](t, ctx, `document.getElementById('status').textContent`) }
	hubtest.Eventually(t, 10*time.Second, func() bool { return status() != "live" },
		"the page did not notice the gateway going away")
	hubtest.Eventually(t, 20*time.Second, func() bool {
		return eval[int](t, ctx, `document.querySelectorAll('.tile.stalled').length`) == 2
	}, "the tiles did not show stalled while the gateway was away: %v", lazyTiles(t, ctx))
	mark := tiles(t, ctx)
	g2, err := New(Config{Conn: h.nc, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g2.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-served }) // after g2.Close, which ends the sockets
	t.Cleanup(g2.Close)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		ts := tiles(t, ctx)
		return ts["alice"].Frames > mark["alice"].Frames+5 && ts["bob"].Frames > mark["bob"].Frames+5 && ts["alice"].Layer == "hi"
	}, "the page did not resume after the gateway restarted: %v (before: %+v), status %v", lazyTiles(t, ctx), mark, hubtest.Lazy(func() any { return status() }))
	if err := g2.Start(); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		return eval[string](t, ctx, `document.getElementById('meta').textContent`) == "2 publishers · 1 viewer"
	}, "the page does not show the room after the gateway heard presence: %v",
		hubtest.Lazy(func() any { return eval[string](t, ctx, `document.getElementById('meta').textContent`) }))
}

func writeScreenshot(t *testing.T, ctx context.Context, path string) {
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// TestBrowserPublish publishes Chromium's fake camera from the publish
// page with codec=jpeg (what a browser without WebCodecs' H.264 encoder
// does): a plain NATS subscriber gets valid JPEG frames with protocol
// headers from that participant on both layers, viewed or not, and
// "vidhub rooms" lists it as a publisher.
func TestBrowserPublish(t *testing.T) {
	ctx := browser(t)
	h := startHub(t, broker.Config{}, Config{})
	sub := hubtest.Connect(t, h.b.ClientURL())
	a, _ := protocol.NewAddress("studio", "webcam")
	hi := make(chan *nats.Msg, 256)
	lo := make(chan *nats.Msg, 256)
	for l, ch := range map[protocol.Layer]chan *nats.Msg{protocol.Hi: hi, protocol.Lo: lo} {
		if _, err := sub.ChanSubscribe(a.FrameSubject(l), ch); err != nil {
			t.Fatal(err)
		}
	}
	_ = sub.Flush()
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/studio/publish?name=webcam&size=640x360&fps=10&codec=jpeg&autostart=1")); err != nil {
		t.Fatal(err)
	}
	check := func(ch chan *nats.Msg, layer protocol.Layer) {
		var last uint64
		for i := range 5 {
			var m *nats.Msg
			select {
			case m = <-ch:
			case <-time.After(30 * time.Second):
				notice := eval[string](t, ctx, `document.getElementById('notice').textContent`)
				t.Fatalf("no %s frame %d from the browser; page says %q", layer, i, notice)
			}
			meta, err := protocol.ParseFrame(m.Header, m.Data)
			if err != nil {
				t.Fatalf("%s frame: %v", layer, err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatalf("%s frame is not a Body: %v", layer, err)
			}
			if cfg.Width != meta.Width || cfg.Height != meta.Height {
				t.Errorf("%s frame: header says %dx%d, JPEG is %dx%d", layer, meta.Width, meta.Height, cfg.Width, cfg.Height)
			}
			if layer == protocol.Lo && meta.Width > protocol.LoWidth || layer == protocol.Hi && meta.Width > 640 {
				t.Errorf("%s frame %dx%d is too wide", layer, meta.Width, meta.Height)
			}
			if meta.Seq <= last {
				t.Errorf("%s seq %d after %d", layer, meta.Seq, last)
			}
			if d := time.Since(meta.CaptureTime()); d < 0 || d > 10*time.Second {
				t.Errorf("%s capture time %v from now", layer, d)
			}
			last = meta.Seq
			if i == 0 {
				t.Logf("%s: %dx%d, %d bytes", layer, meta.Width, meta.Height, len(m.Data))
			}
		}
	}
	check(hi, protocol.Hi)
	check(lo, protocol.Lo)

	p := hubtest.Run(t, 30*time.Second, nil, hubtest.VidhubStatic(t), "rooms", "--nats", h.b.ClientURL(), "--json")
	if p.Code() != 0 {
		t.Fatalf("vidhub rooms: exit %d", p.Code())
	}
	out := []byte(p.Stdout.String())
	var rooms []protocol.RoomInfo
	if err := json.Unmarshal(out, &rooms); err != nil {
		t.Fatalf("vidhub rooms --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rooms {
		for _, m := range r.Members {
			if r.Room == "studio" && m.Name == "webcam" && m.Role == protocol.RolePublisher && len(m.Layers) == 2 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("vidhub rooms does not list studio/webcam as a publisher:\n%s", out)
	}
}

// TestBrowserToken opens a room page with ?token= in Chromium on a
// gateway that requires tokens: the gateway moves the token into an
// HttpOnly cookie and drops it from the address bar, and the page's own
// WebSocket, which carries only the cookie, gets live frames. A token for
// another room gets the refusal's reason, not the page.
func TestBrowserToken(t *testing.T) {
	ctx := browser(t)
	key, keyText := tokenKey(t)
	log, logBuf := capturedLog(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key, Logger: log})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 15, 320, 180)
	tok := mint(t, key, webtoken.Claims{Room: "lobby", View: true})

	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/hall?token="+tok)); err != nil {
		t.Fatal(err)
	}
	if body := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(body, "for room lobby, not hall") {
		t.Errorf("a lobby token on the hall page shows %q", body)
	}
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/lobby?token="+tok)); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 30*time.Second, func() bool {
		ts := tiles(t, ctx)
		return ts["alice"].Frames > 5
	}, "no live tile through the cookie: %v, status %v", lazyTiles(t, ctx),
		hubtest.Lazy(func() any { return eval[string](t, ctx, `document.getElementById('status').textContent`) }))
	if href := eval[string](t, ctx, `location.href`); strings.Contains(href, "token") {
		t.Errorf("the token stayed in the address bar: %s", href)
	}
	if c := eval[string](t, ctx, `document.cookie`); c != "" {
		t.Errorf("the page's script can read cookies %q: the token cookie must be HttpOnly", c)
	}
	if n := metric(t, h.url, `vidhub_web_websocket_clients{kind="view"}`); n != 1 {
		t.Errorf("%v viewing sockets, want the page's one", n)
	}
	h.g.Close()
	checkLogClean(t, logBuf.String(), keyText, []string{tok})
}
