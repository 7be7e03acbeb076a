package hubtest_test

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// The test binary doubles as the child process: HUBTEST_CHILD says what
// it does instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("HUBTEST_CHILD") {
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
		os.Exit(0)
	case "wait":
		// Print a banner, then exit 3 on SIGINT or SIGTERM.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "child ready")
		fmt.Println(`{"room":"r","participant":"cam","frames":7,"fps":20}`)
		<-sig
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func TestEnvIsClean(t *testing.T) {
	t.Setenv("NATS_URL", "nats://user-exported:4222")
	t.Setenv("VIDHUB_ROOM", "exported")
	t.Setenv("DISPLAY", ":99")
	p := hubtest.Run(t, 30*time.Second, []string{"HUBTEST_CHILD=env", "NATS_USER=given"}, os.Args[0])
	if p.Code() != 0 {
		t.Fatalf("exit %d", p.Code())
	}
	env := p.Stdout.String()
	for _, v := range []string{"NATS_URL=", "VIDHUB_ROOM=", "DISPLAY="} {
		if strings.Contains(env, v) {
			t.Errorf("the child's environment has %s from the test's", v)
		}
	}
	if !strings.Contains(env, "NATS_USER=given") {
		t.Errorf("the child's environment lacks what the test gave it:\n%s", env)
	}
}

func TestProcWaitsAndStops(t *testing.T) {
	var stats hubtest.Stats
	p := hubtest.StartProc(t, hubtest.ProcConfig{Env: []string{"HUBTEST_CHILD=wait"}, Stdout: &stats}, os.Args[0])
	p.WaitOutput(30*time.Second, "child ready")
	p.WaitFor(30*time.Second, func() bool { return stats.Frames("cam") == 7 }, "no stats line")
	if p.Exited() {
		t.Fatal("exited early")
	}
	if code := p.Stop(); code != 3 {
		t.Errorf("Stop: exit %d, want the child's 3", code)
	}
	if l, ok := stats.Last("cam"); !ok || l.Room != "r" || l.FPS != 20 {
		t.Errorf("stats line %+v", l)
	}
}
