package web

import (
	"context"
	"image/color"
	"log/slog"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// discardWriter stands in for a browser's socket: it takes every message
// at once, so only the gateway's own work is measured.
type discardWriter struct{}

func (discardWriter) Write(context.Context, websocket.MessageType, []byte) error { return nil }

// fanoutFixture is a hub with one lo feed watched by n viewers, and a
// valid frame message as the broker delivers it.
func fanoutFixture(tb testing.TB, n int) (*hub, *feed, *nats.Msg, []*viewer) {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	g := &Gateway{cfg: Config{WriteTimeout: DefaultWriteTimeout}, m: newMetrics(), log: log}
	h := newHub(nil, log, g.m, "gateway-test")
	f := &feed{key: feedKey{"lobby", protocol.Lo}}
	vs := make([]*viewer, n)
	for i := range vs {
		v := &viewer{
			g: g, log: log, out: discardWriter{}, room: "lobby",
			hi: map[string]bool{}, h264: map[string]bool{}, jpeg: true, chains: map[string]*chain{},
			slots: map[string][]byte{}, accepted: map[string]time.Time{},
			wake: make(chan struct{}, 1),
		}
		v.stall = time.AfterFunc(time.Hour, func() {})
		v.stall.Stop()
		tb.Cleanup(func() { v.stall.Stop() })
		vs[i] = v
	}
	f.viewers.Store(&vs)
	a, _ := protocol.NewAddress("lobby", "alice")
	img := testJPEG(tb, 320, 180, color.RGBA{200, 100, 50, 255})
	hdr := protocol.NewFrameHeader()
	msg := &nats.Msg{
		Subject: a.FrameSubject(protocol.Lo),
		Header:  hdr.Set(protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 320, Height: 180}),
		Data:    img,
	}
	return h, f, msg, vs
}

// fanOne is one frame through the hub: the NATS callback offers it to
// every viewer, then every viewer's writer sends its batch.
func fanOne(h *hub, f *feed, msg *nats.Msg, vs []*viewer, ctx context.Context) {
	h.onFrame(f, msg)
	for _, v := range vs {
		select {
		case <-v.wake:
		default:
		}
		_ = v.flush(ctx, ctx)
	}
}

// BenchmarkHubFanout100 measures one frame's fan-out to 100 viewers,
// from the NATS callback to the socket writes.
func BenchmarkHubFanout100(b *testing.B) {
	h, f, msg, vs := fanoutFixture(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Data)))
	for b.Loop() {
		fanOne(h, f, msg, vs, ctx)
	}
	if vs[99].sent.Load() == 0 {
		b.Fatal("nothing was sent")
	}
}

// maxFanoutAllocs pins the allocations of one frame's fan-out: the one
// framed copy of the JPEG shared by every viewer. None per viewer: the
// writers reuse their batch and their one write timer, and write with a
// context the websocket package need not watch. (A context.WithTimeout
// per write cost several per viewer and frame.)
const maxFanoutAllocs = 1

// TestHubFanoutAllocs fails when one frame's fan-out allocates more than
// maxFanoutAllocs, or anything per viewer.
func TestHubFanoutAllocs(t *testing.T) {
	ctx := context.Background()
	allocs := map[int]float64{}
	for _, n := range []int{1, 100} {
		h, f, msg, vs := fanoutFixture(t, n)
		fanOne(h, f, msg, vs, ctx) // warm up maps and batches
		allocs[n] = testing.AllocsPerRun(200, func() { fanOne(h, f, msg, vs, ctx) })
		if got := vs[n-1].sent.Load(); got < 200 {
			t.Fatalf("%d viewers: the last one was sent %d frames, want 200 or more", n, got)
		}
	}
	t.Logf("allocations per frame: %v with 1 viewer, %v with 100", allocs[1], allocs[100])
	if allocs[100] > maxFanoutAllocs {
		t.Errorf("one frame to 100 viewers allocates %v times, limit %d", allocs[100], maxFanoutAllocs)
	}
	if allocs[100] > allocs[1] {
		t.Errorf("allocations grow with viewers: %v for 1, %v for 100", allocs[1], allocs[100])
	}
}
