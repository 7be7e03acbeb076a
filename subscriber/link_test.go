package subscriber_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// statsWatch keeps the newest stats a room hands to OnStats. Once they
// show a count, the room's link check has run on it: OnStats comes after
// it in the same interval.
type statsWatch struct {
	mu   sync.Mutex
	last []subscriber.TileStats
}

func (w *statsWatch) onStats(s []subscriber.TileStats) {
	w.mu.Lock()
	w.last = s
	w.mu.Unlock()
}

// reconnects is the reconnect count of the newest stats, 0 without any.
func (w *statsWatch) reconnects() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.last) == 0 {
		return 0
	}
	return w.last[0].Reconnects
}

// TestBrokerRestartsAreNotCuts restarts the broker twice within the slow
// link window under a viewer taking hi with --layer auto: a broker that
// comes back (or a failover) says nothing about the viewer's link, so it
// stays on hi.
func TestBrokerRestartsAreNotCuts(t *testing.T) {
	srv := hubtest.StartNatsServer(t, 0)
	publish(t, srv.URL, publisher.Config{Room: "r", Name: "cam", Source: "pattern"})
	var w statsWatch
	r := join(t, srv.URL, subscriber.Config{Room: "r", OnStats: w.onStats})
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 5, "cam") }, "no frames")
	if r.Layer() != protocol.Hi {
		t.Fatalf("one publisher, auto took %s", r.Layer())
	}
	for i := uint64(1); i <= 2; i++ {
		srv.Kill()
		srv = hubtest.StartNatsServer(t, srv.Port)
		// Each restart seen by the link check on its own, as two slow
		// consumer cuts would be.
		hubtest.Eventually(t, 15*time.Second, func() bool { return w.reconnects() >= i }, "restart %d: reconnects in stats %d", i, w.reconnects())
	}
	if r.Reconnects() != 2 {
		t.Errorf("room counts %d reconnects, want 2", r.Reconnects())
	}
	if r.Layer() != protocol.Hi || r.LayerReason() != "" {
		t.Fatalf("two broker restarts moved the viewer to %s: %q", r.Layer(), r.LayerReason())
	}
	n := tile(r, "cam").Stats().Frames
	hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(r, n+10, "cam") }, "no frames after the restarts")
	if st := tile(r, "cam").Stats(); st.Layer != protocol.Hi || st.Reconnects != 2 {
		t.Errorf("stats after two restarts %+v, want hi and 2 reconnects", st)
	}
}

// TestSlowConsumerCutsFallBackToLo makes the broker cut a viewer off as a
// slow consumer twice (the viewer stops reading while a flood fills its
// socket and the broker's pending limit): an auto viewer then falls back
// to lo and says why.
func TestSlowConsumerCutsFallBackToLo(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "slow.conf")
	// A small pending limit: a viewer that stops reading is cut off soon.
	if err := os.WriteFile(conf, []byte("max_payload: 1MB\nmax_pending: 2MB\nwrite_deadline: \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := hubtest.Broker(t, broker.Config{ConfigFile: conf, Listen: "127.0.0.1:-1"})
	url := b.ClientURL()
	publish(t, url, publisher.Config{Room: "r", Name: "cam", Source: "pattern"})
	var w statsWatch
	d := &stallDialer{}
	vnc := hubtest.Connect(t, url, nats.SetCustomDialer(d))
	r, err := subscriber.Join(vnc, subscriber.Config{Room: "r", OnStats: w.onStats})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 5, "cam") }, "no frames")
	if r.Layer() != protocol.Hi {
		t.Fatalf("one publisher, auto took %s", r.Layer())
	}

	flood := hubtest.Connect(t, url)
	junk := make([]byte, 512<<10)
	for i := uint64(1); i <= 2; i++ {
		cuts := b.Server().NumSlowConsumersClients()
		d.hold()
		hubtest.Eventually(t, 20*time.Second, func() bool {
			for range 8 {
				// Bad frames of cam: the viewer counts them, nobody else gets them.
				if err := flood.Publish("vidhub.r.cam.hi", junk); err != nil {
					t.Fatal(err)
				}
			}
			_ = flood.Flush()
			return b.Server().NumSlowConsumersClients() > cuts
		}, "cut %d: the broker did not cut off the stalled viewer", i)
		d.release()
		hubtest.Eventually(t, 15*time.Second, func() bool { return w.reconnects() >= i }, "cut %d: reconnects in stats %d", i, w.reconnects())
		if i == 1 && (r.Layer() != protocol.Hi || r.LayerReason() != "") {
			t.Fatalf("one cut moved the viewer to %s: %q", r.Layer(), r.LayerReason())
		}
	}
	if r.Layer() != protocol.Lo || !strings.Contains(r.LayerReason(), "cut off twice") {
		t.Fatalf("cut off twice, the viewer takes %s: %q", r.Layer(), r.LayerReason())
	}
	n := tile(r, "cam").Stats().Frames
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, n+10, "cam") }, "no lo frames after the fallback")
	if st := tile(r, "cam").Stats(); !strings.Contains(st.LayerReason, "cut off twice") {
		t.Errorf("stats do not say why: %+v", st)
	}
}

// stallDialer dials connections whose reads the test can hold up, like a
// link that stops delivering: the broker's writes back up until it cuts
// the client off as a slow consumer.
type stallDialer struct {
	held atomic.Pointer[chan struct{}] // closed on release; nil when reads flow
}

func (d *stallDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10) // back up sooner
	}
	return &stallConn{Conn: c, d: d}, nil
}

func (d *stallDialer) hold() {
	ch := make(chan struct{})
	d.held.Store(&ch)
}

func (d *stallDialer) release() {
	if ch := d.held.Swap(nil); ch != nil {
		close(*ch)
	}
}

type stallConn struct {
	net.Conn
	d *stallDialer
}

func (c *stallConn) Read(b []byte) (int, error) {
	if ch := c.d.held.Load(); ch != nil {
		<-*ch
	}
	return c.Conn.Read(b)
}
