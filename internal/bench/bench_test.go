package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickRun is the smoke form of the suite: a few short scenarios in
// this process, then the table, JSON, chart and Markdown they produce.
// It checks that figures are produced and sane, never how fast anything
// is.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scenarios for several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Quick: true, Duration: 500 * time.Millisecond,
		Only: []string{KindEncode, KindFanout, KindClassic, KindWeb}, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	t.Log(progress.String())

	if len(rep.Encode) == 0 {
		t.Error("no encode timings")
	}
	for _, e := range rep.Encode {
		if e.Ms <= 0 || e.Bytes <= 0 || e.Frames < 3 {
			t.Errorf("encode %s %s: %+v", e.Encoder, e.Size, e)
		}
	}
	want := map[string]bool{"fanout-1/vidhub": false, "fanout-1/raw": false, "fanout-10/vidhub": false,
		"fanout-10/raw": false, "classic-30fps/classic": false, "classic-ceiling/classic": false, "web-10/vidhub": false}
	for _, r := range rep.Results {
		want[r.Scenario+"/"+r.Impl] = true
		if r.Seconds <= 0 || len(r.StreamFPS) != r.Viewers*r.Publishers {
			t.Errorf("%s %s: %.2f s, %d stream rates for %d viewers", r.Scenario, r.Impl, r.Seconds, len(r.StreamFPS), r.Viewers)
		}
		// Frames flowed, and a latency of a frame captured on this machine
		// is positive and well under a minute.
		if r.FramesPerSec <= 0 || r.FPSMedian <= 0 {
			t.Errorf("%s %s: no frames delivered: %+v", r.Scenario, r.Impl, r)
		}
		if !(r.LatP50 > 0 && r.LatP50 <= r.LatP99 && r.LatP99 <= r.LatMax && r.LatMax < 60_000) {
			t.Errorf("%s %s: latency p50 %.3f p99 %.3f max %.3f ms", r.Scenario, r.Impl, r.LatP50, r.LatP99, r.LatMax)
		}
		if c := r.CPU["process"]; c <= 0 {
			t.Errorf("%s %s: process CPU %.3f", r.Scenario, r.Impl, c)
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no result for %s", k)
		}
	}
	if len(rep.Ratios) == 0 || len(rep.Targets) == 0 {
		t.Errorf("%d ratios, %d targets", len(rep.Ratios), len(rep.Targets))
	}
	for _, tg := range rep.Targets {
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
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != len(rep.Results) {
		t.Fatalf("results.json does not read back: %v", err)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "results.txt"))
	if err != nil || !strings.Contains(string(txt), "fanout-10") || !strings.Contains(string(txt), "vidhub/ref") {
		t.Errorf("results.txt: %v\n%s", err, txt)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg)
	if n := strings.Count(string(svg), "<polyline"); n < 4 {
		t.Errorf("chart has %d latency curves, want one per paced scenario", n)
	}
	if n := strings.Count(string(svg), "<circle"); n < 20 {
		t.Errorf("chart has %d fps dots, want one per viewer", n)
	}

	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(md, []byte("# x\n\n"+MarkBegin+"\nold\n"+MarkEnd+"\n\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(md, rep); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	if s := string(got); strings.Contains(s, "\nold\n") || !strings.Contains(s, "| fanout-10 | vidhub |") || !strings.HasSuffix(s, MarkEnd+"\n\nafter\n") {
		t.Errorf("markdown not updated in place:\n%s", s)
	}
}

func checkSVG(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("<svg ")) {
		t.Fatalf("not an SVG: %.40q", b)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
}

func TestChartOfEmptyReport(t *testing.T) {
	checkSVG(t, Chart(&Report{}))
}

func TestUpdateMarkdownNeedsMarkers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.md")
	if err := os.WriteFile(p, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(p, &Report{}); !errors.Is(err, ErrNoMarkers) {
		t.Fatalf("got %v, want ErrNoMarkers", err)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{Only: []string{"nope"}}, {Duration: -time.Second}} {
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: got %v, want ErrBadOptions", o, err)
		}
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {1, 5}, {0.25, 2}, {0.9, 4.6}} {
		if got := quantile(s, c.q); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if quantile(nil, 0.5) != 0 || len(cdfPoints(nil)) != 0 || len(cdfPoints(s)) != 101 {
		t.Error("empty samples")
	}
}

func TestProcMeters(t *testing.T) {
	m := startCPU(0)
	end := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(end); x++ {
		_ = x * x
	}
	if c := m.cores(); c <= 0 || c > 64 {
		t.Errorf("own CPU %.3f cores", c)
	}
	if c, err := procCPU(os.Getpid()); err != nil || c <= 0 {
		t.Errorf("/proc CPU of this process: %v, %v", c, err)
	}
	if now, peak := procRSS(os.Getpid()); now <= 0 || peak < now {
		t.Errorf("RSS now %.1f peak %.1f MB", now, peak)
	}
}

func TestBrokerURL(t *testing.T) {
	if got := brokerURL("vidhub broker listening on nats://127.0.0.1:4222 (max payload 8388608 bytes)"); got != "nats://127.0.0.1:4222" {
		t.Errorf("got %q", got)
	}
}
