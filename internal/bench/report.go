package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Ratio compares vidhub with a reference measured in the same run.
type Ratio struct {
	Scenario  string  `json:"scenario"`
	Metric    string  `json:"metric"`
	Reference string  `json:"reference"` // raw or classic
	Vidhub    float64 `json:"vidhub"`
	Ref       float64 `json:"ref"`
	Ratio     float64 `json:"ratio"` // vidhub / ref
}

// Target is one of issue 6's targets and whether this run met it.
type Target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // met, missed, not measured
}

// Target statuses.
const (
	Met         = "met"
	Missed      = "missed"
	NotMeasured = "not measured"
)

func (rep *Report) find(scenario, impl string) (Result, bool) {
	for _, r := range rep.Results {
		if r.Scenario == scenario && r.Impl == impl {
			return r, true
		}
	}
	return Result{}, false
}

func ratios(rep *Report) []Ratio {
	var out []Ratio
	for _, v := range rep.Results {
		if v.Impl != "vidhub" {
			continue
		}
		ref, ok := rep.find(v.Scenario, "raw")
		if !ok {
			continue
		}
		add := func(metric string, a, b float64) {
			out = append(out, Ratio{Scenario: v.Scenario, Metric: metric, Reference: "raw", Vidhub: a, Ref: b, Ratio: ratio(a, b)})
		}
		if v.Kind == KindCeiling {
			add("frames/s", v.FramesPerSec, ref.FramesPerSec)
			continue
		}
		add("fps median", v.FPSMedian, ref.FPSMedian)
		add("fps min", v.FPSMin, ref.FPSMin)
		add("latency p50", v.LatP50, ref.LatP50)
		add("latency p99", v.LatP99, ref.LatP99)
	}
	if c, ok := rep.find("classic-ceiling", "classic"); ok {
		if v, ok := rep.find("ceiling-1", "vidhub"); ok {
			out = append(out,
				Ratio{Scenario: "ceiling-1", Metric: "frames/s", Reference: "classic", Vidhub: v.FramesPerSec, Ref: c.FramesPerSec, Ratio: ratio(v.FramesPerSec, c.FramesPerSec)},
				Ratio{Scenario: "ceiling-1", Metric: "MB/s", Reference: "classic", Vidhub: v.MBPerSec, Ref: c.MBPerSec, Ratio: ratio(v.MBPerSec, c.MBPerSec)})
		}
		out = append(out, Ratio{Scenario: "frame", Metric: "bytes/frame", Reference: "classic", Vidhub: round3(rep.HiBytes), Ref: c.BytesFrame, Ratio: ratio(rep.HiBytes, c.BytesFrame)})
	}
	if c, ok := rep.find("classic-30fps", "classic"); ok {
		if v, ok := rep.find("fanout-1", "vidhub"); ok {
			out = append(out,
				Ratio{Scenario: "fanout-1", Metric: "latency p50", Reference: "classic", Vidhub: v.LatP50, Ref: c.LatP50, Ratio: ratio(v.LatP50, c.LatP50)},
				Ratio{Scenario: "fanout-1", Metric: "bandwidth MB/s", Reference: "classic", Vidhub: v.MBPerSec, Ref: c.MBPerSec, Ratio: ratio(v.MBPerSec, c.MBPerSec)})
		}
	}
	return out
}

func status(ok bool) string {
	if ok {
		return Met
	}
	return Missed
}

func targets(rep *Report) []Target {
	if !rep.measuredClassic() {
		return nil // h264 or record alone: their targets are their own
	}
	var out []Target
	fan := "fanout-50"
	if _, ok := rep.find(fan, "vidhub"); !ok {
		fan = "fanout-10" // quick runs stop at 10 viewers
	}
	if v, ok := rep.find(fan, "vidhub"); ok {
		out = append(out, Target{Name: fan + ": every viewer at full rate", Want: "min fps >= 29.5",
			Got: fmt.Sprintf("min %.1f, median %.1f fps", v.FPSMin, v.FPSMedian), Status: status(v.FPSMin >= 29.5)})
		if r, ok := rep.find(fan, "raw"); ok {
			p50, p99 := ratio(v.LatP50, r.LatP50), ratio(v.LatP99, r.LatP99)
			out = append(out,
				Target{Name: fan + ": latency p50 vs raw NATS", Want: "<= 1.2x",
					Got: fmt.Sprintf("%.2fx (%.2f vs %.2f ms)", p50, v.LatP50, r.LatP50), Status: status(p50 <= 1.2)},
				Target{Name: fan + ": latency p99 vs raw NATS", Want: "<= 1.2x",
					Got: fmt.Sprintf("%.2fx (%.2f vs %.2f ms)", p99, v.LatP99, r.LatP99), Status: status(p99 <= 1.2)})
		}
	}
	for _, c := range []string{"ceiling-1", "ceiling-10"} {
		v, ok1 := rep.find(c, "vidhub")
		r, ok2 := rep.find(c, "raw")
		if ok1 && ok2 {
			x := ratio(v.FramesPerSec, r.FramesPerSec)
			out = append(out, Target{Name: c + ": frames/s vs raw NATS", Want: ">= 0.90x",
				Got: fmt.Sprintf("%.2fx (%.0f vs %.0f frames/s)", x, v.FramesPerSec, r.FramesPerSec), Status: status(x >= 0.9)})
		}
	}
	pub := Target{Name: "publisher: capture + hi and lo encodes, 720p30", Want: "<= 0.20 cores", Status: NotMeasured,
		Got: "needs separate processes (vidhub bench, not the in-process test run)"}
	if v, ok := rep.find("fanout-1", "vidhub"); ok {
		if c, ok := v.CPU["publisher"]; ok && c >= 0 {
			pub.Got, pub.Status = fmt.Sprintf("%.2f cores (%s encoder)", c, rep.Machine.Encoder), status(c <= 0.20)
		}
	}
	out = append(out, pub)
	for _, r := range rep.Results {
		if r.Kind != KindWeb {
			continue
		}
		out = append(out, Target{Name: r.Scenario + ": every browser at full rate", Want: "min fps >= 29.5",
			Got: fmt.Sprintf("min %.1f, median %.1f fps", r.FPSMin, r.FPSMedian), Status: status(r.FPSMin >= 29.5)})
		cpu := Target{Name: r.Scenario + ": gateway CPU", Want: "<= 1 core", Status: NotMeasured, Got: "gateway ran in the bench process"}
		rss := Target{Name: r.Scenario + ": gateway peak RSS", Want: "<= 150 MB", Status: NotMeasured, Got: cpu.Got}
		if c, ok := r.CPU["gateway"]; ok && c >= 0 {
			cpu.Got, cpu.Status = fmt.Sprintf("%.2f cores", c), status(c <= 1)
		}
		if m, ok := r.RSS["gateway"]; ok && m > 0 {
			rss.Got, rss.Status = fmt.Sprintf("%.0f MB", m), status(m <= 150)
		}
		out = append(out, cpu, rss)
	}
	if r, ok := rep.find("idle-publisher", "vidhub"); ok {
		t := Target{Name: "idle publisher stops encoding unwatched layers", Want: "idle CPU far below watched (<= 25%)", Status: NotMeasured,
			Got: "needs separate processes"}
		w, okw := rep.find("fanout-1", "vidhub")
		if c, ok := r.CPU["publisher"]; ok && c >= 0 && okw && w.CPU["publisher"] > 0 {
			x := c / w.CPU["publisher"]
			t.Got = fmt.Sprintf("%.2f cores idle vs %.2f watched (%.0f%%)", c, w.CPU["publisher"], 100*x)
			t.Status = status(x <= 0.25)
		}
		out = append(out, t)
	}
	return out
}

// WriteTable prints the report for a terminal.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	m := rep.Machine
	fmt.Fprintf(w, "vidhub bench: %d CPUs (%s), Go %s, kernel %s, load %s -> %s, %.1f s per scenario, separate processes: %v\n\n",
		m.CPUs, m.Model, m.Go, m.Kernel, m.LoadStart, m.LoadEnd, rep.Duration, m.Processes)
	if len(rep.Results) > 0 {
		fmt.Fprintln(tw, "scenario\timpl\tviewers\tfps min\tfps med\tframes/s\tMB/s\tp50 ms\tp99 ms\tmax ms\tgaps\tCPU (cores)\t")
		for _, r := range rep.Results {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%d\t%s\t\n", r.Scenario, r.Impl, r.Viewers,
				r.FPSMin, r.FPSMedian, r.FramesPerSec, r.MBPerSec, r.LatP50, r.LatP99, r.LatMax, r.Gaps, cpuString(r))
		}
		tw.Flush()
	}
	if len(rep.Encode) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "encode\tsize\tms/frame\tbytes\t")
		for _, e := range rep.Encode {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t\n", e.Encoder, e.Size, e.Ms, e.Bytes)
		}
		tw.Flush()
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "ratio\tmetric\tvidhub\treference\tvidhub/ref\t")
		for _, r := range rep.Ratios {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s %.2f\t%.2fx\t\n", r.Scenario, r.Metric, r.Vidhub, r.Reference, r.Ref, r.Ratio)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "[%s] %s: want %s, got %s\n", t.Status, t.Name, t.Want, t.Got)
	}
	if rep.H264 != nil {
		var b strings.Builder
		rep.H264.markdown(&b)
		fmt.Fprintf(w, "\nH.264 against JPEG\n\n%s", b.String())
	}
	if rep.Record != nil {
		var b strings.Builder
		rep.Record.markdown(&b)
		fmt.Fprintf(w, "\nRecording on JetStream\n\n%s", b.String())
	}
	return nil
}

func cpuString(r Result) string {
	var parts []string
	for _, k := range sortedKeys(r.CPU) {
		if r.CPU[k] >= 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, r.CPU[k]))
		}
	}
	for _, k := range sortedKeys(r.RSS) {
		parts = append(parts, fmt.Sprintf("%s RSS %.0f MB", k, r.RSS[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteResults writes results.json, results.txt and chart.svg into dir.
func WriteResults(dir string, rep *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	var txt strings.Builder
	_ = rep.WriteTable(&txt)
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644),
		os.WriteFile(filepath.Join(dir, "results.txt"), []byte(txt.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "chart.svg"), Chart(rep), 0o644),
	)
}

// Markers delimit the generated parts of BENCHMARKS.md: the scenarios
// against raw NATS and the classic design, H.264 against JPEG, and
// recording.
const (
	MarkBegin     = "<!-- bench:begin (generated by vidhub bench --markdown; do not edit) -->"
	MarkEnd       = "<!-- bench:end -->"
	MarkH264Begin = "<!-- bench-h264:begin (generated by vidhub bench --markdown; do not edit) -->"
	MarkH264End   = "<!-- bench-h264:end -->"
	MarkRecBegin  = "<!-- bench-record:begin (generated by vidhub bench --markdown; do not edit) -->"
	MarkRecEnd    = "<!-- bench-record:end -->"
)

// Markdown is the figures of rep as Markdown tables.
func (rep *Report) Markdown() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "Run %s: %d CPUs (%s), %.0f MB RAM, kernel %s, %s; load average %s at start, %s at end; %.1f s measured per scenario after a warm-up; broker, publishers and gateway in separate processes: %v; publisher encoder: %s; hi JPEG %.0f bytes, lo %.0f bytes on average.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 UTC"), m.CPUs, m.Model, m.MemMB, m.Kernel, m.Go, m.LoadStart, m.LoadEnd, rep.Duration, m.Processes, m.Encoder, rep.HiBytes, rep.LoBytes)
	b.WriteString("| scenario | impl | viewers | fps min | fps median | frames/s | MB/s | p50 ms | p99 ms | max ms | gaps | CPU (cores), RSS |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.1f | %.0f | %.1f | %.2f | %.2f | %.2f | %d | %s |\n", r.Scenario, r.Impl, r.Viewers,
			r.FPSMin, r.FPSMedian, r.FramesPerSec, r.MBPerSec, r.LatP50, r.LatP99, r.LatMax, r.Gaps, cpuString(r))
	}
	if len(rep.Ratios) > 0 {
		b.WriteString("\n| ratio | metric | vidhub | reference | vidhub / reference |\n|---|---|--:|--:|--:|\n")
		for _, r := range rep.Ratios {
			fmt.Fprintf(&b, "| %s | %s | %.2f | %s %.2f | %.2fx |\n", r.Scenario, r.Metric, r.Vidhub, r.Reference, r.Ref, r.Ratio)
		}
	}
	if len(rep.Encode) > 0 {
		b.WriteString("\n| encoder | size | ms / frame | bytes |\n|---|---|--:|--:|\n")
		for _, e := range rep.Encode {
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f |\n", e.Encoder, e.Size, e.Ms, e.Bytes)
		}
	}
	b.WriteString("\n| target | want | got | status |\n|---|---|---|---|\n")
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** |\n", t.Name, t.Want, t.Got, t.Status)
	}
	return b.String()
}

// ErrNoMarkers is returned when a Markdown file lacks the markers of the
// generated section to update.
var ErrNoMarkers = errors.New("no generated section to update")

// MarkdownH264 is the H.264 figures of rep as Markdown tables; empty
// when the h264 scenario did not run.
func (rep *Report) MarkdownH264() string {
	if rep.H264 == nil {
		return ""
	}
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "Run %s: %d CPUs (%s), kernel %s, %s; load average %s at start, %s at end; %.1f s measured per step after a warm-up; publishers in separate processes: %v.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 UTC"), m.CPUs, m.Model, m.Kernel, m.Go, m.LoadStart, m.LoadEnd, rep.Duration, m.Processes)
	rep.H264.markdown(&b)
	return b.String()
}

// MarkdownRecord is the recording figures of rep as Markdown tables;
// empty when the record scenario did not run.
func (rep *Report) MarkdownRecord() string {
	if rep.Record == nil {
		return ""
	}
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "Run %s: %d CPUs (%s), kernel %s, %s; load average %s at start, %s at end; broker and publishers in separate processes: %v.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 UTC"), m.CPUs, m.Model, m.Kernel, m.Go, m.LoadStart, m.LoadEnd, m.Processes)
	rep.Record.markdown(&b)
	return b.String()
}

// measuredClassic reports whether rep holds figures of the scenarios
// other than h264 and record.
func (rep *Report) measuredClassic() bool { return len(rep.Results) > 0 || len(rep.Encode) > 0 }

// UpdateMarkdown replaces the generated sections of the file at path
// that this run measured: the scenarios' section when any scenario but
// h264 and record ran, the H.264 section when h264 ran, the recording
// section when record ran. A run of h264 or record alone leaves the
// other figures as they were, and the other way round.
func UpdateMarkdown(path string, rep *Report) error {
	if rep.measuredClassic() || (rep.H264 == nil && rep.Record == nil) {
		if err := ReplaceSection(path, MarkBegin, MarkEnd, rep.Markdown()); err != nil {
			return err
		}
	}
	if rep.H264 != nil {
		if err := ReplaceSection(path, MarkH264Begin, MarkH264End, rep.MarkdownH264()); err != nil {
			return err
		}
	}
	if rep.Record != nil {
		return ReplaceSection(path, MarkRecBegin, MarkRecEnd, rep.MarkdownRecord())
	}
	return nil
}

// ReplaceSection replaces what lies between the markers begin and end in
// the Markdown file at path with body: the way the tools that measure
// vidhub (vidhub bench, the soak test) write their figures into
// BENCHMARKS.md, each between markers of its own, and leave the rest of
// the file alone.
func ReplaceSection(path, begin, end, body string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, begin)
	j := -1
	if i >= 0 {
		if k := strings.Index(s[i:], end); k >= 0 {
			j = i + k
		}
	}
	if j < 0 {
		return fmt.Errorf("%s: %w: want a section %s ... %s", path, ErrNoMarkers, begin, end)
	}
	s = s[:i+len(begin)] + "\n\n" + strings.TrimRight(body, "\n") + "\n\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
