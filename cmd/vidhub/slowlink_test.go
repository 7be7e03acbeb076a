//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// netns makes a network namespace joined to this one by a veth pair whose
// host side sends at most rate (tc tbf): a slow link. It returns the
// namespace's name and the host side's address.
func netns(t *testing.T, rate string) (ns, hostIP string) {
	t.Helper()
	n := os.Getpid()%200 + 20
	ns = fmt.Sprintf("vidhub-slow-%d", os.Getpid())
	host, peer := fmt.Sprintf("vhs%d", os.Getpid()), fmt.Sprintf("vhp%d", os.Getpid())
	hostIP = fmt.Sprintf("10.231.%d.1", n)
	run := func(args ...string) {
		t.Helper()
		if p := hubtest.Run(t, 30*time.Second, nil, args[0], args[1:]...); p.Code() != 0 {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), p.Code(), p.Output())
		}
	}
	t.Cleanup(func() {
		hubtest.Run(t, 30*time.Second, nil, "ip", "link", "del", host)
		hubtest.Run(t, 30*time.Second, nil, "ip", "netns", "del", ns)
	})
	run("ip", "netns", "add", ns)
	run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	run("ip", "link", "set", peer, "netns", ns)
	run("ip", "addr", "add", hostIP+"/24", "dev", host)
	run("ip", "link", "set", host, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", fmt.Sprintf("10.231.%d.2/24", n), "dev", peer)
	run("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	run("tc", "qdisc", "add", "dev", host, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")
	return ns, hostIP
}

// TestSlowLinkFallsBackToLo puts a viewer behind a 4 Mbit/s link (its own
// network namespace) in a room whose hi layer needs about 10: the broker
// cuts it off as a slow consumer or its frames arrive late, it reconnects
// by itself, and with --layer auto it falls back to lo, saying why in its
// log and its stats.
func TestSlowLinkFallsBackToLo(t *testing.T) {
	if testing.Short() {
		t.Skip("needs network namespaces")
	}
	if os.Geteuid() != 0 {
		hubtest.Unavailable(t, "network namespaces need root; CI runs as root")
	}
	hubtest.NeedTools(t, "ip", "tc")
	ns, hostIP := netns(t, "4mbit")
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
		"ip", "netns", "exec", ns, bin, "view", "--nats", url, "--room", "slow", "--headless", "--json")

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
