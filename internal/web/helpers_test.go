package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// testHub is a broker and a gateway on random loopback ports.
type testHub struct {
	b   *broker.Broker
	nc  *nats.Conn // the gateway's
	g   *Gateway
	url string // the gateway's base URL
}

func startHub(t testing.TB, bcfg broker.Config, gcfg Config) *testHub {
	t.Helper()
	b := hubtest.Broker(t, bcfg)
	nc := hubtest.Connect(t, b.ClientURL())
	gcfg.Conn = nc
	if gcfg.Listen == "" {
		gcfg.Listen = "127.0.0.1:0"
	}
	if gcfg.Logger == nil {
		gcfg.Logger = testLogger(t)
	}
	g, err := New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return &testHub{b: b, nc: nc, g: g, url: g.URL()}
}

// startPattern runs a pattern publisher of w x h at fps as room/name on
// its own connection to url, until the test ends.
func startPattern(t testing.TB, url, room, name string, fps float64, w, h int) *hubtest.Publisher {
	t.Helper()
	return hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: room, Name: name, Source: "pattern", FPS: fps, Width: w, Height: h})
}

// startPatternProcess runs "vidhub publish --source pattern" as its own
// process (a static build, without the race detector) until the test ends.
func startPatternProcess(t testing.TB, url, room, name string, fps float64, w, h int) *hubtest.Proc {
	t.Helper()
	return hubtest.PublishProcess(t, hubtest.ProcConfig{}, hubtest.VidhubStatic(t), url, room, name,
		"--fps", strconv.FormatFloat(fps, 'g', -1, 64), "--size", protocol.FormatSize(w, h), "--log-level", "warn")
}

// wsURL turns the gateway's http URL and path into a ws URL.
func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

func dial(t testing.TB, ctx context.Context, base, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, wsURL(base, path), nil)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v %s", path, err, body)
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// dialViewer opens a viewing socket and reads its hello: it returns the
// name the gateway gave the viewer.
func dialViewer(t testing.TB, ctx context.Context, base, path string) (*websocket.Conn, string) {
	t.Helper()
	c := dial(t, ctx, base, path)
	_, b, err := c.Read(ctx)
	var hello viewHello
	if err != nil || json.Unmarshal(b, &hello) != nil || hello.Type != "hello" || hello.Viewer == "" {
		t.Fatalf("%s: first message %q %v, want a hello naming the viewer", path, b, err)
	}
	return c, hello.Viewer
}

// readFrame reads messages until a binary frame arrives; text messages
// go to onText when it is set.
func readFrame(ctx context.Context, c *websocket.Conn, onText func([]byte)) (WireFrame, error) {
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return WireFrame{}, err
		}
		if typ == websocket.MessageText {
			if onText != nil {
				onText(b)
			}
			continue
		}
		return ParseWire(b)
	}
}

func sendJSON(t testing.TB, ctx context.Context, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// get fetches a URL and returns its status and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testJPEG encodes a w x h picture.
func testJPEG(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkGoroutines fails the test when goroutines started during it are
// still running at its end (after the cleanups registered before it).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		hubtest.Eventually(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before },
			"goroutines leaked: %d before, %d after", before, runtime.NumGoroutine())
	})
}

// metric returns the value of one /metrics line (name with labels), or -1.
func metric(t testing.TB, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmtSscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// presenceOf collects the presence documents of one participant.
type presenceLog struct {
	mu   sync.Mutex
	docs []protocol.Presence
}

func (p *presenceLog) add(m *nats.Msg) {
	d, err := protocol.DecodePresence(m.Data)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.docs = append(p.docs, d)
	p.mu.Unlock()
}

func (p *presenceLog) last() (protocol.Presence, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.docs) == 0 {
		return protocol.Presence{}, 0
	}
	return p.docs[len(p.docs)-1], len(p.docs)
}

func fmtSscan(s string, f *float64) (int, error) { return fmt.Sscan(s, f) }

// testLogger sends the gateway's log to the test log, at warn and above.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // the test may have ended
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
