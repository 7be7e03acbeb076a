// Package hubtest is the one harness of vidhub's tests: real brokers (the
// embedded one, and a stock nats-server process built from the same
// module), connections, waiting for a condition instead of sleeping, and
// every process a test starts (Proc: the vidhub command built once by
// Vidhub or VidhubStatic, nats-server, Xvfb, tools), always in a clean
// environment so that a user's exported NATS_URL or VIDHUB_* cannot
// change a test's outcome. Stats reads a headless viewer's JSON stats;
// Publish and PublishProcess run pattern publishers.
package hubtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
)

// Broker starts an embedded broker on a random loopback port, stopped
// when the test ends.
func Broker(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("starting broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Connect connects to url with reconnects on, closed when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	// A connect timeout well above nats.go's 2 s: a loaded CI machine
	// running the race detector can take that long to answer.
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(10 * time.Second)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Eventually polls cond every 20ms until it holds or timeout passes, then
// fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Lazy is a message argument of Eventually evaluated when the message
// is printed, after the wait, rather than when Eventually is called:
//
//	hubtest.Eventually(t, d, cond, "tiles: %v", hubtest.Lazy(func() any { return tiles() }))
//
// shows the tiles as they were when the wait gave up, not as they were
// before it began.
type Lazy func() any

func (l Lazy) String() string { return fmt.Sprint(l()) }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Ports a test needs at once come from one FreePorts call: ports from
// separate calls may be the same, since each is free again on return.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n different TCP ports on 127.0.0.1 that were free a
// moment ago: each is held until all are picked.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// WaitPort waits until something accepts TCP connections on addr.
func WaitPort(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() bool { return dialable(addr) }, "nothing listens on %s", addr)
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

var (
	buildOnce sync.Map // binary name -> *buildResult
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// GoBuild builds package pkg (with extra go build args) once per test
// process and returns the binary's path.
func GoBuild(t testing.TB, name, pkg string, env []string, args ...string) string {
	t.Helper()
	v, _ := buildOnce.LoadOrStore(name, &buildResult{})
	br := v.(*buildResult)
	br.once.Do(func() {
		dir, err := os.MkdirTemp("", "vidhub-bin-")
		if err != nil {
			br.err = err
			return
		}
		br.path = filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", br.path}, args...), pkg)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			br.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if br.err != nil {
		t.Fatal(br.err)
	}
	return br.path
}

// Vidhub builds the vidhub command (with cgo: OpenCV) once per test
// process and returns the binary's path.
func Vidhub(t testing.TB) string {
	t.Helper()
	return GoBuild(t, "vidhub", vidhubPkg, nil)
}

// VidhubStatic builds the static vidhub command (CGO_ENABLED=0, what the
// image holds) once per test process and returns the binary's path.
func VidhubStatic(t testing.TB) string {
	t.Helper()
	return GoBuild(t, "vidhub-static", vidhubPkg, []string{"CGO_ENABLED=0"})
}

// VidhubTags builds the vidhub command with build tags (e.g.
// "matprofile") once per test process and returns the binary's path.
func VidhubTags(t testing.TB, tags string) string {
	t.Helper()
	return GoBuild(t, "vidhub-"+strings.ReplaceAll(tags, ",", "-"), vidhubPkg, nil, "-tags", tags)
}

const vidhubPkg = "github.com/vidhub/vidhub/cmd/vidhub"

// NatsServer is a stock nats-server process.
type NatsServer struct {
	*Proc
	URL  string
	Port int
}

// StartNatsServer builds nats-server from the module (same version the
// embedded broker uses) and runs it on port (0: a free one) with extra
// arguments, in a clean environment (see Env), stopped when the test ends.
func StartNatsServer(t testing.TB, port int, args ...string) *NatsServer {
	t.Helper()
	return StartNatsServerEnv(t, nil, port, args...)
}

// StartNatsServerEnv is StartNatsServer with env (each "KEY=value") added
// to the clean environment, for a configuration file's $VARIABLES.
func StartNatsServerEnv(t testing.TB, env []string, port int, args ...string) *NatsServer {
	t.Helper()
	bin := GoBuild(t, "nats-server", "github.com/nats-io/nats-server/v2", nil)
	if port == 0 {
		port = FreePort(t)
	}
	p := StartProc(t, ProcConfig{Env: env, Name: "nats-server"}, bin, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	s := &NatsServer{Proc: p, URL: "nats://127.0.0.1:" + strconv.Itoa(port), Port: port}
	p.WaitFor(20*time.Second, func() bool { return dialable(s.URL[len("nats://"):]) }, "nothing listens on port %d", port)
	return s
}

// Unavailable ends a test whose environment lacks something it needs (a
// tool, root, a display): skipped on a developer's machine, but a failure
// under CI (CI set in the environment), where .ci/run installs everything
// and a skipped suite would hide a regression.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format+" (scripts/deps.sh test should have provided it)", args...)
	}
	t.Skipf(format, args...)
}
