package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

var (
	clientLine  = regexp.MustCompile(`vidhub broker listening on (\S+)`)
	monitorLine = regexp.MustCompile(`NATS monitoring on (\S+)`)
	leafLine    = regexp.MustCompile(`leaf nodes link to (\S+)`)
)

// startBroker runs "vidhub broker args..." in-process until the test
// ends and returns what it printed once it printed want.
func startBroker(t *testing.T, getenv func(string) string, want *regexp.Regexp, args ...string) *hubtest.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr hubtest.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"broker"}, args...), getenv, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vidhub broker %q: %v", args, err)
		}
	})
	hubtest.Eventually(t, 10*time.Second, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("vidhub broker %q stopped: %v\n%s", args, err, stderr.String())
		default:
		}
		return want.MatchString(stdout.String())
	}, "vidhub broker %q printed no %q: %s", args, want, hubtest.Lazy(func() any { return stdout.String() + stderr.String() }))
	return &stdout
}

func match(t *testing.T, re *regexp.Regexp, s string) string {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in %q", re, s)
	}
	return m[1]
}

// TestBrokerLeafCommands is the CLI contract of issue 13: a hub (vidhub
// broker --listen --http --leaf-listen) and an edge (vidhub broker
// --listen --leaf, here from VIDHUB_LEAF); a publisher on the edge with
// --encode watched sends no video over the link until a hub viewer
// watches. The hub's /leafz shows the link and its bytes.
func TestBrokerLeafCommands(t *testing.T) {
	hubOut := startBroker(t, env(), leafLine, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0")
	hubURL := match(t, clientLine, hubOut.String())
	monitor := match(t, monitorLine, hubOut.String())
	leafURL := match(t, leafLine, hubOut.String())
	edgeOut := startBroker(t, env("VIDHUB_LEAF", leafURL), regexp.MustCompile(`leaf node of `), "--listen", "127.0.0.1:0")
	edgeURL := match(t, clientLine, edgeOut.String())

	leafz := func() (links int, bytes int64) {
		resp, err := http.Get(monitor + "/leafz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lz struct {
			Leafs []struct {
				InBytes  int64 `json:"in_bytes"`
				OutBytes int64 `json:"out_bytes"`
			} `json:"leafs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&lz); err != nil {
			t.Fatal(err)
		}
		for _, l := range lz.Leafs {
			bytes += l.InBytes + l.OutBytes
		}
		return len(lz.Leafs), bytes
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { n, _ := leafz(); return n == 1 },
		"the hub's /leafz shows no link from the edge")

	cfg := hubtest.Pattern("lobby", "cam")
	cfg.Encode = publisher.EncodeWatched
	pub := hubtest.Publish(t, hubtest.Connect(t, edgeURL), cfg)
	hubtest.Eventually(t, 10*time.Second, func() bool { return pub.Stats().Skipped >= 40 },
		"the publisher skipped no frames: %+v", hubtest.Lazy(func() any { return pub.Stats() }))
	if _, n := leafz(); n > 20_000 {
		t.Errorf("%d bytes crossed the link with nobody watching at the hub", n)
	}

	room, err := subscriber.Join(hubtest.Connect(t, hubURL), subscriber.Config{Room: "lobby", Layer: subscriber.LayerHi})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(room.Close)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		st := room.Stats()
		return len(st) == 1 && st[0].Frames >= 5
	}, "the hub viewer got no frames from the edge's publisher")
	if _, n := leafz(); n < 20_000 {
		t.Errorf("only %d bytes crossed the link with a hub viewer watching", n)
	}
}

func TestBrokerLeafUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--leaf", "hub:7422"}, 2, "nats:// or tls://"},
		{[]string{"--leaf", "nats://hub"}, 2, "has no port"},
		{[]string{"--leaf", "nats://hub:7422,ftp://hub2:7422"}, 2, "scheme"},
		{[]string{"--leaf-creds", "edge.creds"}, 2, "--leaf-creds and --leaf-ca go with --leaf"},
		{[]string{"--leaf-ca", "ca.pem"}, 2, "--leaf-creds and --leaf-ca go with --leaf"},
		{[]string{"--listen", "127.0.0.1:0", "--leaf-listen", "7422"}, 1, "leaf listen address"},
	} {
		_, stderr, code := runCmd(t, 5*time.Second, env(), append([]string{"broker"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("broker %q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
