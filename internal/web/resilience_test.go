package web

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
)

// TestGatewayResumesAfterBrokerRestart kills a stock nats-server process
// with SIGKILL under a running gateway (connected as "vidhub web" is,
// through natsconn), a pattern publisher and a Go WebSocket viewer, and
// restarts it on the same port: the viewer's socket stays open, and
// frames captured after the broker's return reach it within 2 seconds,
// with no restart of the gateway. /healthz says 503 while the broker is
// away.
func TestGatewayResumesAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server: skipped with -short")
	}
	srv := hubtest.StartNatsServer(t, 0)
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL, Name: "vidhub web", Wait: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	g, err := New(Config{Conn: nc, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	startPattern(t, srv.URL, "lobby", "alice", 20, 320, 180)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dial(t, ctx, g.URL(), "/ws/view/lobby")
	var newest atomic.Int64 // capture time of the newest frame, Unix ns
	var frames atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := readFrame(ctx, c, nil)
			if err != nil {
				readErr <- err
				return
			}
			frames.Add(1)
			newest.Store(f.Meta.Time)
		}
	}()
	hubtest.Eventually(t, 20*time.Second, func() bool { return frames.Load() > 5 }, "no frames before the outage")

	srv.Kill()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		status, _ := get(t, g.URL()+"/healthz")
		return status == 503
	}, "/healthz did not notice the broker going away")

	srv2 := hubtest.StartNatsServer(t, srv.Port)
	back := time.Now()
	hubtest.Eventually(t, 2*time.Second, func() bool { return newest.Load() > back.UnixNano() },
		"no frame captured after the broker's return reached the viewer within 2 s (%d frames in all)", frames.Load())
	t.Logf("frames resumed %v after the broker came back on %s", time.Since(back).Round(time.Millisecond), srv2.URL)
	select {
	case err := <-readErr:
		t.Fatalf("the viewer's socket ended: %v", err)
	default:
	}
	if status, _ := get(t, g.URL()+"/healthz"); status != 200 {
		t.Errorf("/healthz says %d after the broker came back", status)
	}
}
