//go:build cgo

package publisher_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// TestH264Publishes checks what an H.264 publisher sends: access units
// that stock FFmpeg decodes, with v2's headers, SPS and PPS ahead of
// every keyframe, continuous numbers, and presence that announces the
// streams with their codec string. JPEG layers stay unencoded (auto)
// while nobody watches them.
func TestH264Publishes(t *testing.T) {
	hubtest.NeedTools(t, "ffprobe")
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.room1.>")
	nc := hubtest.Connect(t, b.ClientURL())
	pub := hubtest.Publish(t, nc, publisher.Config{Room: "room1", Name: "alice", Source: "pattern", FPS: 30,
		Width: 640, Height: 360, Codec: protocol.CodecH264, KeyInt: time.Second})

	a, _ := protocol.NewAddress("room1", "alice")
	hubtest.Eventually(t, 20*time.Second, func() bool {
		return rec.count(a.FrameSubject(protocol.H264)) >= 75 && rec.count(a.FrameSubject(protocol.H264Lo)) >= 75
	}, "no h264 and h264lo frames from the pattern publisher")
	if err := pub.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := rec.count(a.FrameSubject(protocol.Hi)) + rec.count(a.FrameSubject(protocol.Lo)); n != 0 {
		t.Errorf("%d JPEG frames published while nobody watched JPEG (encode auto)", n)
	}

	for _, tc := range []struct {
		layer protocol.Layer
		w, h  int
	}{{protocol.H264, 640, 360}, {protocol.H264Lo, 320, 180}} {
		msgs := rec.get(a.FrameSubject(tc.layer))
		var stream []byte
		var last uint64
		keys := 0
		for i, m := range msgs {
			if ct := m.Header.Get(protocol.HeaderContentType); ct != "video/h264" {
				t.Fatalf("%s frame %d: Content-Type %q, want video/h264", tc.layer, i, ct)
			}
			meta, err := protocol.ParseLayerFrame(tc.layer, m.Header, m.Data)
			if err != nil {
				t.Fatalf("%s frame %d: %v", tc.layer, i, err)
			}
			if i == 0 && !meta.Key {
				t.Errorf("%s: the first frame is not a keyframe", tc.layer)
			}
			if last != 0 && meta.Seq != last+1 {
				t.Errorf("%s: seq %d after %d: the sequence has a gap", tc.layer, meta.Seq, last)
			}
			last = meta.Seq
			if meta.Width != tc.w || meta.Height != tc.h {
				t.Errorf("%s: size %dx%d, want %dx%d", tc.layer, meta.Width, meta.Height, tc.w, tc.h)
			}
			if meta.Key {
				keys++
			}
			stream = append(stream, m.Data...)
		}
		// 1 s keyframe interval at 30 fps: a keyframe every 30 frames.
		if want := len(msgs) / 30; keys < want || keys > want+2 {
			t.Errorf("%s: %d keyframes in %d frames, want about %d (one a second)", tc.layer, keys, len(msgs), want)
		}
		// A stock decoder reads the stream and counts every frame.
		file := filepath.Join(t.TempDir(), string(tc.layer)+".h264")
		if err := os.WriteFile(file, stream, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", file).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe: %v\n%s", err, out)
		}
		var probe struct {
			Streams []struct {
				Codec  string `json:"codec_name"`
				Width  int    `json:"width"`
				Height int    `json:"height"`
				Frames string `json:"nb_read_frames"`
			} `json:"streams"`
		}
		if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
			t.Fatalf("ffprobe output %s: %v", out, err)
		}
		s := probe.Streams[0]
		if s.Codec != "h264" || s.Width != tc.w || s.Height != tc.h || s.Frames != strconv.Itoa(len(msgs)) {
			t.Errorf("%s: ffprobe reads %+v, want h264 %dx%d with %d frames", tc.layer, s, tc.w, tc.h, len(msgs))
		}
	}

	var p protocol.Presence
	for _, m := range rec.get(a.PresenceSubject()) {
		if pr, err := protocol.DecodePresence(m.Data); err == nil && !pr.Leaving {
			p = pr
		}
	}
	if len(p.Streams) != 2 {
		t.Fatalf("presence streams %+v, want h264 and h264lo", p.Streams)
	}
	for _, s := range p.Streams {
		if !strings.HasPrefix(s.Codec, "avc1.") || s.Bitrate <= 0 {
			t.Errorf("presence stream %+v: want an avc1 codec string and a bitrate", s)
		}
	}
}

// TestKeyframeRequests checks keyframes on demand: a request is served
// at once, and a flood of them is paced to one keyframe per
// KeyRequestEvery, so nobody can make a publisher send only keyframes.
func TestKeyframeRequests(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.room1.alice.h264")
	nc := hubtest.Connect(t, b.ClientURL())
	pub := hubtest.Publish(t, nc, publisher.Config{Room: "room1", Name: "alice", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: time.Minute})
	a, _ := protocol.NewAddress("room1", "alice")
	keysOf := func() (keys, frames int) {
		for _, m := range rec.get(a.FrameSubject(protocol.H264)) {
			if m.Header.Get(protocol.HeaderKey) == "1" {
				keys++
			}
			frames++
		}
		return keys, frames
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { _, n := keysOf(); return n >= 10 }, "no frames")
	if k, _ := keysOf(); k != 1 {
		t.Fatalf("%d keyframes before any request with a one-minute interval, want 1", k)
	}

	// One request: a keyframe within a few frames.
	_, before := keysOf()
	if err := viewer.Publish(a.KeySubject(), []byte("h264")); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 5*time.Second, func() bool { k, _ := keysOf(); return k == 2 }, "no keyframe after a request")
	msgs := rec.get(a.FrameSubject(protocol.H264))
	for i, m := range msgs[before:] {
		if m.Header.Get(protocol.HeaderKey) == "1" {
			if i > 5 {
				t.Errorf("the requested keyframe came %d frames after the request", i)
			}
			break
		}
	}

	// A flood: 30 requests every 3 frames, for 60 frames, gets at most
	// one keyframe per KeyRequestEvery (plus one for the window the
	// flood starts in).
	k0, f0 := keysOf()
	start := time.Now()
	for burst := range 20 {
		for range 30 {
			if err := viewer.Publish(a.KeySubject(), []byte("h264")); err != nil {
				t.Fatal(err)
			}
		}
		if err := viewer.Flush(); err != nil {
			t.Fatal(err)
		}
		hubtest.Eventually(t, 5*time.Second, func() bool { _, n := keysOf(); return n >= f0+3*(burst+1) }, "frames stopped")
	}
	hubtest.Eventually(t, 5*time.Second, func() bool { return pub.Stats().KeyRequests >= 601 }, "requests not heard")
	el := time.Since(start)
	k1, f1 := keysOf()
	maxKeys := int(el/publisher.KeyRequestEvery) + 2
	if got := k1 - k0; got < 2 || got > maxKeys || got > (f1-f0)/3 {
		t.Errorf("a flood of 600 requests over %v (%d frames) gave %d keyframes, want 2 to %d", el.Round(time.Millisecond), f1-f0, got, maxKeys)
	}

	// Garbage and JPEG layers are no requests: only the valid one after
	// them counts.
	for _, body := range []string{"", "hi", "lo", "presence", strings.Repeat("x", 5000)} {
		if err := viewer.Publish(a.KeySubject(), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := viewer.Publish(a.KeySubject(), []byte("h264lo")); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 5*time.Second, func() bool { return pub.Stats().KeyRequests >= 602 }, "the valid request not heard")
	if n := pub.Stats().KeyRequests; n != 602 {
		t.Errorf("%d key requests counted, want 602: garbage counted as requests", n)
	}
}

// TestH264PublisherJPEGLayers: with viewers of the JPEG layers too, an
// H.264 publisher of the full build makes its JPEG frames from the
// pictures its H.264 layers just coded (Stats.JPEGReused), and they are
// JPEGs of the layers' sizes that the standard library decodes (their
// colours: media's TestEncodeJPEGI420).
func TestH264PublisherJPEGLayers(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	rec := record(t, hubtest.Connect(t, b.ClientURL()), "vidhub.jpegs.alice.*")
	for _, l := range []subscriber.LayerMode{subscriber.LayerHi, subscriber.LayerLo} {
		r, err := subscriber.Join(hubtest.Connect(t, b.ClientURL()), subscriber.Config{Room: "jpegs", Layer: l, Codec: protocol.CodecJPEG})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
	}
	pub := hubtest.Publish(t, hubtest.Connect(t, b.ClientURL()), publisher.Config{Room: "jpegs", Name: "alice", Source: "pattern",
		FPS: 30, Width: 640, Height: 360, Codec: protocol.CodecH264})
	a, _ := protocol.NewAddress("jpegs", "alice")
	hubtest.Eventually(t, 20*time.Second, func() bool {
		return rec.count(a.FrameSubject(protocol.Hi)) >= 30 && rec.count(a.FrameSubject(protocol.Lo)) >= 30
	}, "no hi and lo JPEG frames from the H.264 publisher with JPEG viewers")
	if err := pub.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := pub.Publisher.Stats()
	jpegs := 0
	for _, tc := range []struct {
		layer protocol.Layer
		w, h  int
	}{{protocol.Hi, 640, 360}, {protocol.Lo, 320, 180}} {
		for i, m := range rec.get(a.FrameSubject(tc.layer)) {
			meta, err := protocol.ParseLayerFrame(tc.layer, m.Header, m.Data)
			if err != nil {
				t.Fatalf("%s frame %d: %v", tc.layer, i, err)
			}
			img, err := jpeg.Decode(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatalf("%s frame %d: %v", tc.layer, i, err)
			}
			if meta.Width != tc.w || meta.Height != tc.h || img.Bounds() != image.Rect(0, 0, tc.w, tc.h) {
				t.Fatalf("%s frame %d: header %dx%d, picture %v, want %dx%d", tc.layer, i, meta.Width, meta.Height, img.Bounds(), tc.w, tc.h)
			}
			jpegs++
		}
	}
	if !media.CanEncodeJPEGI420() {
		if st.JPEGReused != 0 {
			t.Errorf("JPEGReused %d in a build without libjpeg", st.JPEGReused)
		}
		return
	}
	if st.JPEGReused == 0 || st.JPEGReused < uint64(jpegs)*9/10 {
		t.Errorf("JPEGReused %d of about %d JPEG frames (stats %+v): the JPEG layers did not take the H.264 layers' pictures", st.JPEGReused, jpegs, st)
	}
}
