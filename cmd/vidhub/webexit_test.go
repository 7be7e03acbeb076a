package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestWebExitsWhenBrokerNoLongerAdmits: a "vidhub web" process whose
// broker comes back with another password is refused on every
// reconnect; nats.go closes the connection for good, and the gateway
// exits non-zero with a message saying what to check, instead of
// serving 503 for ever (compose and systemd restart a process that
// exits, not one that stays up).
func TestWebExitsWhenBrokerNoLongerAdmits(t *testing.T) {
	srv := hubtest.StartNatsServer(t, 0, "--user", "gw", "--pass", "old-secret")
	bin := hubtest.GoBuild(t, "vidhub", ".", nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "web", "--nats", srv.URL, "--user", "gw", "--listen", "127.0.0.1:0", "--log-level", "warn")
	// A clean environment: a user's exported NATS_* or VIDHUB_* must not
	// change what the test means. The password comes from the variable
	// the CLI recommends.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VIDHUB_PASSWORD=old-secret"}
	var stderr hubtest.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "vidhub web gateway on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				urls <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	ended := false
	defer func() {
		if !ended {
			_ = cmd.Process.Kill()
			<-exited
		}
		t.Logf("gateway stderr:\n%s", stderr.String())
	}()

	var base string
	select {
	case base = <-urls:
	case err := <-exited:
		ended = true
		t.Fatalf("the gateway exited at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not start")
	}
	healthz := func() int {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return healthz() == http.StatusOK }, "healthz not 200 while connected")

	srv.Kill()
	hubtest.StartNatsServer(t, srv.Port, "--user", "gw", "--pass", "new-secret")
	select {
	case err := <-exited:
		ended = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("the gateway ended with %v, want a non-zero exit status", err)
		}
		msg := stderr.String()
		for _, want := range []string{"vidhub: the connection to the broker was closed", "still admits", "--password"} {
			if !strings.Contains(msg, want) {
				t.Errorf("stderr does not say %q", want)
			}
		}
		if n := strings.Count(msg, "vidhub: vidhub:"); n > 0 {
			t.Errorf("the prefix is said twice in stderr")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway still runs 30 s after the broker stopped admitting it (healthz %d)", healthz())
	}
}
