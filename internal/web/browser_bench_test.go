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
func BenchmarkBrowserPages(b *testing.B) {
	for _, view := range []struct {
		name       string
		pubs, w, h int
	}{{"single", 1, 1280, 720}, {"grid", 2, 640, 360}} {
		for _, codec := range []protocol.Codec{protocol.CodecH264, protocol.CodecJPEG} {
			b.Run(view.name+"/"+string(codec), func(b *testing.B) {
				fps := browserPages(b, codec, view.pubs, view.w, view.h, 10, 5*time.Second)
				slices.Sort(fps)
				b.ReportMetric(fps[0], "fps-min")
				b.ReportMetric(fps[len(fps)/2], "fps-median")
			})
		}
	}
}

// browserPages runs n pages of a room of pubs publishers of w x h for
// window, and returns each page's fps of the first publisher.
func browserPages(b *testing.B, codec protocol.Codec, pubs, w, h, n int, window time.Duration) []float64 {
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
		err := chromedp.Do(nctx, chromedp.Navigate(hub.url+"/rooms/bench"))
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
	out := make([]float64, n)
	for i, tctx := range tabs {
		s1 := pageStats(b, tctx)["cam"]
		out[i] = float64(s1.Frames-s0[i].Frames) / ((s1.At - s0[i].At) / 1000)
		if s1.CorruptShown != 0 || s1.DecodeErrors != 0 {
			b.Errorf("page %d: %d corrupt pictures shown, %d decode errors", i, s1.CorruptShown, s1.DecodeErrors)
		}
		if i == 0 {
			vis := eval[string](b, tctx, `document.visibilityState`)
			b.Logf("%s: page 0 shows layer %s at %s (%s), visibility %s", codec, s1.Layer, s1.Size, s1.Codec, vis)
		}
	}
	b.Logf("%s: fps of %d pages %v", codec, n, roundAll(out))
	return out
}

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}
