package hubtest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
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

// Xvfb starts a virtual X display (1280x800, 24 bits) for the test and
// returns its name (":N"), once it accepts clients; it stops when the
// test ends. Xvfb picks a free display number itself.
func Xvfb(t testing.TB) string {
	t.Helper()
	NeedTools(t, "Xvfb")
	// Xvfb writes its display number to fd 3 once it accepts clients.
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p := StartProc(t, ProcConfig{ExtraFiles: []*os.File{wr}}, "Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	wr.Close()
	_ = rd.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := bufio.NewReader(rd).ReadString('\n')
	if err != nil {
		t.Fatalf("Xvfb did not start: %v\n%s", err, p.Output())
	}
	return ":" + strings.TrimSpace(n)
}
