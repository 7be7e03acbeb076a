//go:build matprofile && cgo && !vidhub_lite

package subscriber_test

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// TestMatsClosed shows a room in the real desktop window on a virtual
// display: frames of a pattern and a GStreamer camera are decoded, scaled
// and composed, frames that do not decode are skipped, and a publisher
// leaves while the window runs. Once it stops, no Mat may be left open.
// Run with -tags matprofile.
func TestMatsClosed(t *testing.T) {
	t.Setenv("DISPLAY", hubtest.Xvfb(t))
	rundir := t.TempDir()
	if err := os.Chmod(rundir, 0o700); err != nil { // as Qt wants it
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", rundir)
	before := media.MatCount()

	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	alice := publish(t, url, publisher.Config{Room: "mats", Name: "alice", Source: "pattern"})
	cam := publish(t, url, publisher.Config{Room: "mats", Name: "cam", Source: cameraSource()})
	stopJunk := publishUndecodable(t, url, "mats", "junk")
	r := join(t, url, subscriber.Config{Room: "mats", KeepFrames: true})
	hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(r, 5, "alice", "cam", "junk") }, "tiles %v", tileNames(r))

	// HighGUI wants one OS thread for a window's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Two pictures for a while, with undecodable frames skipped; then
	// alice leaves and her picture must go; then the camera alone.
	var both, alone int
	leaving := make(chan struct{})
	err := subscriber.RunWindow(ctx, r, subscriber.WindowConfig{Width: 640, Height: 360, OnFrame: func(tiles int) {
		switch {
		case both < 30:
			if tiles == 2 {
				both++
			}
			if both == 30 {
				if junk := tile(r, "junk"); junk == nil || junk.Stats().Bad < 3 {
					both-- // not yet: the window has skipped too few undecodable frames
					return
				}
				go func() {
					defer close(leaving)
					if err := alice.Stop(); err != nil {
						t.Error(err)
					}
				}()
			}
		case tile(r, "alice") == nil && tiles == 1:
			if alone++; alone == 30 {
				cancel()
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if alone < 30 {
		t.Fatalf("window stopped early: %d frames with both pictures, %d with the camera alone; tiles %v", both, alone, tileNames(r))
	}
	<-leaving
	r.Close()
	stopJunk()
	if err := cam.Stop(); err != nil {
		t.Error(err)
	}
	if n := media.MatCount() - before; n != 0 {
		t.Fatalf("%d Mats left open:\n%s", n, media.MatProfile())
	}
}

// publishUndecodable publishes, as name in room, frames that pass every
// check of the wire protocol but do not decode, until the returned stop
// is called or the test ends.
func publishUndecodable(t *testing.T, url, room, name string) (stop func()) {
	t.Helper()
	nc := hubtest.Connect(t, url)
	addr, err := protocol.NewAddress(room, name)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(),
		Layers: []protocol.LayerInfo{{Layer: protocol.Lo, Width: 320, Height: 180, FPS: 10}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte{0xFF, 0xD8}, append(bytes.Repeat([]byte{0x42}, 2000), 0xFF, 0xD9)...)
	if err := protocol.CheckJPEG(body); err != nil {
		t.Fatalf("the undecodable frame does not pass the protocol's check: %v", err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			_ = nc.Publish(addr.PresenceSubject(), pres)
			for _, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
				h := protocol.FrameHeaders(protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: 320, Height: 180})
				_ = nc.PublishMsg(&nats.Msg{Subject: addr.FrameSubject(l), Header: h, Data: body})
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}
