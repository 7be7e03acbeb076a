package web

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// BenchmarkBrowserPages opens ten room pages in one headless Chromium,
// each a tab of its own, and reports the frame rate each page shows of
// one publisher, counted by the page over five seconds: H.264 decoded
// with WebCodecs, against JPEG in the same run. "single": a 720p30
// publisher alone in the room, so its tile takes the full-size layer;
// "grid": two 640x360 publishers at 30 fps, whose tiles take the small
// layers. Chromium renders in software here (no GPU), on the machine's
// cores, beside the publishers and the gateway.
//
// "h264" pages hand their pictures to a <video> element per tile (the
// page's default where the browser has MediaStreamTrackGenerator);
// "h264-canvas" pages draw them on the tile's canvas (?render=canvas,
// as other browsers do). fps counts pictures decoded (H.264) or drawn
// (JPEG); presented-median what reached the screen: counted by the
// video element (requestVideoFrameCallback), or, on a canvas, one for
// each paint of the page that followed a new picture.
func BenchmarkBrowserPages(b *testing.B) {
	for _, view := range []struct {
		name       string
		pubs, w, h int
	}{{"single", 1, 1280, 720}, {"grid", 2, 640, 360}} {
		for _, mode := range []struct {
			name  string
			codec protocol.Codec
			query string
		}{{"h264", protocol.CodecH264, ""}, {"h264-canvas", protocol.CodecH264, "?render=canvas"}, {"jpeg", protocol.CodecJPEG, ""}} {
			b.Run(view.name+"/"+mode.name, func(b *testing.B) {
				fps, shown := browserPages(b, mode.codec, mode.query, view.pubs, view.w, view.h, 10, 5*time.Second)
				slices.Sort(fps)
				slices.Sort(shown)
				b.ReportMetric(fps[0], "fps-min")
				b.ReportMetric(fps[len(fps)/2], "fps-median")
				b.ReportMetric(shown[len(shown)/2], "presented-median")
			})
		}
	}
}

// browserPages runs n pages (with the query, such as "?render=canvas")
// of a room of pubs publishers of w x h for window, and returns each
// page's fps of the first publisher, and of its pictures presented.
func browserPages(b *testing.B, codec protocol.Codec, query string, pubs, w, h, n int, window time.Duration) (fps, presented []float64) {
	ctx := browser(b)
	hub := startHub(b, broker.Config{}, Config{})
	for i := range pubs {
		name := "cam"
		if i > 0 {
			name = fmt.Sprintf("cam%d", i)
		}
		hubtest.Publish(b, hubtest.Connect(b, hub.b.ClientURL()), publisher.Config{
			Room: "bench", Name: name, Source: "pattern", FPS: 30, Width: w, Height: h, Codec: codec})
	}
	tabs := make([]context.Context, n)
	for i := range tabs {
		tctx, cancel := chromedp.NewContext(ctx)
		b.Cleanup(cancel)
		// The first action on a tab's context opens the tab, for the
		// context's lifetime: not one with a timeout.
		if err := chromedp.Do(tctx); err != nil {
			b.Fatalf("opening tab %d: %v", i, err)
		}
		nctx, ncancel := context.WithTimeout(tctx, 30*time.Second)
		err := chromedp.Do(nctx, chromedp.Navigate(hub.url+"/rooms/bench"+query))
		ncancel()
		if err != nil {
			b.Fatalf("page %d: %v", i, err)
		}
		tabs[i] = tctx
	}
	for i, tctx := range tabs {
		hubtest.Eventually(b, 60*time.Second, func() bool { return pageStats(b, tctx)["cam"].Frames > 30 },
			"page %d shows no frames: %v", i, hubtest.Lazy(func() any { return fmt.Sprintf("%+v", pageStats(b, tctx)) }))
	}
	b.ResetTimer()
	s0 := make([]tileStats, n)
	for i, tctx := range tabs {
		s0[i] = pageStats(b, tctx)["cam"]
	}
	select {
	case <-time.After(window): // the measuring window itself
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	fps, presented = make([]float64, n), make([]float64, n)
	for i, tctx := range tabs {
		s1 := pageStats(b, tctx)["cam"]
		secs := (s1.At - s0[i].At) / 1000
		fps[i] = float64(s1.Frames-s0[i].Frames) / secs
		presented[i] = float64(s1.Presented-s0[i].Presented) / secs
		if s1.CorruptShown != 0 || s1.DecodeErrors != 0 {
			b.Errorf("page %d: %d corrupt pictures shown, %d decode errors", i, s1.CorruptShown, s1.DecodeErrors)
		}
		if i == 0 {
			vis := eval[string](b, tctx, `document.visibilityState`)
			b.Logf("%s%s: page 0 shows layer %s at %s (%s, render %s, %d dropped as the track was busy), visibility %s", codec, query, s1.Layer, s1.Size, s1.Codec, s1.Render, s1.Busy, vis)
		}
	}
	b.Logf("%s%s: fps of %d pages %v, presented %v", codec, query, n, roundAll(fps), roundAll(presented))
	return fps, presented
}

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}
