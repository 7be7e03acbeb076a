package web

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// TestBrowserH264Resize opens a room in Chromium whose only publisher
// sends 1280x720 H.264 and adapts it to its viewers' path: the page shows
// it on the full-size h264 layer. Fake viewers report congestion that
// takes the publisher down to its last rung, half the size, and holds it
// there; then they fall silent, and on the gateway's reports of a clear
// path (the page's) it climbs back to full size. Each change reopens the publisher's encoder:
// a keyframe with new parameter sets, and a new codec string in presence
// (x264's level follows the size). The page decodes on across both: the
// new size under the new codec string, frames flowing, no decode error,
// no picture from a broken chain. It may reopen its decoder for the new
// codec string at a keyframe only: one reopened at a delta frame fails
// that frame, a decode error at every change.
func TestBrowserH264Resize(t *testing.T) {
	ctx := browser(t)
	if !media.CanEncodeH264() {
		hubtest.Unavailable(t, "this build cannot encode H.264 (the full build, with cgo and FFmpeg, can)")
	}
	h := startHub(t, broker.Config{}, Config{})
	const (
		room, name = "resize", "cam"
		fps        = 20
		// The bitrate is its own floor: the first step down halves the
		// frame rate, the next one the size.
		bitrate = 800_000
	)
	pub := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{
		Room: room, Name: name, Source: "pattern", FPS: fps, Width: 1280, Height: 720,
		Codec: protocol.CodecH264, Bitrate: bitrate, MinBitrate: bitrate, Adapt: true, KeyInt: time.Second,
		Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, nil))})
	adapt := func() publisher.AdaptStats {
		a, _ := pub.Stats().AdaptOf(protocol.H264)
		return a
	}
	announced := watchLayer(t, hubtest.Connect(t, h.b.ClientURL()), room, name, protocol.H264)

	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/"+room)); err != nil {
		t.Fatal(err)
	}
	if ok := eval[bool](t, ctx, `typeof VideoDecoder === "function"`); !ok {
		t.Fatal("this Chromium has no WebCodecs VideoDecoder")
	}
	cam := func() tileStats { return pageStats(t, ctx)[name] }
	lazy := hubtest.Lazy(func() any { return describeTile(cam()) })

	// shows waits until the page decodes cam's h264 layer at w x h under
	// the codec string presence announces for that size, then for n more
	// frames at that size, and returns the tile's stats then.
	shows := func(w, h, n int, within time.Duration) (tileStats, string) {
		t.Helper()
		size := protocol.FormatSize(w, h)
		var codec string
		hubtest.Eventually(t, within, func() bool {
			if l := announced(); l.Width == w && l.Height == h {
				codec = l.Codec
			}
			s := cam()
			return codec != "" && s.Layer == "h264" && s.Size == size && s.Codec == codec
		}, "the page does not decode cam's h264 at %s under the codec string presence announces for it (%q; presence: %+v): %v",
			size, hubtest.Lazy(func() any { return codec }), hubtest.Lazy(func() any { return announced() }), lazy)
		s0 := cam()
		hubtest.Eventually(t, within, func() bool {
			s := cam()
			return s.Size == size && s.Decoded >= s0.Decoded+n
		}, "the page stopped decoding cam at %s (from %d decoded): %v", size, s0.Decoded, lazy)
		s := cam()
		if s.DecodeErrors != 0 || s.CorruptShown != 0 {
			t.Errorf("the page at %s: %d decode errors (last: %s), %d pictures from a broken chain, want none: %s",
				size, s.DecodeErrors, s.LastError, s.CorruptShown, describeTile(s))
		}
		return s, codec
	}
	full, fullCodec := shows(1280, 720, 2*fps, 60*time.Second)
	t.Logf("the page at full size: %s", describeTile(full))

	// Two fake viewers, against the gateway's one report: congestion
	// that takes the publisher down to half the size and holds it there
	// while the page is looked at.
	start := time.Now()
	congestion := hubtest.Congest(t, hubtest.Connect(t, h.b.ClientURL()), room, name, 2)
	hubtest.Eventually(t, 20*time.Second, func() bool { return adapt().Width == 640 },
		"the publisher did not halve its size: %+v", hubtest.Lazy(func() any { return adapt() }))
	t.Logf("size halved %v after the congestion began: %+v", time.Since(start).Round(10*time.Millisecond), adapt())
	// At half the frame rate, two seconds of video.
	half, halfCodec := shows(640, 360, fps, 30*time.Second)
	t.Logf("the page at half size: %s", describeTile(half))
	if halfCodec == fullCodec {
		t.Fatalf("the codec string stays %s at half the size: this test no longer sees the page reopen its decoder", halfCodec)
	}

	// The fake viewers fall silent and are forgotten; the gateway reports
	// a clear path.
	congestion.Stop()
	stopped := time.Now()
	hubtest.Eventually(t, 60*time.Second, func() bool { return adapt().Width == 1280 },
		"the publisher did not climb back to full size: %+v", hubtest.Lazy(func() any { return adapt() }))
	t.Logf("full size again %v after the congestion ended: %+v", time.Since(stopped).Round(10*time.Millisecond), adapt())
	back, _ := shows(1280, 720, fps, 30*time.Second)
	t.Logf("the page at full size again: %s", describeTile(back))
}

// describeTile says what a failed wait or the log needs of a tile's stats.
func describeTile(s tileStats) string {
	return fmt.Sprintf("%s on %q at %q, codec %q: %d decoded, %d keyframes, %d decode errors (%q), %d corrupt shown, %d gaps, %d waited, %d key requests, %d behind",
		s.Name, s.Layer, s.Size, s.Codec, s.Decoded, s.Keyframes, s.DecodeErrors, s.LastError, s.CorruptShown, s.Gaps, s.Waited, s.KeyRequests, s.Behind)
}

// watchLayer follows the presence of room/name on nc and returns a func
// that says what the last one announced of layer l (zero before any).
func watchLayer(t testing.TB, nc *nats.Conn, room, name string, l protocol.Layer) func() protocol.LayerInfo {
	t.Helper()
	var (
		mu   sync.Mutex
		last protocol.LayerInfo
	)
	if _, err := nc.Subscribe(protocol.ParticipantPresence(room, name), func(m *nats.Msg) {
		p, err := protocol.DecodePresence(m.Data)
		if err != nil {
			return
		}
		li, _ := p.Layer(l)
		mu.Lock()
		last = li
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return func() protocol.LayerInfo {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}
