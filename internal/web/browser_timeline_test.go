package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// timelineState is what the room page says about its replay and cam's
// tile.
type timelineState struct {
	Shown     bool    `json:"shown"` // the timeline bar is visible
	Replaying bool    `json:"replaying"`
	From      float64 `json:"from"`
	Moment    string  `json:"moment"` // the label under the bar
	Frames    int     `json:"frames"`
	ShownTime float64 `json:"shownTime"` // capture time of cam's picture, Unix ms
	Corrupt   int     `json:"corrupt"`
	Now       float64 `json:"now"`
}

func timeline(t *testing.T, ctx context.Context) timelineState {
	return eval[timelineState](t, ctx, `(() => {
		const v = window.vidhubRoom;
		if (!v) return {now: Date.now()};
		const r = v.replayState();
		const cam = v.stats().find(s => s.name === "cam") || {};
		return {shown: !document.getElementById("timeline").classList.contains("hidden"),
			replaying: r.replaying, from: r.from || 0, moment: document.getElementById("tl-moment").textContent,
			frames: cam.frames || 0, shownTime: cam.shownTime || 0, corrupt: cam.corruptShown || 0, now: Date.now()};
	})()`)
}

// TestBrowserTimeline opens the room page of a recorded room in
// Chromium: the timeline shows, the left arrow on its handle goes 5 s
// back and the tile shows pictures captured then (decoded, and moving
// on), the label says the moment; Live brings the newest pictures back.
func TestBrowserTimeline(t *testing.T) {
	ctx := browser(t)
	h := startRecorded(t, Config{}, "film", 6*time.Second)
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/film")); err != nil {
		t.Fatal(err)
	}
	lazy := hubtest.Lazy(func() any { return fmt.Sprintf("%+v", timeline(t, ctx)) })
	hubtest.Eventually(t, 20*time.Second, func() bool {
		s := timeline(t, ctx)
		return s.Shown && !s.Replaying && s.Frames > 5 && s.Now-s.ShownTime < 1500
	}, "no timeline over live pictures: %v", lazy)

	// The handle steps back 5 s from where the bar stood: the live
	// picture's moment, in whole seconds, as of the bar's last refresh.
	before := timeline(t, ctx)
	if err := chromedp.Do(nctx, chromedp.Focus(chromedp.CSS("#tl-range")), chromedp.KeyEvent(kb.ArrowLeft)); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		s := timeline(t, ctx)
		return s.Replaying && s.Frames > 0 && s.Now-s.ShownTime > 3000
	}, "the page does not show the past after the handle went 5 s back: %v", lazy)
	past := timeline(t, ctx)
	if back := before.ShownTime - past.From; back < 3500 || back > 7000 {
		t.Errorf("the replay is from %.1f s before the live picture shown when the key was pressed, want about 5", back/1000)
	}
	if past.Moment == "live" || strings.HasPrefix(past.Moment, "go to") {
		t.Errorf("the timeline says %q while replaying", past.Moment)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		s := timeline(t, ctx)
		return s.Frames >= past.Frames+recFPS && s.ShownTime > past.ShownTime+500 && s.Now-s.ShownTime > 3000
	}, "the replay does not move on: %v (at first %+v)", lazy, past)

	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS("#tl-live"))); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		s := timeline(t, ctx)
		return !s.Replaying && s.Moment == "live" && s.Frames > 5 && s.Now-s.ShownTime < 1500
	}, "Live does not bring the newest pictures back: %v", lazy)
	if s := timeline(t, ctx); s.Corrupt != 0 {
		t.Errorf("%d pictures from a broken chain", s.Corrupt)
	}
	hubtest.Eventually(t, 5*time.Second, func() bool { return metric(t, h.url, "vidhub_web_replays") == 0 },
		"a replay is still open after Live")
}
