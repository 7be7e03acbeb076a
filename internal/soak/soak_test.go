package soak_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

var (
	soakFor    = flag.Duration("soak", 0, "run the soak test for this long, e.g. 10m (0: not requested, the test skips)")
	soakReport = flag.String("soak-report", "", "also write the soak's summary (Markdown) to this file")
)

const (
	room        = "soak"
	nPublishers = 4
	nViewers    = 10
	size        = "640x360"
	fps         = "30"
	// gstSource stands in for a camera, so OpenCV Mats are exercised.
	gstSource = "gst:videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! appsink"

	sampleEvery = 2 * time.Second  // goroutines and RSS of every process
	window      = 10 * time.Second // every viewer gets frames of every publisher in each
	minWarmUp   = 30 * time.Second
	tolerance   = 0.10    // growth allowed after warm-up
	floorGo     = 2       // goroutines: absolute slack, so tiny counts do not flake
	floorRSS    = 4 << 20 // bytes of RSS, likewise
	stopTimeout = 10 * time.Second
)

// debugLine is one line a process writes to its VIDHUB_DEBUG_STATS file
// (cmd/vidhub/debugstats.go).
type debugLine struct {
	Goroutines int    `json:"goroutines"`
	Heap       uint64 `json:"heap"`
	Mats       int    `json:"mats"`
	Final      bool   `json:"final"`
}

type sample struct {
	at         time.Time
	goroutines int
	rss, heap  uint64
}

// proc is one vidhub process of the soak.
type proc struct {
	*hubtest.Proc
	name, role string
	statsPath  string
	statsOff   int64
	last       debugLine // newest debug line read
	samples    []sample
	cpu        time.Duration  // user+system time, read before it is stopped
	matsPeak   int            // most Mats seen open at once
	stats      *hubtest.Stats // viewers: their JSON stats
}

func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("soak not requested: run make soak SOAK=10m, or go test -run TestSoak -timeout 15m ./soak -args -soak 10m")
	}
	if runtime.GOOS != "linux" {
		t.Fatalf("the soak reads /proc: it runs on Linux only")
	}
	warmUp := max(*soakFor/5, minWarmUp)
	if *soakFor < 2*warmUp {
		t.Fatalf("-soak %v is too short: it needs at least %v (a %v warm-up, then as long again measured)", *soakFor, 2*minWarmUp, minWarmUp)
	}
	bin := hubtest.VidhubTags(t, "matprofile")
	dir := t.TempDir()

	addr := "127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))
	url := "nats://" + addr
	broker := startProc(t, bin, dir, "broker", "broker", "broker", "--listen", addr)
	hubtest.WaitPort(t, addr, 30*time.Second)

	var pubs, views []*proc
	for i := range nPublishers {
		name, src := "pub"+strconv.Itoa(i), "pattern"
		if i == 0 {
			name, src = "gst", gstSource
		}
		pubs = append(pubs, startProc(t, bin, dir, name, "publisher", "publish", "--nats", url,
			"--room", room, "--name", name, "--source", src, "--size", size, "--fps", fps))
	}
	for i := range nViewers {
		name := "view" + strconv.Itoa(i)
		views = append(views, startProc(t, bin, dir, name, "viewer", "view", "--nats", url,
			"--room", room, "--name", name, "--headless", "--json"))
	}
	procs := append(append([]*proc{broker}, pubs...), views...)

	hubtest.Eventually(t, 60*time.Second, func() bool {
		for _, v := range views {
			for _, p := range pubs {
				if v.framesOf(p.name) == 0 {
					return false
				}
			}
		}
		return true
	}, "not every viewer gets frames from every publisher")
	t.Logf("soak: %d publishers x %d viewers for %v (warm-up %v), all frames flowing", nPublishers, nViewers, *soakFor, warmUp)

	start := time.Now()
	end := start.Add(*soakFor)
	var starved []string
	checkpoint := frameTable(views, pubs)
	nextWindow := start.Add(window)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for now := start; now.Before(end); now = <-tick.C {
		for _, p := range procs {
			p.sample(t, now)
		}
		if now.Before(nextWindow) {
			continue
		}
		nextWindow = nextWindow.Add(window)
		cur := frameTable(views, pubs)
		for k, n := range cur {
			if n <= checkpoint[k] && len(starved) < 20 {
				starved = append(starved, fmt.Sprintf("%s at %v: no new frames from %s in %v (still %d)",
					k[0], now.Sub(start).Round(time.Second), k[1], window, n))
			}
		}
		checkpoint = cur
	}

	// Stop: publishers first (their final line counts the Mats left once
	// the source is closed), then viewers and broker.
	for _, p := range procs {
		p.cpu = cpuTime(p.Cmd.Process.Pid)
	}
	frames := frameTable(views, pubs)
	var problems []string
	for _, group := range [][]*proc{pubs, views, {broker}} {
		for _, p := range group {
			_ = p.Signal(os.Interrupt)
		}
		for _, p := range group {
			if msg := p.stop(t); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	for _, p := range pubs {
		if p.last.Mats != 0 {
			problems = append(problems, fmt.Sprintf("%s: %d Mats still open at exit (want 0; -1 means built without matprofile and cgo)", p.name, p.last.Mats))
		}
	}
	problems = append(problems, starved...)

	var sb strings.Builder
	fmt.Fprintf(&sb, "# vidhub soak\n\n%s: %d publishers (1 GStreamer videotestsrc, %d pattern; %s at %s fps) x %d headless viewers in one room, vidhub broker; every process its own, built with -tags matprofile; %d cores.\n\n",
		time.Now().UTC().Format(time.RFC3339), nPublishers, nPublishers-1, size, fps, nViewers, runtime.NumCPU())
	fmt.Fprintf(&sb, "Duration %v, warm-up %v; baseline = median of the first samples after warm-up, end = median of the last (every %v); allowed growth %.0f%% (at least %d goroutines / %d MB).\n\n",
		*soakFor, warmUp, sampleEvery, tolerance*100, floorGo, floorRSS>>20)
	sb.WriteString("| process | goroutines base→end (max) | RSS MB base→end (max) | heap MB end | CPU (of one core) | Mats peak → exit | frames |\n")
	sb.WriteString("|---|---|---|---|---|---|---|\n")
	for _, p := range procs {
		base, last, peak, ok := p.window(start.Add(warmUp))
		if !ok {
			problems = append(problems, p.name+": no samples after warm-up")
			continue
		}
		if d := last.goroutines - base.goroutines; float64(d) > max(tolerance*float64(base.goroutines), floorGo) {
			problems = append(problems, fmt.Sprintf("%s: goroutines grew %d → %d after warm-up", p.name, base.goroutines, last.goroutines))
		}
		if d := float64(last.rss) - float64(base.rss); d > max(tolerance*float64(base.rss), floorRSS) {
			problems = append(problems, fmt.Sprintf("%s: RSS grew %.1f → %.1f MB after warm-up", p.name, mb(base.rss), mb(last.rss)))
		}
		mats := "n/a"
		if p.role == "publisher" {
			mats = fmt.Sprintf("%d → %d", p.matsPeak, p.last.Mats)
		}
		fmt.Fprintf(&sb, "| %s | %d → %d (%d) | %.1f → %.1f (%.1f) | %.1f | %.0f%% | %s | %s |\n",
			p.name, base.goroutines, last.goroutines, peak.goroutines, mb(base.rss), mb(last.rss), mb(peak.rss),
			mb(last.heap), 100*p.cpu.Seconds()/time.Since(start).Seconds(), mats, p.framesSummary(frames, views, pubs))
	}
	if len(problems) == 0 {
		sb.WriteString("\nResult: PASS: every process stable within the bounds, all Mats closed, no viewer starved.\n")
	} else {
		sb.WriteString("\nResult: FAIL\n\n")
		for _, m := range problems {
			sb.WriteString("- " + m + "\n")
		}
	}
	t.Log("\n" + sb.String())
	if *soakReport != "" {
		if err := os.WriteFile(*soakReport, []byte(sb.String()), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	for _, m := range problems {
		t.Error(m)
	}
}

// startProc runs bin with args, its debug stats in dir. A viewer's
// stdout is read for frame counts. Whatever still runs when the test ends
// is stopped.
func startProc(t *testing.T, bin, dir, name, role string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, role: role, statsPath: filepath.Join(dir, name+".jsonl")}
	cfg := hubtest.ProcConfig{Name: name, Env: []string{"VIDHUB_DEBUG_STATS=" + p.statsPath}}
	if role == "viewer" {
		p.stats = &hubtest.Stats{}
		cfg.Stdout = p.stats
	}
	p.Proc = hubtest.StartProc(t, cfg, bin, args...)
	return p
}

// framesOf is the newest frame count of publisher a viewer printed.
func (p *proc) framesOf(publisher string) uint64 { return p.stats.Frames(publisher) }

// frameTable is every viewer's frame count of every publisher.
func frameTable(views, pubs []*proc) map[[2]string]uint64 {
	m := map[[2]string]uint64{}
	for _, v := range views {
		for _, p := range pubs {
			m[[2]string{v.name, p.name}] = v.framesOf(p.name)
		}
	}
	return m
}

// framesSummary is the frames column: what a viewer got from all
// publishers (and the fewest from one), what viewers got of a publisher's.
func (p *proc) framesSummary(frames map[[2]string]uint64, views, pubs []*proc) string {
	var ns []uint64
	switch p.role {
	case "viewer":
		for _, q := range pubs {
			ns = append(ns, frames[[2]string{p.name, q.name}])
		}
	case "publisher":
		for _, v := range views {
			ns = append(ns, frames[[2]string{v.name, p.name}])
		}
	default:
		return ""
	}
	var sum uint64
	for _, n := range ns {
		sum += n
	}
	if p.role == "viewer" {
		return fmt.Sprintf("%d (fewest of one publisher %d)", sum, slices.Min(ns))
	}
	return fmt.Sprintf("%d to each viewer (fewest %d)", slices.Max(ns), slices.Min(ns))
}

// sample records the process's RSS and its newest debug stats; a process
// that exited fails the test.
func (p *proc) sample(t *testing.T, now time.Time) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited during the soak: %v\n%s", p.name, p.Err(), tail(p.Stderr.String()))
	}
	rss, err := vmRSS(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	if !p.readDebug() {
		return // no line yet
	}
	p.matsPeak = max(p.matsPeak, p.last.Mats)
	p.samples = append(p.samples, sample{at: now, goroutines: p.last.Goroutines, rss: rss, heap: p.last.Heap})
}

// readDebug reads the debug stats lines written since the last call and
// keeps the newest; it reports whether there is one.
func (p *proc) readDebug() bool {
	f, err := os.Open(p.statsPath)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, p.statsOff, 1<<30))
	if err != nil {
		return false
	}
	end := strings.LastIndexByte(string(data), '\n')
	if end < 0 {
		return p.statsOff > 0
	}
	p.statsOff += int64(end + 1)
	lines := strings.Split(string(data[:end]), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if json.Unmarshal([]byte(lines[i]), &p.last) == nil {
			return true
		}
	}
	return p.statsOff > 0
}

// stop waits for a process sent SIGINT to exit and checks it did so
// cleanly, with a final debug line.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	if _, ok := p.Wait(stopTimeout); !ok {
		return fmt.Sprintf("%s: still running %v after SIGINT", p.name, stopTimeout)
	}
	if p.Err() != nil {
		return fmt.Sprintf("%s: exit after SIGINT: %v\n%s", p.name, p.Err(), tail(p.Stderr.String()))
	}
	p.readDebug()
	if !p.last.Final {
		return p.name + ": no final debug stats line on exit"
	}
	return ""
}

// window returns the baseline (median of the first samples at or after
// from), the end (median of the last samples) and the peak after from.
func (p *proc) window(from time.Time) (base, last, peak sample, ok bool) {
	var after []sample
	for _, s := range p.samples {
		if !s.at.Before(from) {
			after = append(after, s)
		}
	}
	if len(after) == 0 {
		return base, last, peak, false
	}
	k := min(max(len(after)/10, 5), len(after))
	base, last = median(after[:k]), median(after[len(after)-k:])
	for _, s := range after {
		peak.goroutines, peak.rss = max(peak.goroutines, s.goroutines), max(peak.rss, s.rss)
	}
	return base, last, peak, true
}

// median takes the median of each field on its own.
func median(ss []sample) sample {
	gs := make([]int, len(ss))
	rs := make([]uint64, len(ss))
	hs := make([]uint64, len(ss))
	for i, s := range ss {
		gs[i], rs[i], hs[i] = s.goroutines, s.rss, s.heap
	}
	slices.Sort(gs)
	slices.Sort(rs)
	slices.Sort(hs)
	return sample{goroutines: gs[len(gs)/2], rss: rs[len(rs)/2], heap: hs[len(hs)/2]}
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuTime reads a process's user and system time from /proc (0 if it
// cannot), assuming the usual 100 clock ticks a second.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime and stime the 12th and 13th.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// tail is the end of a process's log, for a failure message.
func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
