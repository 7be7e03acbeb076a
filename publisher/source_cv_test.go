//go:build cgo && !vidhub_lite

package publisher_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media/mediatest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// gstCamera is a GStreamer pipeline standing in for a 30 fps camera.
const gstCamera = "gst:videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! appsink"

func TestGStreamerSource(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.gst.>")
	nc := hubtest.Connect(t, b.ClientURL())
	p := hubtest.Publish(t, nc, publisher.Config{Room: "gst", Name: "cam", Source: gstCamera, FPS: 15})
	if w, h := p.Size(); w != 320 || h != 240 {
		t.Errorf("size %dx%d, want the pipeline's 320x240", w, h)
	}
	hubtest.Eventually(t, 15*time.Second, func() bool { return rec.count("vidhub.gst.cam.hi") >= 10 }, "no frames from the GStreamer source")
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range rec.get("vidhub.gst.cam.hi") {
		meta, err := protocol.ParseFrame(m.Header, m.Data)
		if err != nil || meta.Width != 320 || meta.Height != 240 {
			t.Fatalf("frame %+v: %v", meta, err)
		}
	}
	lo := rec.get("vidhub.gst.cam.lo")
	if len(lo) == 0 {
		t.Fatal("no lo frames")
	}
	if meta, _ := protocol.ParseFrameHeader(lo[0].Header); meta.Width != 320 || meta.Height != 240 {
		t.Errorf("lo of a 320-wide source is %dx%d, want 320x240 (never upscaled)", meta.Width, meta.Height)
	}
}

// writeClip writes n frames of w x h video, each frame a different grey.
func writeClip(t *testing.T, n, w, h int) string {
	t.Helper()
	return mediatest.WriteClip(t, n, w, h)
}

func TestFileSource(t *testing.T) {
	clip := writeClip(t, 10, 160, 120)
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())

	t.Run("once", func(t *testing.T) {
		rec := record(t, viewer, "vidhub.file.once.hi")
		nc := hubtest.Connect(t, b.ClientURL())
		p := hubtest.Publish(t, nc, publisher.Config{Room: "file", Name: "once", Source: clip, FPS: 60})
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				t.Fatalf("Run at the end of the file: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("publisher did not stop at the end of the file")
		}
		if st := p.Stats(); st.Captured != 10 {
			t.Errorf("captured %d frames of a 10-frame clip", st.Captured)
		}
		hubtest.Eventually(t, 15*time.Second, func() bool { return rec.count("vidhub.file.once.hi") >= 8 }, "file frames not delivered")
	})

	t.Run("loop", func(t *testing.T) {
		rec := record(t, viewer, "vidhub.file.loop.hi")
		nc := hubtest.Connect(t, b.ClientURL())
		p := hubtest.Publish(t, nc, publisher.Config{Room: "file", Name: "loop", Source: clip, FPS: 60, Loop: true})
		hubtest.Eventually(t, 15*time.Second, func() bool { return rec.count("vidhub.file.loop.hi") >= 25 }, "--loop did not go past the clip's 10 frames")
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.Captured < 25 {
			t.Errorf("captured %d", st.Captured)
		}
	})
}

func TestBadSources(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	nc := hubtest.Connect(t, b.ClientURL())
	notVideo := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notVideo, []byte("not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ source, want string }{
		{"/no/such/clip.mp4", "/no/such/clip.mp4"},
		{notVideo, "not a video"},
		{"/dev/video93", "camera attached"},
		{"93", "/dev/video93"},
		{"gst:nosuchelement ! appsink", "GStreamer"},
	} {
		_, err := publisher.New(nc, publisher.Config{Room: "r", Name: "x", Source: tc.source})
		if !errors.Is(err, publisher.ErrSource) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source %q: %v; want ErrSource mentioning %q", tc.source, err, tc.want)
		}
	}
	if _, err := publisher.New(nc, publisher.Config{Room: "r", Name: "x", Source: gstCamera, Loop: true}); !errors.Is(err, publisher.ErrBadConfig) {
		t.Errorf("--loop on a live source: %v", err)
	}
}
