package web

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

// fanClient is one Go viewer that records the seq of every hi frame.
type fanClient struct {
	mu    sync.Mutex
	seqs  []uint64
	bytes uint64
}

func (c *fanClient) add(seq uint64, n int) {
	c.mu.Lock()
	c.seqs = append(c.seqs, seq)
	c.bytes += uint64(n)
	c.mu.Unlock()
}

func (c *fanClient) maxSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seqs) == 0 {
		return 0
	}
	return c.seqs[len(c.seqs)-1]
}

func (c *fanClient) within(lo, hi uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.seqs {
		if s >= lo && s <= hi {
			n++
		}
	}
	return n
}

// TestFanout100 watches one 720p30 room (640x360 at 15 fps under the
// race detector) from 100 WebSocket viewers while one more viewer never reads.
// Every reading viewer must get (nearly) every frame the gateway got from
// the broker, over a window that starts once the stalled viewer's socket
// is full and dropping: the stalled one neither blocks nor slows the
// rest. Frames are counted by sequence number, not timed.
func TestFanout100(t *testing.T) {
	if testing.Short() {
		t.Skip("100 viewers of 720p30: skipped with -short")
	}
	const (
		viewers  = 100
		warmup   = 30  // frames after the stalled socket filled up
		window   = 150 // frames: five seconds of video
		minFrac  = 0.90
		meanFrac = 0.95
	)
	h := startHub(t, broker.Config{}, Config{WriteTimeout: 2 * time.Minute})
	if raceEnabled {
		// The race detector slows JPEG encoding below 720p30 on small
		// machines; the publisher is not what this test measures. It
		// also slows this process's 100 readers: on a two-core machine
		// half as fast as usual, with other packages' tests beside it,
		// 720p (67 KB a frame) starved the gateway, which then drops
		// frames for every socket alike (ci-repeat, 2026-11-28: viewers
		// got 88% of the frames in three windows running). The property
		// tested, that one stalled socket slows nobody, does not depend
		// on the load, so the race run sends 640x360 at 15 fps (54 KB a
		// frame: 40% of the bytes a second); the bench measures 720p30
		// (BENCHMARKS.md, gateway).
		startPatternProcess(t, h.b.ClientURL(), "big", "cam", 15, 640, 360)
	} else {
		startPattern(t, h.b.ClientURL(), "big", "cam", 30, 1280, 720)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// What the broker delivers: the reference the viewers are held to.
	var refSeq atomic.Uint64
	var refTimes sync.Map // seq -> time received
	ref := hubtest.Connect(t, h.b.ClientURL())
	a, _ := protocol.NewAddress("big", "cam")
	if _, err := ref.Subscribe(a.FrameSubject(protocol.Hi), func(m *nats.Msg) {
		if meta, err := protocol.ParseFrameHeader(m.Header); err == nil {
			refSeq.Store(meta.Seq)
			refTimes.Store(meta.Seq, time.Now())
		}
	}); err != nil {
		t.Fatal(err)
	}

	clients := make([]*fanClient, viewers)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range clients {
		c := &fanClient{}
		clients[i] = c
		conn := dial(t, ctx, h.url, "/ws/view/big?presence=0")
		sendJSON(t, ctx, conn, control{Hi: []string{"cam"}})
		wg.Go(func() {
			var buf bytes.Buffer
			for {
				typ, r, err := conn.Reader(ctx)
				if err != nil {
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(r); err != nil {
					return
				}
				b := buf.Bytes()
				if typ != websocket.MessageBinary || len(b) < wireFixed || wireLayer(b) != protocol.Hi {
					continue
				}
				c.add(binary.BigEndian.Uint64(b[wireSeqAt(int(b[3])):]), len(b))
			}
		})
	}
	stalled, stalledName := dialViewer(t, ctx, h.url, "/ws/view/big")
	sendJSON(t, ctx, stalled, control{Hi: []string{"cam"}})

	hubtest.Eventually(t, time.Minute, func() bool {
		for _, c := range clients {
			if c.maxSeq() == 0 {
				return false
			}
		}
		return true
	}, "not every viewer got a hi frame")
	sv := h.g.viewerNamed(stalledName)
	if sv == nil {
		t.Fatal("stalled viewer not registered")
	}
	hubtest.Eventually(t, time.Minute, func() bool { return sv.dropped.Load() > 0 },
		"the stalled viewer's socket never filled up")

	// A window is measured up to three times: on a shared CI machine a
	// neighbour can starve every process for a moment, which is not what
	// this test is about. A stalled viewer that slowed the rest would fail
	// every window.
	for attempt := 1; ; attempt++ {
		problems := measureWindow(t, h, clients, &refSeq, &refTimes, refSeq.Load()+warmup, window, minFrac, meanFrac)
		if len(problems) == 0 {
			break
		}
		if attempt == 3 {
			for _, p := range problems {
				t.Error(p)
			}
			break
		}
		t.Logf("window %d missed (%d problems, first: %s); measuring again", attempt, len(problems), problems[0])
	}
	if h.g.viewerNamed(stalledName) == nil {
		t.Error("the stalled viewer was disconnected during the window; it should only drop frames")
	}
	t.Logf("stalled viewer: sent %d, dropped %d; gateway: %s", sv.sent.Load(), sv.dropped.Load(), metricsLine(t, h.url))
}

// measureWindow waits until the broker has delivered seq start to
// start+window-1 and every viewer has caught up, then checks and logs what
// each viewer got of it. It returns what fell short.
func measureWindow(t *testing.T, h *testHub, clients []*fanClient, refSeq *atomic.Uint64, refTimes *sync.Map,
	start uint64, window int, minFrac, meanFrac float64) []string {
	t.Helper()
	end := start + uint64(window) - 1
	hubtest.Eventually(t, time.Minute, func() bool { return refSeq.Load() >= end+1 }, "publisher stuck before seq %d", end)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		for _, c := range clients {
			if c.maxSeq() < end {
				return false
			}
		}
		return true
	}, "viewers did not reach seq %d", end)

	refGot := 0
	for s := start; s <= end; s++ {
		if _, ok := refTimes.Load(s); ok {
			refGot++
		}
	}
	t0, _ := refTimes.Load(start)
	t1, _ := refTimes.Load(end)
	secs := 0.0
	if t0 != nil && t1 != nil {
		secs = t1.(time.Time).Sub(t0.(time.Time)).Seconds()
	}
	var problems []string
	minGot, sum := window, 0
	for i, c := range clients {
		got := c.within(start, end)
		sum += got
		minGot = min(minGot, got)
		if float64(got) < minFrac*float64(refGot) {
			problems = append(problems, fmt.Sprintf("viewer %d got %d of the %d frames the broker delivered", i, got, refGot))
		}
	}
	if mean := float64(sum) / float64(len(clients)); mean < meanFrac*float64(refGot) {
		problems = append(problems, fmt.Sprintf("viewers got %.1f of the %d frames the broker delivered on average", mean, refGot))
	}
	var bytesTotal uint64
	for _, c := range clients {
		c.mu.Lock()
		bytesTotal += c.bytes
		c.mu.Unlock()
	}
	if secs > 0 && sum > 0 {
		t.Logf("window seq %d-%d: broker delivered %d frames in %.2fs (%.1f fps); viewers got min %d, mean %.1f (min %.1f fps); %.0f KB per frame",
			start, end, refGot, secs, float64(refGot-1)/secs, minGot, float64(sum)/float64(len(clients)), float64(minGot-1)/secs,
			float64(bytesTotal)/float64(sum)/1000)
	}
	return problems
}

// viewerNamed finds a viewing socket by its presence name.
func (g *Gateway) viewerNamed(name string) *viewer {
	g.mu.Lock()
	defer g.mu.Unlock()
	for v := range g.viewers {
		if v.name == name {
			return v
		}
	}
	return nil
}

func metricsLine(t testing.TB, base string) string {
	return fmt.Sprintf("frames in hi %.0f, out hi %.0f, dropped %.0f",
		metric(t, base, `vidhub_web_frames_in_total{layer="hi"}`),
		metric(t, base, `vidhub_web_frames_out_total{layer="hi"}`),
		metric(t, base, `vidhub_web_frames_dropped_total`))
}
