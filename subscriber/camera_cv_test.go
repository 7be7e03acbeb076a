//go:build cgo && !vidhub_lite

package subscriber_test

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// cameraSource is a GStreamer test source standing in for a camera.
func cameraSource() string {
	return "gst:videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=20/1 ! videoconvert ! appsink"
}

// TestCameraLoss takes a camera away (a GStreamer source reading a file
// that the test removes) and brings it back: the publisher reopens it with
// backoff, and the viewer's tile shows the participant as stalled in the
// meantime instead of dropping it.
func TestCameraLoss(t *testing.T) {
	dir := t.TempDir()
	still := filepath.Join(dir, "cam.jpg")
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(still, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	source := "gst:multifilesrc location=" + still + ` loop=true caps="image/jpeg,framerate=20/1" ! jpegdec ! videoconvert ! appsink`

	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	publish(t, url, publisher.Config{Room: "cam", Name: "door", Source: source})
	r := join(t, url, subscriber.Config{Room: "cam", StatsEvery: 250 * time.Millisecond})
	hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(r, 10, "door") }, "no frames from the camera")

	hidden := still + ".gone"
	if err := os.Rename(still, hidden); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 15*time.Second, func() bool {
		tl := tile(r, "door")
		return tl != nil && tl.Stats().Stalled
	}, "tile not marked stalled while the camera is gone")
	if tile(r, "door") == nil {
		t.Fatal("tile vanished with the camera")
	}
	stalledAt := tile(r, "door").Stats().Frames
	if err := os.Rename(hidden, still); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 20*time.Second, func() bool {
		tl := tile(r, "door")
		return tl != nil && tl.Stats().Frames >= stalledAt+10 && !tl.Stats().Stalled
	}, "camera not reopened after it came back")
	if n := len(r.Tiles()); n != 1 {
		t.Errorf("%d tiles, want 1", n)
	}
}
