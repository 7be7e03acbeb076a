package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestRecordingRightsCommands: a command refused a recording's JetStream
// API by the access file fails at once (exit 1), saying which right the
// user lacks for which room and where to grant it.
func TestRecordingRightsCommands(t *testing.T) {
	f, err := access.Parse([]byte(`
users:
  - {name: rec, password: r, record: [lobby]}
  - {name: viewer, password: v, view: [lobby]}
`))
	if err != nil {
		t.Fatal(err)
	}
	url := hubtest.Broker(t, broker.Config{Access: f, StoreDir: t.TempDir()}).ClientURL()
	as := func(user string) func(string) string {
		return env("VIDHUB_USER", user, "VIDHUB_PASSWORD", user[:1])
	}
	if _, stderr, code := runCmd(t, 20*time.Second, as("rec"), "record", "--nats", url, "--room", "lobby"); code != 0 {
		t.Fatalf("rec recording lobby: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		user, right, room string
		args              []string
	}{
		{"rec", "record", "hall", []string{"record", "--room", "hall"}},
		{"rec", "record", "hall", []string{"record", "--room", "hall", "--stop"}},
		{"viewer", "record", "", []string{"record", "--list"}},
		{"viewer", "replay", "lobby", []string{"view", "--room", "lobby", "--from", "-3s", "--headless", "--json", "--for", "1s"}},
		{"viewer", "replay", "lobby", []string{"export", "--room", "lobby", "--name", "cam", "--from", "-3s", "--out", out + ".mp4"}},
		{"viewer", "replay", "lobby", []string{"snapshot", "--room", "lobby", "--name", "cam", "--out", out + ".jpg"}},
	} {
		start := time.Now()
		_, stderr, code := runCmd(t, 20*time.Second, as(tc.user), append(tc.args, "--nats", url)...)
		want := "user " + tc.user + " lacks the " + tc.right + " right for room " + tc.room + ": add the room to its " + tc.right + ": list in the access file (docs/security.md)"
		if tc.room == "" {
			want = "user " + tc.user + " lacks the " + tc.right + " right: give it " + tc.right + ": rooms in the access file"
		}
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: %q: exit %d, %s\nwant exit 1 saying %q", tc.user, tc.args, code, stderr, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: %q: the refusal took %v", tc.user, tc.args, d)
		}
	}
}
