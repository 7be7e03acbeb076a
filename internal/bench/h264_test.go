package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// TestH264Quick is the smoke form of the h264 scenario, in this process:
// every step produces its figures, the report carries them, and the
// Markdown goes into the H.264 section alone. It never checks how fast
// anything is, only that the figures exist and make sense.
func TestH264Quick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Quick: true, Duration: 500 * time.Millisecond, Only: []string{KindH264}, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	t.Log(progress.String())
	h := rep.H264
	if h == nil {
		t.Fatal("no H.264 report")
	}
	if !media.H264Available() {
		// The static build measures nothing and says so, target by target.
		if h.NotMeasured == "" || len(h.Quality) > 0 || len(h.Targets) != 8 {
			t.Fatalf("static build: %+v", h)
		}
		for _, tg := range h.Targets {
			if tg.Status != NotMeasured {
				t.Errorf("static build: target %q is %s", tg.Name, tg.Status)
			}
		}
		return
	}
	if h.NotMeasured != "" {
		t.Fatalf("H.264 not measured in the full build: %s", h.NotMeasured)
	}
	if len(h.Quality) != 4 || h.Clip == "" {
		t.Fatalf("quality: %d settings, clip %q", len(h.Quality), h.Clip)
	}
	for _, q := range h.Quality {
		if q.Kbps <= 0 || q.Scored == 0 || q.SSIM <= 0.5 || q.SSIM > 1 || q.SSIMMin > q.SSIM {
			t.Errorf("quality %s: %+v", q.Setting, q)
		}
	}
	if len(h.Publisher) != 3 {
		t.Errorf("publisher: %d cases, want 3", len(h.Publisher))
	}
	for _, p := range h.Publisher {
		if len(p.FPS) != len(p.Watched) {
			t.Errorf("publisher %s: %d rates for %v", p.Codec, len(p.FPS), p.Watched)
		}
		for i, f := range p.FPS {
			if f <= 0 {
				t.Errorf("publisher %s: layer %s got no frames", p.Codec, p.Watched[i])
			}
		}
	}
	if len(h.Join) != 2 {
		t.Fatalf("late join: %d codecs, want 2", len(h.Join))
	}
	for _, j := range h.Join {
		if len(j.Samples)+j.Failed != j.Joins || j.Failed > 0 || j.P50 < 0 || j.P95 < j.P50 {
			t.Errorf("late join %s: %+v", j.Codec, j)
		}
	}
	if len(h.Latency) != 2 {
		t.Fatalf("latency: %d paths, want 2", len(h.Latency))
	}
	for _, l := range h.Latency {
		if l.SubP50 <= 0 || l.RenderP50 <= 0 || l.FPS <= 0 {
			t.Errorf("latency %s: %+v", l.Codec, l)
		}
	}
	if len(h.Stall) != 2 {
		t.Fatalf("stall: %d viewers, want 2", len(h.Stall))
	}
	for _, s := range h.Stall {
		if s.LiveMS < 0 || s.FirstMS < 0 || s.FirstMS > s.LiveMS || s.CorruptShown != 0 {
			t.Errorf("stall %s: %+v", s.Codec, s)
		}
	}
	if len(h.Viewers) != 3 {
		t.Fatalf("viewers: %d sets, want 3", len(h.Viewers))
	}
	for _, v := range h.Viewers {
		if v.Viewers != 5 || v.FPSMedian <= 0 || v.CPU["process"] <= 0 {
			t.Errorf("viewers %s %s: %+v", v.Codec, v.Layer, v)
		}
	}
	if len(h.Web) != len(webH264Views) {
		t.Fatalf("web: %d views, want %d", len(h.Web), len(webH264Views))
	}
	for _, w := range h.Web {
		// The gateway never sends a browser an H.264 frame it cannot
		// decode, however late the socket is.
		if w.Sockets != 10 || w.FPSMedian <= 0 || w.Kbps <= 0 || w.Unkeyed != 0 {
			t.Errorf("web %s %s: %+v", w.View, w.Layer, w)
		}
		if w.Layer.Codec() == "h264" && w.Keyframes == 0 {
			t.Errorf("web %s %s: no keyframe: %+v", w.View, w.Layer, w)
		}
	}
	if len(h.RTSP) == 0 {
		t.Fatal("rtsp: no result, not even a skip")
	}
	for _, r := range h.RTSP {
		if r.Skipped == "" && (r.FPS <= 0 || r.Size == "" || r.Codec == "") {
			t.Errorf("rtsp %s: %+v", r.Case, r)
		}
	}
	if len(h.Targets) != 8 {
		t.Errorf("%d H.264 targets, want 8", len(h.Targets))
	}
	for _, tg := range h.Targets {
		if tg.Status != Met && tg.Status != Missed && tg.Status != NotMeasured {
			t.Errorf("target %q: status %q", tg.Name, tg.Status)
		}
	}

	dir := t.TempDir()
	if err := WriteResults(dir, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.H264 == nil || len(back.H264.Quality) != 4 {
		t.Fatalf("results.json does not read back the H.264 figures: %v", err)
	}
	md := filepath.Join(dir, "BENCHMARKS.md")
	orig := "# x\n\n" + MarkBegin + "\nold\n" + MarkEnd + "\n\n" + MarkH264Begin + "\nold h264\n" + MarkH264End + "\n"
	if err := os.WriteFile(md, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(md, rep); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	s := string(got)
	if !strings.Contains(s, "\nold\n") {
		t.Errorf("a run of h264 alone rewrote the other figures:\n%s", s)
	}
	for _, want := range []string{"| jpeg q80", "| h264 at 1/10 of jpeg", "| late join", "| stall", "| viewers of one 720p30 publisher", "| WebSocket viewers through the gateway", "| RTSP H.264 camera", "| target |"} {
		if !strings.Contains(s, want) {
			t.Errorf("H.264 section lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old h264") {
		t.Errorf("H.264 section not replaced:\n%s", s)
	}
}

// TestH264TargetsWebRTSP checks the gateway and RTSP targets on made-up
// figures: met, missed, and not measured with the reason.
func TestH264TargetsWebRTSP(t *testing.T) {
	web := func(cores, fps float64, n int) []WebH264Result {
		return []WebH264Result{
			{View: "grid", Layer: protocol.H264Lo, Sockets: n, FPSMin: fps, FPSMedian: fps, Cores: cores},
			{View: "grid", Layer: protocol.Lo, Sockets: n, FPSMin: 30, FPSMedian: 30, Cores: 0.4},
		}
	}
	pass := func(cores float64, skipped string) []RTSPResult {
		return []RTSPResult{
			{Case: "passthrough", Size: "640x360", FPS: 30, Cores: cores, Skipped: skipped},
			{Case: "re-encode", Size: "640x360", FPS: 30, Cores: 0.2},
		}
	}
	cases := []struct {
		name     string
		h        H264Report
		web, cam string // the statuses wanted
		got      string // in the RTSP target's got
	}{
		{"met", H264Report{Web: web(0.3, 30, 100), RTSP: pass(0.02, "")}, Met, Met, "against 0.200 re-encoding"},
		{"missed", H264Report{Web: web(0.7, 30, 100), RTSP: pass(0.2, "")}, Missed, Missed, "0.200 cores"},
		{"slow sockets", H264Report{Web: web(0.3, 12, 100)}, Missed, NotMeasured, "not measured"},
		{"quick or in process", H264Report{Web: web(-1, 30, 10), RTSP: pass(-1, "")}, NotMeasured, NotMeasured, "separate processes"},
		{"skipped", H264Report{RTSP: pass(0, "no gst-inspect-1.0 | x")}, NotMeasured, NotMeasured, "skipped: no gst-inspect-1.0 / x"},
	}
	for _, c := range cases {
		ts := h264Targets(&c.h)
		if len(ts) != 8 {
			t.Fatalf("%s: %d targets", c.name, len(ts))
		}
		if ts[5].Status != c.web || ts[6].Status != c.cam {
			t.Errorf("%s: gateway %s (%s), rtsp %s (%s); want %s, %s", c.name, ts[5].Status, ts[5].Got, ts[6].Status, ts[6].Got, c.web, c.cam)
		}
		if !strings.Contains(ts[6].Got, c.got) {
			t.Errorf("%s: rtsp target says %q, want %q in it", c.name, ts[6].Got, c.got)
		}
		var b strings.Builder
		c.h.Targets = ts
		c.h.markdown(&b)
		if len(c.h.Web) > 0 && !strings.Contains(b.String(), "| grid | h264lo |") {
			t.Errorf("%s: no grid row:\n%s", c.name, b.String())
		}
	}
}

// TestH264TargetsViewersPublisher checks the 50-viewer target and the
// publisher target's H.264-only figure on made-up figures.
func TestH264TargetsViewersPublisher(t *testing.T) {
	viewers := func(n int, min float64) []ViewersResult {
		return []ViewersResult{
			{Codec: "h264", Layer: protocol.H264, Viewers: n, FPSMin: min, FPSMedian: 30},
			{Codec: "h264", Layer: protocol.H264Lo, Viewers: n, FPSMin: 10, FPSMedian: 30},
		}
	}
	pubs := []PublisherCPU{
		{Codec: "h264", Watched: []protocol.Layer{protocol.H264, protocol.H264Lo, protocol.Hi, protocol.Lo}, Cores: 0.41},
		{Codec: "h264", Watched: []protocol.Layer{protocol.H264, protocol.H264Lo}, Cores: 0.26},
	}
	for _, c := range []struct {
		name string
		h    H264Report
		want string
	}{
		{"met", H264Report{Viewers: viewers(50, 29.8)}, Met},
		{"missed", H264Report{Viewers: viewers(50, 21.6)}, Missed},
		{"quick", H264Report{Viewers: viewers(4, 30)}, NotMeasured},
		{"none", H264Report{}, NotMeasured},
	} {
		if ts := h264Targets(&c.h); ts[7].Status != c.want {
			t.Errorf("%s: 50-viewer target %s (%s), want %s", c.name, ts[7].Status, ts[7].Got, c.want)
		}
	}
	ts := h264Targets(&H264Report{Publisher: pubs})
	if ts[1].Status != Missed || !strings.Contains(ts[1].Got, "0.41 cores (0.26 with only h264 and h264lo watched") {
		t.Errorf("publisher target %s: %q", ts[1].Status, ts[1].Got)
	}
}
