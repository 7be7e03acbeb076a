package hubtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// NeedTools ends the test (see Unavailable) unless every tool is on PATH.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(t, "%s is missing: run make deps-test (scripts/deps.sh test) to install it", tool)
		}
	}
}

// displays hands out display numbers: a block of 16 per test process,
// chosen from its pid. Two test binaries of "go test ./..." start Xvfb at
// the same moment; with -displayfd both would probe :0 first, and one can
// unlink the other's socket while it backs off to :1 (the CI flake where
// a window "could not connect to display :0").
var displays atomic.Int32

func nextDisplay() int {
	return 100 + (os.Getpid()%3000)*16 + int(displays.Add(1)%16)
}

// Xvfb starts a virtual X display (1280x800, 24 bits) for the test and
// returns its name (":N") once a client can connect to it; it stops when
// the test ends.
func Xvfb(t testing.TB) string {
	t.Helper()
	NeedTools(t, "Xvfb")
	var errs []string
	for range 4 {
		display, err := startXvfb(t, nextDisplay())
		if err == nil {
			return display
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("Xvfb did not start:\n%s", strings.Join(errs, "\n"))
	return ""
}

// startXvfb starts Xvfb on display n and waits until its socket accepts
// connections, or says why not (the display was taken, say).
func startXvfb(t testing.TB, n int) (string, error) {
	// Xvfb writes its display number to fd 3 once it accepts clients.
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	display := ":" + strconv.Itoa(n)
	// -noreset: an X server resets itself when its last client goes,
	// refusing connections for a moment; the probe below is a client,
	// so without it a window opened right after could not connect (a
	// CI flake: "could not connect to display").
	p := StartProc(t, ProcConfig{ExtraFiles: []*os.File{wr}, Name: "Xvfb " + display}, "Xvfb", display, "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset")
	wr.Close()
	_ = rd.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := bufio.NewReader(rd).ReadString('\n'); err != nil {
		p.Kill()
		return "", fmt.Errorf("%s: %v\n%s", display, err, p.Output())
	}
	sock := "/tmp/.X11-unix/X" + strconv.Itoa(n)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Close()
			return display, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return "", fmt.Errorf("%s: no client can connect to %s: %v\n%s", display, sock, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
