package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// tileStats is what the room page says about one tile (RoomView.stats).
type tileStats struct {
	Name         string   `json:"name"`
	Codec        string   `json:"codec"`
	Layer        string   `json:"layer"`
	Size         string   `json:"size"`
	Frames       int      `json:"frames"`
	FPS          int      `json:"fps"`
	FirstFrameMs int      `json:"firstFrameMs"`
	Latency      *float64 `json:"latency"`
	LastError    string   `json:"lastError"`
	Decoded      int      `json:"decoded"`
	Keyframes    int      `json:"keyframes"`
	DecodeErrors int      `json:"decodeErrors"`
	CorruptShown int      `json:"corruptShown"`
	Gaps         int      `json:"gaps"`
	Waited       int      `json:"waited"`
	KeyRequests  int      `json:"keyRequests"`
	Behind       int      `json:"behind"`
	Render       string   `json:"render"`    // where H.264 pictures go: "video" or "canvas"
	Presented    int      `json:"presented"` // pictures that reached the screen
	Busy         int      `json:"busy"`      // pictures dropped: the video track had not taken the last
	At           float64  `json:"at"`        // the page's performance.now() when read
}

func pageStats(t testing.TB, ctx context.Context) map[string]tileStats {
	list := eval[[]tileStats](t, ctx, `window.vidhubRoom ? window.vidhubRoom.stats().map(s => ({...s, at: performance.now()})) : []`)
	out := map[string]tileStats{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// TestBrowserH264 opens a room in Chromium where alice publishes H.264
// (the product's publisher, encoding with FFmpeg) and bob only JPEG: the
// page decodes alice with WebCodecs at close to her frame rate, never
// shows a picture from a broken chain (corrupt_shown 0) and reports her
// codec string; bob stays on JPEG. The page's presence watches alice's
// small H.264 layer and views JPEG lo for bob. Focusing alice moves her
// to the full-size H.264 layer, which starts at a keyframe.
func TestBrowserH264(t *testing.T) {
	ctx := browser(t)
	h := startHub(t, broker.Config{}, Config{})
	const fps = 25
	alice := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{
		Room: "cams", Name: "alice", Source: "pattern", FPS: fps, Width: 640, Height: 360, Codec: protocol.CodecH264})
	startPattern(t, h.b.ClientURL(), "cams", "bob", 10, 320, 180)

	pres := &presenceLog{}
	spy := hubtest.Connect(t, h.b.ClientURL())
	if _, err := spy.Subscribe(protocol.RoomPresence("cams"), func(m *nats.Msg) {
		if s, err := protocol.ParseSubject(m.Subject); err == nil && strings.HasPrefix(s.Participant(), "web-") {
			pres.add(m)
		}
	}); err != nil {
		t.Fatal(err)
	}

	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/cams")); err != nil {
		t.Fatal(err)
	}
	if ok := eval[bool](t, ctx, `typeof VideoDecoder === "function"`); !ok {
		t.Fatal("this Chromium has no WebCodecs VideoDecoder")
	}
	lazy := hubtest.Lazy(func() any { return fmt.Sprintf("%+v", pageStats(t, ctx)) })
	hubtest.Eventually(t, 60*time.Second, func() bool {
		s := pageStats(t, ctx)
		return s["alice"].Decoded > 10 && s["bob"].Frames > 3
	}, "the page does not show alice in H.264 and bob: %v", lazy)

	// The frame rate, counted by the page over a few seconds of video.
	s0 := pageStats(t, ctx)["alice"]
	hubtest.Eventually(t, 60*time.Second, func() bool { return pageStats(t, ctx)["alice"].Decoded >= s0.Decoded+3*fps },
		"alice stopped decoding: %v", lazy)
	s1 := pageStats(t, ctx)["alice"]
	got := float64(s1.Decoded-s0.Decoded) / ((s1.At - s0.At) / 1000)
	t.Logf("alice in Chromium: %.1f fps decoded (publisher at %d), %+v", got, fps, s1)
	if got < 0.7*fps {
		t.Errorf("alice decodes at %.1f fps, want close to %d", got, fps)
	}
	if !strings.HasPrefix(s1.Codec, "avc1.") || s1.Layer != "h264lo" {
		t.Errorf("alice's tile: codec %q layer %q, want avc1.* on h264lo", s1.Codec, s1.Layer)
	}
	if s1.CorruptShown != 0 || s1.DecodeErrors != 0 {
		t.Errorf("alice's tile: %d pictures from a broken chain, %d decode errors (%s), want none", s1.CorruptShown, s1.DecodeErrors, s1.LastError)
	}
	if s1.Keyframes < 1 || s1.FirstFrameMs < 0 {
		t.Errorf("alice's tile: %d keyframes, first frame after %d ms", s1.Keyframes, s1.FirstFrameMs)
	}
	if b := pageStats(t, ctx)["bob"]; b.Codec != "jpeg" || b.Layer != "lo" {
		t.Errorf("bob's tile: codec %q layer %q, want JPEG lo: he sends no H.264", b.Codec, b.Layer)
	}
	if n := alice.Stats().KeyRequests; n < 1 {
		t.Errorf("alice heard %d keyframe requests: a page that joins mid-stream needs one", n)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		p, _ := pres.last()
		return slices.Equal(p.Watches, []protocol.Layer{protocol.H264Lo}) && slices.Equal(p.Views, []protocol.Layer{protocol.Lo})
	}, "the page's presence does not watch h264lo and view lo: %v", hubtest.Lazy(func() any { p, _ := pres.last(); return p }))
	checkShown(t, ctx, "alice", "video")

	// Focus alice: full size, in H.264 still, from a keyframe on.
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS(`.tile[data-name="alice"]`))); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 30*time.Second, func() bool {
		a := pageStats(t, ctx)["alice"]
		return a.Layer == "h264" && a.Size == "640x360"
	}, "focused alice is not on h264 at 640x360: %v", lazy)
	a := pageStats(t, ctx)["alice"]
	hubtest.Eventually(t, 30*time.Second, func() bool { return pageStats(t, ctx)["alice"].Decoded >= a.Decoded+fps },
		"focused alice stopped decoding: %v", lazy)
	a = pageStats(t, ctx)["alice"]
	if a.CorruptShown != 0 || a.DecodeErrors != 0 {
		t.Errorf("after the switch: %d pictures from a broken chain, %d decode errors (%s)", a.CorruptShown, a.DecodeErrors, a.LastError)
	}
	if a.Latency != nil {
		t.Logf("alice focused: %+v; capture to decoded %.1f ms", a, *a.Latency)
	}
	if n := metric(t, h.url, `vidhub_web_frames_out_total{layer="h264"}`); n < 1 {
		t.Errorf("the gateway sent %v frames of h264", n)
	}

	// The canvas, as browsers without MediaStreamTrackGenerator draw.
	nctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/cams?render=canvas")); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 60*time.Second, func() bool { return pageStats(t, ctx)["alice"].Decoded > 10 },
		"with render=canvas the page does not decode alice: %v", lazy)
	checkShown(t, ctx, "alice", "canvas")
	if a := pageStats(t, ctx)["alice"]; a.CorruptShown != 0 || a.DecodeErrors != 0 {
		t.Errorf("drawing on the canvas: %d pictures from a broken chain, %d decode errors (%s)", a.CorruptShown, a.DecodeErrors, a.LastError)
	}
}

// checkShown checks that name's H.264 tile shows its pictures through
// render ("video" or "canvas"), and that they are not blank.
func checkShown(t *testing.T, ctx context.Context, name, render string) {
	t.Helper()
	lazy := hubtest.Lazy(func() any { return fmt.Sprintf("%+v", pageStats(t, ctx)[name]) })
	hubtest.Eventually(t, 30*time.Second, func() bool {
		s := pageStats(t, ctx)[name]
		return s.Render == render && (render == "canvas" || s.Presented > 10)
	}, "%s's tile does not show its pictures through its %s: %v", name, render, lazy)
	el := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).tagName`, tilePicture(name)))
	if want := map[string]string{"video": "VIDEO", "canvas": "CANVAS"}[render]; el != want {
		t.Errorf("%s's tile shows a %s, want a %s", name, el, want)
	}
	if s := hubtest.LumaSpread(shot(t, ctx, tilePicture(name))); s < 100 {
		t.Errorf("%s's tile looks blank through its %s (brightness variance %.0f)", name, render, s)
	}
}
