package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestRecordCommand starts, lists and stops a recording the way a user
// does, and checks what each mistake says and its exit code.
func TestRecordCommand(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	url := b.ClientURL()
	stdout, stderr, code := runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--room", "lobby", "--max-age", "1h", "--max-bytes", "2GB")
	if code != 0 || !strings.Contains(stdout, "recording room lobby (h264,h264lo, and presence) as stream VIDHUB_lobby: keeps 1h0m0s or 2 GB") {
		t.Errorf("record: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--list", "--json")
	var list []struct {
		Room     string   `json:"room"`
		Stream   string   `json:"stream"`
		Layers   []string `json:"layers"`
		MaxBytes int64    `json:"max_bytes"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 1 || list[0].Room != "lobby" ||
		list[0].Stream != "VIDHUB_lobby" || strings.Join(list[0].Layers, ",") != "h264,h264lo" || list[0].MaxBytes != 2<<30 {
		t.Errorf("record --list --json: exit %d %+v\n%s%s", code, list, stdout, stderr)
	}
	if stdout, _, _ = runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--list"); !strings.Contains(stdout, "lobby") || !strings.Contains(stdout, "h264,h264lo") {
		t.Errorf("record --list:\n%s", stdout)
	}
	if stdout, stderr, code = runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--room", "lobby", "--stop"); code != 0 || !strings.Contains(stdout, "stopped recording room lobby") {
		t.Errorf("record --stop: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout, _, _ = runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--list"); !strings.Contains(stdout, "no recordings") {
		t.Errorf("record --list after --stop:\n%s", stdout)
	}

	plain := hubtest.Broker(t, broker.Config{})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--nats", plain.ClientURL(), "--room", "lobby"}, 1, "vidhub broker --store DIR"},
		{[]string{"--nats", url, "--room", "lobby", "--stop"}, 1, "not being recorded"},
		{[]string{"--nats", url}, 2, "--room is required"},
		{[]string{"--nats", url, "--room", "a.b"}, 2, "room name"},
		{[]string{"--nats", url, "--room", "r", "--layers", "h265"}, 2, "--layers"},
		{[]string{"--nats", url, "--room", "r", "--max-bytes", "lots"}, 2, "not a size"},
		{[]string{"--nats", url, "--list", "--stop"}, 2, "choose one"},
	} {
		_, stderr, code := runCmd(t, 20*time.Second, env(), append([]string{"record"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("record %v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
}
