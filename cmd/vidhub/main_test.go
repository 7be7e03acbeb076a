package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
)

// env makes a getenv from pairs; nothing else of the process leaks in.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCmd runs vidhub in-process with a timeout.
func runCmd(t *testing.T, timeout time.Duration, getenv func(string) string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut hubtest.Buffer
	err := run(ctx, args, getenv, &out, &errOut)
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestBadNamesExitTwo(t *testing.T) {
	bad := []string{"a.b", "*", ">", "a b", "", strings.Repeat("x", 65)}
	for _, name := range bad {
		for _, args := range [][]string{
			{"publish", "--room", name, "--name", "ok", "--source", "pattern"},
			{"publish", "--room", "ok", "--name", name, "--source", "pattern"},
			{"view", "--room", name, "--headless"},
			{"join", "--room", "ok", "--name", name, "--source", "pattern", "--headless"},
			{"demo", "--room", name},
		} {
			_, stderr, code := runCmd(t, 5*time.Second, env(), args...)
			if code != 2 || !strings.Contains(stderr, protocol.NameRule) {
				t.Errorf("%q: exit %d, stderr %q; want 2 and the rule", args, code, stderr)
			}
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: vidhub"},
		{[]string{"help"}, 0, "usage: vidhub"},
		{[]string{"nope"}, 2, `unknown subcommand "nope"`},
		{[]string{"view", "--bogus"}, 2, "bogus"},
		{[]string{"view", "stray"}, 2, "unexpected argument"},
		{[]string{"view", "--layer", "mid", "--headless"}, 2, "use auto, hi or lo"},
		{[]string{"view", "--json"}, 2, "--json needs --headless"},
		{[]string{"publish", "--room", "r", "--name", "n"}, 2, "--source is required"},
		{[]string{"publish", "--size", "big", "--source", "pattern"}, 2, "WxH"},
		{[]string{"broker", "--max-payload", "lots"}, 2, "size in bytes"},
		{[]string{"view", "--headless", "--log-level", "loud"}, 2, "log level"},
		{[]string{"view", "-h"}, 0, "usage: vidhub view"},
	} {
		stdout, stderr, code := runCmd(t, 5*time.Second, env(), tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, stdout+stderr, tc.code, tc.want)
		}
	}
}

func TestEnvironmentFallbacks(t *testing.T) {
	// VIDHUB_ROOM is checked like the flag; NATS_URL is where to connect.
	_, stderr, code := runCmd(t, 5*time.Second, env("VIDHUB_ROOM", "a.b"), "view", "--headless")
	if code != 2 || !strings.Contains(stderr, "a.b") {
		t.Errorf("VIDHUB_ROOM not used: exit %d, %s", code, stderr)
	}
	port := hubtest.FreePort(t)
	_, stderr, _ = runCmd(t, 10*time.Second, env("NATS_URL", "nats://127.0.0.1:"+strconv.Itoa(port)), "rooms")
	if !strings.Contains(stderr, strconv.Itoa(port)) {
		t.Errorf("NATS_URL not used: %s", stderr)
	}
	// The flag wins over the environment.
	_, stderr, _ = runCmd(t, 10*time.Second, env("NATS_URL", "nats://127.0.0.1:1", "VIDHUB_NATS", "nats://127.0.0.1:2"), "rooms", "--nats", "nats://127.0.0.1:"+strconv.Itoa(port))
	if !strings.Contains(stderr, strconv.Itoa(port)) {
		t.Errorf("--nats did not win: %s", stderr)
	}
	_, stderr, _ = runCmd(t, 10*time.Second, env("NATS_URL", "nats://127.0.0.1:1", "VIDHUB_NATS", "nats://127.0.0.1:"+strconv.Itoa(port)), "rooms")
	if !strings.Contains(stderr, strconv.Itoa(port)) {
		t.Errorf("VIDHUB_NATS did not win over NATS_URL: %s", stderr)
	}
}

func TestUnreachableBroker(t *testing.T) {
	url := "nats://127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))
	for _, args := range [][]string{
		{"view", "--headless", "--nats", url},
		{"rooms", "--nats", url},
	} {
		start := time.Now()
		_, stderr, code := runCmd(t, 20*time.Second, env(), args...)
		if code != 1 || !strings.Contains(stderr, "cannot reach the NATS broker") || !strings.Contains(stderr, "vidhub broker") {
			t.Errorf("%q: exit %d, %q", args, code, stderr)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q took %v to give up", args, d)
		}
	}
	// A publisher waits for the broker and says so; stopped, it exits 0.
	_, stderr, code := runCmd(t, 2*time.Second, env(), "publish", "--nats", url, "--room", "r", "--name", "n", "--source", "pattern")
	if code != 0 || !strings.Contains(stderr, "waiting") {
		t.Errorf("publish without a broker: exit %d, %q", code, stderr)
	}
}

func TestViewWithoutDisplay(t *testing.T) {
	_, stderr, code := runCmd(t, 5*time.Second, env(), "view", "--room", "r")
	if code != 1 || !strings.Contains(stderr, "--headless") {
		t.Errorf("exit %d, %q; want an error pointing to --headless", code, stderr)
	}
}

func TestHeadlessJSON(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	hubtest.PublishPattern(t, b.ClientURL(), "lobby", "alice")
	hubtest.PublishPattern(t, b.ClientURL(), "lobby", "bob")
	hubtest.PublishPattern(t, b.ClientURL(), "other", "carol")
	stdout, stderr, code := runCmd(t, 30*time.Second, env("NATS_URL", b.ClientURL()), "view", "--room", "lobby", "--headless", "--json", "--for", "3500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(stdout) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		for _, k := range []string{"room", "participant", "fps", "latency_ms_p50", "latency_ms_p99", "kbps", "frames", "drops", "bad"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", line, k)
			}
		}
		if m["room"] != "lobby" {
			t.Errorf("line from another room: %q", line)
		}
		if m["frames"].(float64) > 0 {
			seen[m["participant"].(string)] = true
		}
	}
	if !seen["alice"] || !seen["bob"] || seen["carol"] {
		t.Errorf("participants with frames: %v; want alice and bob\n%s", seen, stdout)
	}
}

func TestRoomsCommand(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	hubtest.PublishPattern(t, b.ClientURL(), "lobby", "alice")
	var rooms []struct {
		Room         string `json:"room"`
		Participants []struct {
			Name string `json:"name"`
			Role string `json:"role"`
		} `json:"participants"`
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		stdout, _, code := runCmd(t, 10*time.Second, env(), "rooms", "--json", "--nats", b.ClientURL())
		return code == 0 && json.Unmarshal([]byte(stdout), &rooms) == nil && len(rooms) == 1
	}, "rooms --json does not list the room")
	if rooms[0].Room != "lobby" || len(rooms[0].Participants) != 1 || rooms[0].Participants[0].Name != "alice" || rooms[0].Participants[0].Role != "publisher" {
		t.Errorf("rooms: %+v", rooms)
	}
	stdout, _, _ := runCmd(t, 10*time.Second, env(), "rooms", "--nats", b.ClientURL())
	if !strings.Contains(stdout, "lobby") || !strings.Contains(stdout, "alice") || !strings.Contains(stdout, "320x180") {
		t.Errorf("rooms table:\n%s", stdout)
	}
	empty := hubtest.Broker(t, broker.Config{})
	stdout, _, _ = runCmd(t, 10*time.Second, env(), "rooms", "--nats", empty.ClientURL())
	if !strings.Contains(stdout, "no rooms") {
		t.Errorf("empty hub: %q", stdout)
	}
}

func TestJoinHeadless(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	hubtest.PublishPattern(t, b.ClientURL(), "chat", "bob")
	stdout, stderr, code := runCmd(t, 30*time.Second, env(), "join", "--nats", b.ClientURL(), "--room", "chat", "--name", "alice",
		"--source", "pattern", "--size", "320x180", "--fps", "15", "--headless", "--json", "--for", "3s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	self, other := false, false
	for line := range strings.Lines(stdout) {
		var m struct {
			Participant string
			Frames      int
			Self        bool
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m.Participant == "alice" && m.Self && m.Frames > 0 {
			self = true
		}
		if m.Participant == "bob" && !m.Self && m.Frames > 0 {
			other = true
		}
	}
	if !self || !other {
		t.Errorf("join sees itself (marked): %v, the other: %v\n%s", self, other, stdout)
	}
}

// TestDemoHeadless runs the demo without a display: it prints how to
// connect, its browser URL serves the room, /api/rooms lists the demo's
// publishers in its room, and the terminal viewer prints their stats.
func TestDemoHeadless(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var stdout, stderr hubtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--headless", "--size", "320x180"},
			env(), &stdout, &stderr)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	var browser string
	hubtest.Eventually(t, 15*time.Second, func() bool {
		m := browserLine.FindStringSubmatch(stdout.String())
		if m != nil {
			browser = m[1]
		}
		return m != nil
	}, "no browser URL printed")
	base, _, ok := strings.Cut(browser, "/rooms/lobby")
	if !ok {
		t.Fatalf("browser URL %q is not the lobby's page", browser)
	}
	code, body := httpGet(t, browser)
	if code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET %s: %d %.200s", browser, code, body)
	}
	var rooms []protocol.RoomInfo
	publishers := func() map[string]bool {
		got := map[string]bool{}
		for _, r := range rooms {
			for _, m := range r.Members {
				if r.Room == "lobby" && m.Role == protocol.RolePublisher {
					got[m.Name] = true
				}
			}
		}
		return got
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		code, body := httpGet(t, base+"/api/rooms")
		rooms = nil
		if code != 200 || json.Unmarshal([]byte(body), &rooms) != nil {
			return false
		}
		p := publishers()
		return len(p) == 2 && p["alice"] && p["bob"]
	}, "/api/rooms does not list the demo's publishers alice and bob in lobby")
	hubtest.Eventually(t, 10*time.Second, func() bool {
		out := stdout.String()
		return strings.Contains(out, "lobby/alice") && strings.Contains(out, "lobby/bob")
	}, "no stats of alice and bob in the terminal")
	cancel()
	err := <-done
	stopped = true
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"vidhub demo", "embedded NATS", "vidhub publish --nats", "fps"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// browserLine and brokerLine find the demo's web and broker addresses in
// what it prints.
var (
	browserLine = regexp.MustCompile(`(?m)^\s*browser\s+(http://\S+)`)
	brokerLine  = regexp.MustCompile(`(?m)^\s*broker\s+(nats://\S+)`)
)

// httpGet fetches url and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestCloseConnDrains: a command's connection is drained on a clean exit
// (a subscription still hands over what it had received, and what was
// published arrives), and a drain that cannot finish is cut short, well
// within the 2 s a stopped command has to exit.
func TestCloseConnDrains(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	other := hubtest.Connect(t, b.ClientURL())
	connect := func() *nats.Conn {
		nc, err := natsconn.Connect(natsconn.Config{URL: b.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	closeAsync := func(nc *nats.Conn) chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); natsconn.Close(nc) }()
		return done
	}

	t.Run("delivers", func(t *testing.T) {
		nc := connect()
		gate := make(chan struct{})
		var got atomic.Int32
		sub, err := nc.Subscribe("drain.in", func(*nats.Msg) { <-gate; got.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		out, err := other.SubscribeSync("drain.out")
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(nc.Flush(), other.Flush()); err != nil {
			t.Fatal(err)
		}
		const n = 5
		for range n {
			_ = other.Publish("drain.in", nil)
		}
		_ = other.Flush()
		// One message in the callback, the rest queued behind it.
		hubtest.Eventually(t, 15*time.Second, func() bool { m, _, _ := sub.Pending(); return m >= n-1 }, "messages not received")
		_ = nc.Publish("drain.out", []byte("last words"))
		done := closeAsync(nc)
		hubtest.Eventually(t, 15*time.Second, sub.IsDraining, "natsconn.Close does not drain the subscription")
		close(gate)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("natsconn.Close did not return")
		}
		if g := got.Load(); g != n {
			t.Errorf("%d of %d received messages handed over: closing dropped the rest", g, n)
		}
		if !nc.IsClosed() {
			t.Error("connection not closed")
		}
		if _, err := out.NextMsg(2 * time.Second); err != nil {
			t.Errorf("what was published before closing did not arrive: %v", err)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		nc := connect()
		entered := make(chan struct{}, 1)
		gate := make(chan struct{})
		t.Cleanup(func() { close(gate) })
		// A callback that never finishes: the drain cannot complete.
		if _, err := nc.Subscribe("drain.stuck", func(*nats.Msg) { entered <- struct{}{}; <-gate }); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		_ = other.Publish("drain.stuck", nil)
		_ = other.Flush()
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("message not delivered")
		}
		start := time.Now()
		select {
		case <-closeAsync(nc):
		case <-time.After(5 * time.Second):
			t.Fatal("natsconn.Close waits for a drain that cannot finish")
		}
		if d := time.Since(start); d > natsconn.DrainWait+500*time.Millisecond {
			t.Errorf("natsconn.Close took %v; want about %v at most", d, natsconn.DrainWait)
		}
		if !nc.IsClosed() {
			t.Error("connection not closed after the drain timed out")
		}
	})
}

func TestVersion(t *testing.T) {
	stdout, _, code := runCmd(t, 5*time.Second, env(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "vidhub ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

// TestStaticBuild builds with CGO_ENABLED=0 and checks what works without
// OpenCV, and that what needs it says so.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := hubtest.VidhubStatic(t)
	if p := hubtest.Run(t, 30*time.Second, nil, bin, "version"); p.Code() != 0 || !strings.Contains(p.Output(), "static build") {
		t.Errorf("version: exit %d %s", p.Code(), p.Output())
	}
	// The static build's own broker carries everything below.
	brk := hubtest.Start(t, bin, "broker", "--listen", "127.0.0.1:0")
	url := brk.WaitMatch(20*time.Second, regexp.MustCompile(`listening on (nats://\S+)`))[1]

	if p := hubtest.Run(t, 30*time.Second, nil, bin, "publish", "--nats", url, "--room", "r", "--name", "n", "--source", "0"); !strings.Contains(p.Output(), "needs OpenCV") {
		t.Errorf("camera in the static build: %s", p.Output())
	}
	// It has no H.264 encoder: JPEG is its default, and asking for H.264
	// is a usage error that names the full build.
	if p := hubtest.Run(t, 30*time.Second, nil, bin, "publish", "--nats", url, "--room", "r", "--name", "n", "--source", "pattern", "--codec", "h264"); p.Code() != 2 || !strings.Contains(p.Output(), "full build") {
		t.Errorf("--codec h264 in the static build: exit %d, %s", p.Code(), p.Output())
	}
	if p := hubtest.Run(t, 30*time.Second, []string{"DISPLAY=:0"}, bin, "view", "--nats", url, "--room", "r"); !strings.Contains(p.Output(), "no OpenCV") {
		t.Errorf("window in the static build: %s", p.Output())
	}
	// Pattern publishing and headless viewing work.
	pub := hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, url, "r", "static")
	var stats hubtest.Stats
	view := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &stats}, bin, "view", "--nats", url, "--room", "r", "--headless", "--json")
	view.WaitFor(30*time.Second, func() bool { return stats.Frames("static") > 0 }, "the static headless viewer shows no frames")
	// Viewer, publisher and broker stop cleanly.
	for _, p := range []*hubtest.Proc{view, pub, brk} {
		if code := p.Stop(); code != 0 {
			t.Errorf("static %s: exit %d after SIGINT", p.Name, code)
		}
	}
}

// TestSignalsExitCleanly runs each long-running command as a real
// process and stops it with SIGINT or SIGTERM: presence says leaving where
// the command has any, and it exits 0 within 2 seconds.
func TestSignalsExitCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := hubtest.Vidhub(t)
	b := hubtest.Broker(t, broker.Config{})
	url := b.ClientURL()
	for _, tc := range []struct {
		name     string
		args     []string
		presence string // subject of its presence, if it has one
	}{
		{"publish", []string{"publish", "--nats", url, "--room", "sig", "--name", "pub", "--source", "pattern", "--size", "320x180"}, "vidhub.sig.pub.presence"},
		{"view", []string{"view", "--nats", url, "--room", "sig", "--name", "viewer", "--headless"}, "vidhub.sig.viewer.presence"},
		{"join", []string{"join", "--nats", url, "--room", "sig", "--name", "chat", "--source", "pattern", "--size", "320x180", "--headless"}, "vidhub.sig.chat.presence"},
		{"broker", []string{"broker", "--listen", "127.0.0.1:0"}, ""},
		{"web", []string{"web", "--listen", "127.0.0.1:0", "--nats", url}, ""},
		// Its own broker, publishers, web gateway and (no display) a
		// terminal viewer; its presence is on the broker it prints.
		{"demo", []string{"demo", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--room", "sig", "--size", "320x180"}, "vidhub.sig.alice.presence"},
	} {
		for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
			t.Run(tc.name+"/"+sig.String(), func(t *testing.T) {
				p := hubtest.Start(t, bin, tc.args...)
				brokerURL := url
				if tc.name == "demo" {
					brokerURL = p.WaitMatch(20*time.Second, brokerLine)[1]
				}
				var sub *nats.Subscription
				if tc.presence != "" {
					var err error
					if sub, err = hubtest.Connect(t, brokerURL).SubscribeSync(tc.presence); err != nil {
						t.Fatal(err)
					}
					if _, err := sub.NextMsg(20 * time.Second); err != nil {
						t.Fatalf("no presence: %v", err)
					}
				} else {
					p.WaitFor(20*time.Second, func() bool {
						out := p.Output()
						return strings.Contains(out, "ready") || strings.Contains(out, "listening")
					}, "%s did not start", tc.name)
				}
				start := time.Now()
				_ = p.Signal(sig)
				code, ok := p.Wait(10 * time.Second)
				if !ok || code != 0 {
					t.Fatalf("after %v: exit %d (exited: %v)", sig, code, ok)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("took %v to exit", d)
				}
				if sub == nil {
					return
				}
				leaving := false
				for !leaving {
					m, err := sub.NextMsg(time.Second)
					if err != nil {
						break
					}
					p, err := protocol.DecodePresence(m.Data)
					leaving = err == nil && p.Leaving
				}
				if !leaving {
					t.Error("no leaving presence")
				}
			})
		}
	}
}
