//go:build unix && cgo && !vidhub_lite

package main

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestStalledViewerH264 stops one of three headless H.264 viewers
// (SIGSTOP) for 5 s. The other two go on decoding every frame, and the
// stalled one, once resumed, skips its backlog to a keyframe (latest
// decodable frame wins) and shows clean frames again: no viewer ever
// shows a corrupted picture.
func TestStalledViewerH264(t *testing.T) {
	bin := hubtest.Vidhub(t)
	srv := hubtest.StartNatsServer(t, 0)
	hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, srv.URL, "stall264", "cam", "--size", "640x360", "--fps", "30", "--codec", "h264")
	logs := make([]*hubtest.Stats, 3)
	procs := make([]*hubtest.Proc, 3)
	for i := range logs {
		logs[i] = &hubtest.Stats{}
		procs[i] = hubtest.StartProc(t, hubtest.ProcConfig{Stdout: logs[i], Name: "view v" + strconv.Itoa(i)}, bin, "view", "--nats", srv.URL,
			"--room", "stall264", "--layer", "hi", "--headless", "--json", "--name", "v"+strconv.Itoa(i))
	}
	hubtest.Eventually(t, 30*time.Second, func() bool {
		for _, l := range logs {
			if s, _ := l.Last("cam"); s.Frames < 30 || s.Codec == "jpeg" {
				return false
			}
		}
		return true
	}, "viewers not all decoding H.264")

	before := make([]hubtest.StatsLine, 3)
	for i, l := range logs {
		before[i], _ = l.Last("cam")
	}
	if err := procs[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	<-ctx.Done() // the stall itself is the test's subject: 5 s of it
	cancel()
	if err := procs[0].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// The stalled viewer shows new frames again.
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, s := range logs[0].Since("cam", resumed) {
			if s.FPS > 0 && s.Frames > before[0].Frames {
				return true
			}
		}
		return false
	}, "the stalled viewer shows no frames after it resumed")
	// A few more seconds of stats from everyone.
	settled := time.Now()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, l := range logs {
			if len(l.Since("cam", settled)) < 2 {
				return false
			}
		}
		return true
	}, "viewers print no stats")
	for i, l := range logs {
		s, _ := l.Last("cam")
		if s.CorruptShown != 0 {
			t.Errorf("viewer %d showed %d corrupted pictures", i, s.CorruptShown)
		}
		if i == 0 {
			t.Logf("the stalled viewer: %d frames skipped waiting for a keyframe, %d keyframes, %d decode errors", s.Waited, s.Keyframes, s.DecodeErrors)
			continue
		}
		// The others kept decoding through the stall: no frame lost.
		if s.Gaps != before[i].Gaps || s.Waited != before[i].Waited {
			t.Errorf("viewer %d lost frames while another was stopped: gaps %d → %d, waited %d → %d",
				i, before[i].Gaps, s.Gaps, before[i].Waited, s.Waited)
		}
	}
}
