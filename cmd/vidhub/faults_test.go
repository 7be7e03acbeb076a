//go:build unix

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestBrokerKilledAndRestarted kills the broker with SIGKILL while a
// publisher and a headless viewer (separate processes) run, restarts it on
// the same address, and checks both resume by themselves: the viewer's
// next stats (printed each second) show new frames within 2 s of the
// broker's return plus one interval, frames of the outage are dropped and
// counted rather than replayed late, and nothing exits.
func TestBrokerKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := hubtest.Vidhub(t)
	srv := hubtest.StartNatsServer(t, 0)
	pub := hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, srv.URL, "outage", "cam")
	var stats hubtest.Stats
	view := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &stats}, bin, "view", "--nats", srv.URL, "--room", "outage", "--headless", "--json")
	view.WaitFor(30*time.Second, func() bool { return stats.Frames("cam") >= 20 }, "no frames before the outage")

	srv.Kill()
	down := time.Now()
	// Dead air: the viewer's stats stop counting frames.
	hubtest.Eventually(t, 15*time.Second, func() bool {
		s, _ := stats.Last("cam")
		return s.At.After(down.Add(500*time.Millisecond)) && s.FPS == 0
	}, "frames still counted with the broker down")
	before := stats.Frames("cam")
	outage := time.Since(down)
	hubtest.StartNatsServer(t, srv.Port)
	back := time.Now()
	hubtest.Eventually(t, 10*time.Second, func() bool { return stats.Frames("cam") > before+5 }, "viewer did not resume")
	var first hubtest.StatsLine
	for _, s := range stats.Since("cam", back) {
		if s.Frames > before {
			first = s
			break
		}
	}
	if d := first.At.Sub(back); d > 3*time.Second {
		t.Errorf("first stats with new frames %v after the broker came back; want within 2 s plus the 1 s interval", d)
	}
	// Nothing stale was replayed: every frame after the outage is fresh.
	hubtest.Eventually(t, 15*time.Second, func() bool { return len(stats.Since("cam", first.At)) >= 1 }, "no stats after resuming")
	for _, s := range stats.Since("cam", first.At.Add(-time.Millisecond)) {
		if s.LatencyMax > float64(outage.Milliseconds())/2 {
			t.Errorf("after the outage a frame %.0f ms old was shown: the outage's frames were replayed", s.LatencyMax)
		}
	}
	last, _ := stats.Last("cam")
	if last.Gaps == 0 {
		t.Errorf("no frames counted as lost across a %v outage: %+v", outage, last.TileStats)
	}
	for _, p := range []*hubtest.Proc{pub, view} {
		if p.Exited() {
			t.Fatalf("%s exited during the outage: %v", p.Name, p.Err())
		}
	}
	// The publisher counted what it dropped, and stops cleanly.
	if code := pub.Stop(); code != 0 {
		t.Fatalf("publisher exit %d", code)
	}
	if !strings.Contains(pub.Stderr.String(), "dropped_offline=") || strings.Contains(pub.Stderr.String(), "dropped_offline=0 ") {
		t.Errorf("publisher did not count frames dropped in the outage:\n%s", pub.Stderr.String())
	}
}

// TestStalledViewer stops one of ten viewers of a 720p30 room with
// SIGSTOP for 10 s. The other nine lose nothing and their latency stays
// what it was; the stopped one, once continued, is back to fresh frames
// within a second instead of playing a backlog.
func TestStalledViewer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := hubtest.Vidhub(t)
	srv := hubtest.StartNatsServer(t, 0)
	// JPEG: ten headless viewers of 720p30 need no decoder, so the
	// machine's two cores measure the broker, not decoding (the H.264
	// stall is TestStalledViewerH264).
	hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, srv.URL, "stall", "cam", "--size", "1280x720", "--fps", "30", "--codec", "jpeg")
	// A reference: what the publisher really sent, seen by a plain NATS
	// subscriber in this process. A frame the publisher itself skipped (on
	// a busy machine its mailbox may overwrite one) is a gap for every
	// viewer, and no fault of the stall.
	var ref seqLog
	refConn := hubtest.Connect(t, srv.URL)
	camAddr, _ := protocol.NewAddress("stall", "cam")
	if _, err := refConn.Subscribe(camAddr.FrameSubject(protocol.Hi), ref.add); err != nil {
		t.Fatal(err)
	}
	logs := make([]*hubtest.Stats, 10)
	procs := make([]*hubtest.Proc, 10)
	for i := range logs {
		logs[i] = &hubtest.Stats{}
		procs[i] = hubtest.StartProc(t, hubtest.ProcConfig{Stdout: logs[i], Name: "view v" + strconv.Itoa(i)}, bin, "view", "--nats", srv.URL, "--room", "stall",
			"--layer", "hi", "--headless", "--json", "--name", "v"+strconv.Itoa(i))
	}
	receiving := time.Now()
	hubtest.Eventually(t, 20*time.Second, func() bool {
		for _, l := range logs {
			if l.Frames("cam") < 30 {
				return false
			}
		}
		receiving = time.Now()
		return true
	}, "viewers not all receiving")
	// A baseline: three full seconds of stats from every viewer.
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, l := range logs {
			if len(l.Since("cam", receiving)) < 3 {
				return false
			}
		}
		return true
	}, "viewers print no stats")

	stopped := procs[0]
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	gapsBefore := make([]uint64, 10)
	framesBefore := make([]uint64, 10)
	p50Before := make([]float64, 10)
	for i, l := range logs {
		s, _ := l.Last("cam")
		gapsBefore[i], framesBefore[i] = s.Gaps, s.Frames
		p50Before[i], _ = hubtest.MedianP50(l.Between("cam", receiving, stoppedAt))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	<-ctx.Done() // the stall itself is the test's subject: 10 s of it
	cancel()
	if err := stopped.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// Each viewer's counts below come from stats lines printed at most a
	// second before the stop and before now: the reference covers that.
	refGaps := ref.gaps(stoppedAt.Add(-1500*time.Millisecond), resumed)
	if refGaps > 0 {
		t.Logf("the publisher itself skipped %d frames around the stall", refGaps)
	}

	for i, l := range logs[1:] {
		i++
		s, _ := l.Last("cam")
		if lost := s.Gaps - gapsBefore[i]; lost > refGaps {
			t.Errorf("viewer %d lost %d frames while another viewer was stopped (the publisher skipped %d)", i, lost, refGaps)
		}
		// 10 s at 30 fps: the nine saw (nearly) every frame sent.
		if got := s.Frames - framesBefore[i]; got+refGaps < 270 {
			t.Errorf("viewer %d got %d frames in the 10 s stall, want about 300 (the publisher skipped %d)", i, got, refGaps)
		}
		// Nor were they slowed down: latency stays in its range. (A
		// comparison with the viewer's own, on a busy machine, not an
		// absolute speed.)
		during, ok := hubtest.MedianP50(l.Between("cam", stoppedAt.Add(time.Second), resumed))
		if limit := 3*p50Before[i] + 20; !ok || during > limit {
			t.Errorf("viewer %d: latency p50 %.1f ms during the stall, %.1f ms before it; want at most %.1f ms",
				i, during, p50Before[i], limit)
		}
	}
	// The continued viewer: every frame it gets from 1 s after SIGCONT on
	// is fresh, captured after SIGCONT rather than during the stall (at
	// most 1 s old, then). Each stats line covers the frames received
	// since the one before it, so the first line whose predecessor came
	// 1 s or more after SIGCONT covers only such frames.
	var fresh hubtest.StatsLine
	hubtest.Eventually(t, 10*time.Second, func() bool {
		lines := logs[0].Since("cam", resumed)
		for k := 1; k < len(lines); k++ {
			if lines[k-1].At.Sub(resumed) >= time.Second {
				fresh = lines[k]
				return true
			}
		}
		return false
	}, "no stats from the continued viewer")
	if fresh.FPS == 0 || fresh.LatencyMax >= 1000 {
		var b strings.Builder
		for _, s := range logs[0].Since("cam", stoppedAt) {
			fmt.Fprintf(&b, "  %+v after SIGCONT: %.1f fps, latency p50 %.0f ms, max %.0f ms, %d frames\n",
				s.At.Sub(resumed).Round(time.Millisecond), s.FPS, s.LatencyP50, s.LatencyMax, s.Frames)
		}
		t.Errorf("the continued viewer still got frames over 1 s old (a backlog), or none, from 1 s after SIGCONT on; its stats:\n%s", b.String())
	}
}

// seqLog records the sequence numbers of one stream as they arrive.
type seqLog struct {
	mu   sync.Mutex
	at   []time.Time
	seqs []uint64
}

func (l *seqLog) add(m *nats.Msg) {
	meta, err := protocol.ParseFrame(m.Header, m.Data)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.at, l.seqs = append(l.at, time.Now()), append(l.seqs, meta.Seq)
	l.mu.Unlock()
}

// gaps counts the frames missing from the sequence among those that
// arrived between from and to.
func (l *seqLog) gaps(from, to time.Time) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n uint64
	for i := 1; i < len(l.seqs); i++ {
		if l.at[i].Before(from) || l.at[i].After(to) {
			continue
		}
		if d := l.seqs[i] - l.seqs[i-1]; l.seqs[i] > l.seqs[i-1] && d > 1 {
			n += d - 1
		}
	}
	return n
}
