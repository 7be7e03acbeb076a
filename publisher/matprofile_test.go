//go:build matprofile && cgo && !vidhub_lite

package publisher_test

import (
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// TestMatsClosed runs every OpenCV-backed source and checks that no Mat is
// left open once the publishers stop. Run with -tags matprofile.
func TestMatsClosed(t *testing.T) {
	before := media.MatCount()
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.mats.>")
	clip := writeClip(t, 5, 160, 120)
	for _, cfg := range []publisher.Config{
		{Room: "mats", Name: "gst", Source: gstCamera, FPS: 30, Width: 640, Height: 480},
		{Room: "mats", Name: "file", Source: clip, FPS: 30, Loop: true},
		{Room: "mats", Name: "pattern", Source: "pattern", FPS: 30, Width: 320, Height: 180},
		// An H.264 file passed through, decoded for its JPEG layers.
		{Room: "mats", Name: "h264", Source: hubtest.H264Clip(t, hubtest.Clip{Width: 320, Height: 180, Seconds: 2, Keyint: 30}), Codec: protocol.CodecH264, Encode: publisher.EncodeAll, Loop: true},
	} {
		nc := hubtest.Connect(t, b.ClientURL())
		pub := hubtest.Publish(t, nc, cfg)
		subject := "vidhub.mats." + cfg.Name + ".lo"
		hubtest.Eventually(t, 15*time.Second, func() bool { return rec.count(subject) >= 10 }, "no frames from %s", cfg.Name)
		if err := pub.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if n := media.MatCount() - before; n != 0 {
		t.Fatalf("%d Mats left open:\n%s", n, media.MatProfile())
	}
}
