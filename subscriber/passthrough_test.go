//go:build cgo && !vidhub_lite

package subscriber_test

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
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

// TestPassthroughFile checks that an H.264 file is published untouched
// (the very access units the file holds, no encoder), that nothing is
// decoded while no decoded layer is watched, and that a viewer who joins
// mid-GOP gets a picture from the publisher's GOP reply rather than
// waiting for the file's next keyframe, with no corruption.
func TestPassthroughFile(t *testing.T) {
	file := hubtest.H264Clip(t, hubtest.Clip{Width: 640, Height: 360, Seconds: 12, Keyint: 150}) // a keyframe every 5 s
	b := hubtest.Broker(t, broker.Config{})
	spy := hubtest.Connect(t, b.ClientURL())
	var got [][]byte
	var jpegs int
	done := make(chan struct{})
	sub, err := spy.Subscribe("vidhub.pt.cam.*", func(m *nats.Msg) {
		s, _ := protocol.ParseSubject(m.Subject)
		switch {
		case s.Layer == protocol.H264 && len(got) < 40:
			got = append(got, m.Data)
			if len(got) == 40 {
				close(done)
			}
		case s.Layer == protocol.Hi || s.Layer == protocol.Lo:
			jpegs++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	pub := publish(t, b.ClientURL(), publisher.Config{Room: "pt", Name: "cam", Source: file, Codec: protocol.CodecH264, Loop: true})
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d access units from the passthrough publisher", len(got))
	}
	// The same bytes as the file's own access units.
	dmx, err := media.OpenH264(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dmx.Close() }()
	for i := range got {
		au, err := dmx.Read()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(au.Data, got[i]) {
			t.Fatalf("access unit %d differs from the file's: the source was not passed through", i)
		}
	}

	// A viewer joins at frame ~60, mid-GOP: the GOP reply gives it a
	// picture long before the keyframe at frame 150.
	hubtest.Eventually(t, 10*time.Second, func() bool { return pub.Stats().Published >= 60 }, "the file stalled")
	r := join(t, b.ClientURL(), subscriber.Config{Room: "pt", Layer: subscriber.LayerHi})
	var st subscriber.TileStats
	hubtest.Eventually(t, 10*time.Second, func() bool {
		if tl := tile(r, "cam"); tl != nil {
			st = tl.Stats()
		}
		return st.Frames >= 10
	}, "no decoded frames: %+v", hubtest.Lazy(func() any { return st }))
	ps := pub.Stats()
	if st.GOPs < 1 || ps.GOPReplies < 1 || st.CorruptShown != 0 || st.DecodeErrors != 0 {
		t.Errorf("viewer %+v, publisher %+v: want a GOP reply decoded, no corruption", st, ps)
	}
	if ps.Published >= 150 {
		t.Errorf("the viewer's first frames came after the file's next keyframe (frame %d): no sign of the GOP reply", ps.Published)
	}
	if jpegs != 0 {
		t.Errorf("%d JPEG frames while nobody watched JPEG: the publisher decoded for nothing", jpegs)
	}
}

// TestPassthroughRTSP publishes a real RTSP camera (GStreamer's RTSP
// server, x264) through: viewers decode it without corruption, and a
// viewer that takes JPEG gets it, decoded and encoded at the publisher
// only because it watches.
func TestPassthroughRTSP(t *testing.T) {
	hubtest.NeedTools(t, "/usr/bin/python3", "gst-inspect-1.0")
	if out, err := exec.Command("gst-inspect-1.0", "x264enc").CombinedOutput(); err != nil {
		hubtest.Unavailable(t, "GStreamer's x264enc is missing (gstreamer1.0-plugins-ugly): %v\n%s", err, out)
	}
	port := strconv.Itoa(hubtest.FreePort(t))
	cam := hubtest.StartProc(t, hubtest.ProcConfig{Name: "rtsp camera"}, "/usr/bin/python3", "testdata/rtsp_camera.py", port, "60")
	cam.WaitOutput(20*time.Second, "ready")
	url := "rtsp://127.0.0.1:" + port + "/cam"

	b := hubtest.Broker(t, broker.Config{})
	pub := publish(t, b.ClientURL(), publisher.Config{Room: "cam", Name: "door", Source: url, Codec: protocol.CodecH264})
	r := join(t, b.ClientURL(), subscriber.Config{Room: "cam", Layer: subscriber.LayerHi, StatsEvery: 200 * time.Millisecond})
	var st subscriber.TileStats
	hubtest.Eventually(t, 30*time.Second, func() bool {
		if tl := tile(r, "door"); tl != nil {
			st = tl.Stats()
		}
		return st.Frames >= 45 && strings.HasPrefix(st.Codec, "avc1.") && st.Width > 0
	}, "no decoded frames from the RTSP camera: %+v", hubtest.Lazy(func() any { return st }))
	if st.CorruptShown != 0 || st.DecodeErrors != 0 || st.Width != 640 || st.Height != 360 {
		t.Errorf("viewer %#v: want 640x360 and no corruption", st)
	}

	jr := join(t, b.ClientURL(), subscriber.Config{Room: "cam", Layer: subscriber.LayerLo, Codec: protocol.CodecJPEG, StatsEvery: 200 * time.Millisecond})
	var js subscriber.TileStats
	hubtest.Eventually(t, 30*time.Second, func() bool {
		if tl := tile(jr, "door"); tl != nil {
			js = tl.Stats()
		}
		return js.Frames >= 10 && js.Width > 0
	}, "no JPEG frames from the RTSP camera: %+v", hubtest.Lazy(func() any { return js }))
	if js.Codec != "jpeg" || js.Layer != protocol.Lo || js.Width != 320 {
		t.Errorf("JPEG viewer %+v: want jpeg on lo, 320 wide", js)
	}
	if ps := pub.Stats(); ps.Keyframes < 1 {
		t.Errorf("publisher %+v: no keyframe passed through", ps)
	}
}
