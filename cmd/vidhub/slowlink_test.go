//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestSlowLinkFallsBackToLo puts a viewer behind a 4 Mbit/s link (its own
// network namespace) in a room whose hi layer needs about 10: the broker
// cuts it off as a slow consumer or its frames arrive late, it reconnects
// by itself, and with --layer auto it falls back to lo, saying why in its
// log and its stats.
func TestSlowLinkFallsBackToLo(t *testing.T) {
	link := hubtest.NewWire(t, "slow", 231)
	link.RateDown("4mbit")
	hostIP := link.HubIP
	bin := hubtest.Vidhub(t)
	conf := filepath.Join(t.TempDir(), "slow.conf")
	// A short write deadline: a viewer that cannot keep up is cut off soon.
	if err := os.WriteFile(conf, []byte("write_deadline: \"2s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "nats://" + hostIP + ":4222"
	hubtest.Start(t, bin, "broker", "--config", conf, "--listen", hostIP+":4222")
	hubtest.WaitPort(t, hostIP+":4222", 20*time.Second)
	// JPEG hi (about 10 Mbit/s) is what the link cannot carry; H.264 fits.
	hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, url, "slow", "cam", "--size", "1280x720", "--fps", "30", "--codec", "jpeg")

	var stats hubtest.Stats
	view := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &stats, Name: "view (slow link)"},
		"ip", "netns", "exec", link.NS, bin, "view", "--nats", url, "--room", "slow", "--headless", "--json")

	var fell hubtest.StatsLine
	view.WaitFor(90*time.Second, func() bool {
		s, ok := stats.Last("cam")
		if ok && s.Layer == "lo" && strings.Contains(s.LayerReason, "too slow") {
			fell = s
			return true
		}
		return false
	}, "the viewer on a slow link did not fall back to lo")
	if !strings.Contains(view.Stderr.String(), "falling back to the lo layer") {
		t.Errorf("the fallback is not logged:\n%s", view.Stderr.String())
	}
	t.Logf("fell back after %d frames: %s", fell.Frames, fell.LayerReason)
	// It keeps going on lo, by itself.
	view.WaitFor(30*time.Second, func() bool {
		s, _ := stats.Last("cam")
		return s.Layer == "lo" && s.Frames > fell.Frames+60 && s.FPS > 0
	}, "no lo frames after the fallback")
}
