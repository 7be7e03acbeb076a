package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/internal/web"
	"github.com/vidhub/vidhub/publisher"
)

// maxWebFrames bounds the frames one browser stand-in reads.
const maxWebFrames = 1_000_000

// webScenario: n browser stand-ins watch a room with one live 720p30
// publisher through the web gateway, each taking the publisher in hi as
// the room page does for a single or focused tile.
func webScenario(ctx context.Context, env *runEnv, n int) (Result, error) {
	name := fmt.Sprintf("web-%d", n)
	room := "bench-" + name
	r := Result{Scenario: name, Kind: KindWeb, Impl: "vidhub", Publishers: 1, Viewers: n,
		Note: "WebSocket viewers through the gateway, hi layer"}
	base, pid, stop, err := startGateway(env)
	if err != nil {
		return r, err
	}
	defer stop()

	wv := &webViewers{}
	defer wv.close()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws/view/" + room
	for range n {
		if err := wv.dial(ctx, wsURL, `{"hi":["cam"]}`); err != nil {
			return r, err
		}
	}
	lp, err := startLive(env, room, "cam", publisher.EncodeAll)
	if err != nil {
		return r, err
	}
	defer lp.stop()
	return env.measure(ctx, wv, sides{"gateway": pid, "publisher": lp.pid()}, env.p.hiAvg, r)
}

// startGateway runs "vidhub web" as a child, or a gateway in this process.
func startGateway(env *runEnv) (base string, pid int, stop func(), err error) {
	if env.exe != "" {
		ch, err := startChild("gateway", env.exe, "web", "--listen", "127.0.0.1:0", "--nats", env.url, "--log-level", "warn")
		if err != nil {
			return "", 0, nil, err
		}
		line, err := ch.waitLine("gateway on", 20*time.Second)
		if err != nil {
			ch.stop()
			return "", 0, nil, err
		}
		_, rest, _ := strings.Cut(line, "gateway on ")
		base, _, _ = strings.Cut(rest, " ")
		return base, ch.pid(), ch.stop, nil
	}
	nc, err := natsconn.Connect(natsconn.Config{URL: env.url, Name: "bench gateway"})
	if err != nil {
		return "", 0, nil, err
	}
	g, err := web.New(web.Config{Conn: nc, Listen: "127.0.0.1:0"})
	if err == nil {
		err = g.Start()
	}
	if err != nil {
		nc.Close()
		return "", 0, nil, err
	}
	return g.URL(), 0, func() { g.Close(); nc.Close() }, nil
}

// webViewers are browser stand-ins: each reads the gateway's binary frame
// messages into one reused buffer and records the capture time it carries.
type webViewers struct {
	mu     sync.Mutex
	socks  []*webSock
	t0     time.Time
	cancel []context.CancelFunc
	wg     sync.WaitGroup
}

type webSock struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	frames uint64
	base   uint64
	gaps   uint64
	gbase  uint64
	last   uint64
	rec    bool
	lat    []float64
}

func (w *webViewers) dial(ctx context.Context, url, hello string) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, url, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("bench: opening a viewing socket: %w", err)
	}
	conn.SetReadLimit(16 << 20)
	if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		conn.CloseNow()
		return err
	}
	s := &webSock{conn: conn}
	rctx, rcancel := context.WithCancel(context.Background())
	w.mu.Lock()
	w.socks = append(w.socks, s)
	w.cancel = append(w.cancel, rcancel)
	w.mu.Unlock()
	w.wg.Go(func() { s.read(rctx) })
	return nil
}

func (s *webSock) read(ctx context.Context) {
	readWire(ctx, s.conn, func(f web.WireFrame, _ int, now int64) {
		seq, at := f.Meta.Seq, f.Meta.Time
		s.mu.Lock()
		if s.last != 0 && seq > s.last+1 {
			s.gaps += seq - s.last - 1
		}
		s.last = seq
		s.frames++
		if s.rec && len(s.lat) < maxSamples {
			s.lat = append(s.lat, float64(now-at)/float64(time.Millisecond))
		}
		s.mu.Unlock()
	})
}

// readWire reads a viewing socket's frames, at most maxWebFrames messages,
// and hands each to fn with its size on the wire and the time it was
// read (Unix ns); fn must not keep f's body. Other messages (hello, room
// state) and frames that do not parse are passed over.
func readWire(ctx context.Context, conn *websocket.Conn, fn func(f web.WireFrame, n int, now int64)) {
	var buf bytes.Buffer
	for range maxWebFrames {
		typ, r, err := conn.Reader(ctx)
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(io.LimitReader(r, 16<<20)); err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		now := time.Now().UnixNano()
		if f, err := web.ParseWire(buf.Bytes()); err == nil {
			fn(f, buf.Len(), now)
		}
	}
}

func (w *webViewers) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.socks {
		s.mu.Lock()
		s.base, s.gbase, s.rec = s.frames, s.gaps, true
		s.mu.Unlock()
	}
	w.t0 = time.Now()
}

func (w *webViewers) end() window {
	w.mu.Lock()
	defer w.mu.Unlock()
	el := time.Since(w.t0).Seconds()
	win := window{seconds: el}
	var lat samples
	for _, s := range w.socks {
		s.mu.Lock()
		s.rec = false
		d := s.frames - s.base
		win.frames += d
		win.gaps += s.gaps - s.gbase
		win.streamFPS = append(win.streamFPS, float64(d)/el)
		lat.addAll(s.lat)
		s.mu.Unlock()
	}
	win.lat = lat.sorted()
	return win
}

func (w *webViewers) close() {
	w.mu.Lock()
	socks, cancels := w.socks, w.cancel
	w.socks, w.cancel = nil, nil
	w.mu.Unlock()
	for i, s := range socks {
		cancels[i]()
		_ = s.conn.CloseNow()
	}
	w.wg.Wait()
}
