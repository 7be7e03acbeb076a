package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// repoRoot is the module root, where docker-compose.yml and the Makefile
// are.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// vidhubBin builds the static vidhub binary (what the image holds); a
// test that needs it is skipped with -short.
func vidhubBin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the vidhub binary")
	}
	return hubtest.GoBuild(t, "vidhub-static", "github.com/vidhub/vidhub/cmd/vidhub", []string{"CGO_ENABLED=0"})
}

// runCmd runs a command to its end within timeout and returns its output
// and exit code (-1 when it could not run or timed out).
func runCmd(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1
	}
	if ctx.Err() != nil {
		t.Logf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
		code = -1
	}
	return out.String(), errb.String(), code
}

// proc is a long-running process of the test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *hubtest.Buffer
}

// startProc starts a process, stopped with SIGTERM (SIGKILL after 10s)
// when the test ends.
func startProc(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, done: make(chan struct{}), out: &hubtest.Buffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(name), strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits, killing after 10s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// viewer is a headless vidhub viewer of one room.
type viewer struct {
	nc   *nats.Conn
	room *subscriber.Room
}

// join joins room through urls (a comma-separated list), as name.
func join(t testing.TB, urls, room, name string, opts ...nats.Option) (*viewer, error) {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{URL: urls, Name: "test viewer", Options: opts})
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	r, err := subscriber.Join(nc, subscriber.Config{Room: room, Name: name, Layer: subscriber.LayerHi})
	if err != nil {
		return nil, err
	}
	t.Cleanup(r.Close)
	return &viewer{nc: nc, room: r}, nil
}

func mustJoin(t testing.TB, urls, room string, opts ...nats.Option) *viewer {
	t.Helper()
	v, err := join(t, urls, room, "", opts...)
	if err != nil {
		t.Fatalf("joining %s through %s: %v", room, urls, err)
	}
	return v
}

// frames counts participant's frames, and bad frames of the room.
func (v *viewer) frames(participant string) (n, bad uint64) {
	bad = v.room.Bad()
	for _, s := range v.room.Stats() {
		if s.Participant == participant {
			n = s.Frames
			bad += s.Bad
		}
	}
	return n, bad
}

// publishPattern runs a pattern publisher into room as name through nc
// until the test ends.
func publishPattern(t testing.TB, nc *nats.Conn, room, name string) *publisher.Publisher {
	t.Helper()
	pub, err := publisher.New(nc, publisher.Config{Room: room, Name: name, Source: "pattern", FPS: 15, Width: 320, Height: 180})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := pub.Run(ctx); err != nil {
			t.Errorf("publisher %s/%s: %v", room, name, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return pub
}
