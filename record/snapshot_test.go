package record_test

import (
	"bytes"
	"errors"
	"image/jpeg"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
)

// TestSnapshot takes pictures from a recording: from H.264, decoded from
// the keyframe before the moment; from JPEG, the recorded frame as it is.
func TestSnapshot(t *testing.T) {
	if !media.H264Available() {
		hubtest.Unavailable(t, "this build cannot decode H.264")
	}
	url, nc := recording(t, record.Config{Room: "snap", Layers: []protocol.Layer{protocol.H264, protocol.Lo}})
	hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: "snap", Name: "cam", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: 2 * time.Second, Encode: publisher.EncodeAll})
	hubtest.WaitRecorded(t, nc, "snap", 3*time.Second)
	at := time.Now().Add(-time.Second)
	for _, c := range []struct {
		layer protocol.Layer
		w, h  int
	}{{protocol.H264, 320, 180}, {protocol.Lo, 320, 180}, {"", 320, 180}} {
		s, err := record.TakeSnapshot(ctx(t), nc, record.SnapshotConfig{Room: "snap", Name: "cam", Layer: c.layer, At: at})
		if err != nil {
			t.Fatalf("%q: %v", c.layer, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(s.JPEG))
		if err != nil {
			t.Fatalf("%q: not a JPEG: %v", c.layer, err)
		}
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h || s.At.After(at) || at.Sub(s.At) > 200*time.Millisecond {
			t.Errorf("%q: %dx%d captured %v before the moment asked for, want %dx%d just before it", c.layer, b.Dx(), b.Dy(), at.Sub(s.At), c.w, c.h)
		}
		// The pattern is colour bars and moving shapes: a decoded picture
		// is far from flat.
		if spread := hubtest.LumaSpread(img); spread < 100 {
			t.Errorf("%q: the picture is flat (brightness variance %.0f)", c.layer, spread)
		}
	}
	if s, err := record.TakeSnapshot(ctx(t), nc, record.SnapshotConfig{Room: "snap", Name: "cam"}); err != nil || time.Since(s.At) > 2*time.Second {
		t.Errorf("the newest picture: %v, captured %v ago", err, time.Since(s.At))
	}
	if _, err := record.TakeSnapshot(ctx(t), nc, record.SnapshotConfig{Room: "snap", Name: "nobody"}); !errors.Is(err, record.ErrNothing) {
		t.Errorf("a participant never recorded: %v, want ErrNothing", err)
	}
	if _, err := record.TakeSnapshot(ctx(t), nc, record.SnapshotConfig{Room: "snap", Name: "cam", Layer: protocol.Hi}); !errors.Is(err, record.ErrBadConfig) {
		t.Errorf("a layer not recorded: %v, want ErrBadConfig", err)
	}
}
