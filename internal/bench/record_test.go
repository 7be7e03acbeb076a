package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/media"
)

// TestRecordQuick is the smoke form of the record scenario, in this
// process: every step produces its figures and the Markdown goes into
// the recording section alone. It never checks how fast anything is.
func TestRecordQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("records a room for several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Quick: true, Duration: 500 * time.Millisecond, Only: []string{KindRecord}, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	t.Log(progress.String())
	r := rep.Record
	if r == nil {
		t.Fatal("no recording report")
	}
	if len(r.Targets) != 5 {
		t.Fatalf("%d targets, want 5", len(r.Targets))
	}
	if !media.H264Available() {
		for _, tg := range r.Targets {
			if tg.Status != NotMeasured || !strings.Contains(tg.Got, "static build") {
				t.Errorf("build without H.264: target %q is %s (%s)", tg.Name, tg.Status, tg.Got)
			}
		}
		return
	}
	// In process, the broker's CPU is not its own.
	if r.CPUOn != -1 || r.CPUOff != -1 || r.Targets[0].Status != NotMeasured {
		t.Errorf("in-process CPU: %v %v, %s", r.CPUOff, r.CPUOn, r.Targets[0].Status)
	}
	if r.PublishedBytes == 0 || r.StoredBytes == 0 || r.StoredMsgs == 0 {
		t.Errorf("nothing published or stored: %+v", r)
	}
	for _, j := range []JoinResult{r.Seek, r.LiveJoin} {
		if len(j.Samples)+j.Failed != j.Joins || len(j.Samples) == 0 || j.P95 < j.P50 {
			t.Errorf("join %s: %+v", j.Codec, j)
		}
	}
	var paths []string
	for _, tm := range r.Timing {
		paths = append(paths, tm.Path)
	}
	if want := []string{"replay 1x", "live", pathReplayReader, pathLiveSub}; !slices.Equal(paths, want) {
		t.Fatalf("timing paths %q, want %q", paths, want)
	}
	for _, tm := range r.Timing {
		if tm.Pairs == 0 || tm.FPS <= 0 || tm.P99 < tm.P50 || tm.Max < tm.P99 {
			t.Errorf("timing %s: %+v", tm.Path, tm)
		}
	}
	if e := r.Export; e == nil || e.Frames == 0 || e.Bytes == 0 || e.Span <= 0 || e.MS <= 0 {
		t.Errorf("export: %+v", e)
	}
	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	orig := "# x\n\n" + MarkBegin + "\nold\n" + MarkEnd + "\n\n" + MarkH264Begin + "\nold h264\n" + MarkH264End + "\n\n" + MarkRecBegin + "\nold rec\n" + MarkRecEnd + "\n"
	if err := os.WriteFile(md, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(md, rep); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	s := string(got)
	if !strings.Contains(s, "\nold\n") || !strings.Contains(s, "old h264") || strings.Contains(s, "old rec") {
		t.Errorf("a run of record alone must replace its own section only:\n%s", s)
	}
	for _, want := range []string{"| recording |", "| replay from now-1s |", "| replay 1x |", "| cam0, h264 |", "| target |"} {
		if !strings.Contains(s, want) {
			t.Errorf("recording section lacks %q:\n%s", want, s)
		}
	}
}

// TestRecordTargets checks the recording targets on made-up figures:
// met, missed, and not measured with the reason.
func TestRecordTargets(t *testing.T) {
	full := func() RecordReport {
		return RecordReport{Publishers: 4, Window: 10, CPUOff: 0.20, CPUOn: 0.30,
			PublishedBytes: 10_000_000, PublishedMsgs: 2400, StoredBytes: 10_200_000, StoredMsgs: 2400, SeekBack: 5,
			Seek:     JoinResult{Codec: "replay", Joins: 10, P50: 120, P95: 210, Max: 230, Samples: make([]float64, 10)},
			LiveJoin: JoinResult{Codec: "live", Joins: 10, P50: 90, P95: 150, Max: 160, Samples: make([]float64, 10)},
			Timing:   []TimingResult{{Path: "replay 1x", Pairs: 500, P50: 0.4, P99: 3.1, Max: 6}, {Path: "live", Pairs: 500, P50: 1, P99: 4, Max: 9}},
			Export:   &ExportResult{Participant: "cam0", Span: 12, Frames: 360, Bytes: 2_000_000, MS: 150, PerMinuteMS: 750},
		}
	}
	cases := []struct {
		name string
		edit func(*RecordReport)
		want [5]string
		got  [5]string // in each target's got
	}{
		{"met", func(*RecordReport) {}, [5]string{Met, Met, Met, Met, Met},
			[5]string{"+0.100 cores (0.300 recording against 0.200", "1.020 of it", "live join p50 90 ms", "live p50 1.00 ms", "750 ms per minute"}},
		{"missed", func(r *RecordReport) {
			r.CPUOn, r.StoredBytes, r.Seek.P95, r.Timing[0].P99, r.Export.PerMinuteMS = 0.5, 8_000_000, 450, 12, 2500
		}, [5]string{Missed, Missed, Missed, Missed, Missed}, [5]string{"+0.300", "0.800 of it", "p95 450 ms", "p99 12.00 ms", "2500 ms"}},
		{"failed replay", func(r *RecordReport) { r.Seek.Failed = 1 }, [5]string{Met, Met, Missed, Met, Met},
			[5]string{"", "", "(1 without a picture", "", ""}},
		{"in process, quick", func(r *RecordReport) {
			r.CPUOff, r.CPUOn, r.SeekBack, r.Export.Span, r.Publishers = -1, -1, 1, 2, 2
		}, [5]string{NotMeasured, Met, NotMeasured, Met, NotMeasured},
			[5]string{"separate processes", "", "quick run", "", "too short to scale"}},
		{"niced publishers", func(r *RecordReport) {
			r.Timing = append(r.Timing, TimingResult{Path: pathReplayReader, Pairs: 500, P50: 0.5, P99: 9},
				TimingResult{Path: pathLiveSub, Pairs: 500, P50: 5, P99: 30},
				TimingResult{Path: pathReplayNiced, Pairs: 500, P50: 0.4, P99: 2.5},
				TimingResult{Path: pathLiveNiced, Pairs: 500, P50: 3, P99: 12})
		}, [5]string{Met, Met, Met, Missed, Met},
			[5]string{"", "", "", "replay 1x, reader: p50 0.50 ms, p99 9.00 ms over 500 intervals; live, subscription p50 5.00 ms, p99 30.00 ms; replay 1x, reader, publishers at nice 19: p50 0.40 ms, p99 2.50 ms", ""}},
		{"quick, separate processes", func(r *RecordReport) { r.Publishers = 2 }, [5]string{NotMeasured, Met, Met, Met, Met},
			[5]string{"(quick run)", "", "", "", ""}},
		{"nothing", func(r *RecordReport) { *r = RecordReport{CPUOff: -1, CPUOn: -1} },
			[5]string{NotMeasured, NotMeasured, NotMeasured, NotMeasured, NotMeasured}, [5]string{"separate processes", "not measured", "not measured", "not measured", "not measured"}},
		{"static build", func(r *RecordReport) { *r = RecordReport{NotMeasured: "not measured: static build (no H.264 codec)"} },
			[5]string{NotMeasured, NotMeasured, NotMeasured, NotMeasured, NotMeasured},
			[5]string{"static build", "static build", "static build", "static build", "static build"}},
	}
	for _, c := range cases {
		r := full()
		c.edit(&r)
		ts := recordTargets(&r)
		if len(ts) != 5 {
			t.Fatalf("%s: %d targets", c.name, len(ts))
		}
		for i, tg := range ts {
			if tg.Status != c.want[i] {
				t.Errorf("%s: target %d (%s) is %s (%s), want %s", c.name, i, tg.Name, tg.Status, tg.Got, c.want[i])
			}
			if !strings.Contains(tg.Got, c.got[i]) {
				t.Errorf("%s: target %d says %q, want %q in it", c.name, i, tg.Got, c.got[i])
			}
		}
		r.Targets = ts
		var b strings.Builder
		r.markdown(&b)
		if n := strings.Count(b.String(), "| **"); n != 5 {
			t.Errorf("%s: %d target rows in the Markdown:\n%s", c.name, n, b.String())
		}
	}
}

// TestTiming checks the interval comparison on made-up arrivals: a frame
// handed over 3 ms late makes two intervals off by 3 ms.
func TestTiming(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	var as []arrival
	for i := range 10 {
		late := 0.0
		if i == 5 {
			late = 3
		}
		as = append(as, arrival{seq: uint64(i + 1), received: t0.Add(ms(100 + 33*float64(i) + late)), captured: t0.Add(ms(33 * float64(i)))})
	}
	r := timing("replay 1x", map[string][]arrival{"cam0": as}, 1)
	if r.Pairs != 9 || r.Max != 3 || r.P50 != 0 || r.FPS != 10 {
		t.Errorf("%+v", r)
	}
	if r := timing("live", nil, 1); r.Pairs != 0 || r.FPS != 0 {
		t.Errorf("empty: %+v", r)
	}
}

// TestLowerPriority lowers every thread of a child process with threads
// to nice 19.
func TestLowerPriority(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 (scripts/deps.sh installs it): ", err)
	}
	cmd := exec.Command(py, "-c", "import threading, sys\n"+
		"e = threading.Event()\n"+
		"ts = [threading.Thread(target=e.wait) for _ in range(3)]\n"+
		"[x.start() for x in ts]\n"+
		"print('ready', flush=True)\n"+
		"sys.stdin.read()\n"+
		"e.set()\n")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	if err := lowerPriority(pid); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 4 {
		t.Fatalf("%d threads, want 4", len(tasks))
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Field 19 is the nice value; the command (field 2) may hold
		// spaces, so count from after its closing parenthesis.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if fields[16] != "19" {
			t.Errorf("thread %s: nice %s, want 19", task.Name(), fields[16])
		}
	}
}
