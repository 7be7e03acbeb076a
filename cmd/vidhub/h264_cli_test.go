//go:build cgo && !vidhub_lite

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestHeadlessJSONH264 checks the CLI contract of H.264: "vidhub publish"
// sends H.264 by default in the full build, and "vidhub view --headless
// --json" reports, per publisher, the codec, the first decoded frame, the
// keyframes and decode errors, and corrupt_shown.
func TestHeadlessJSONH264(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	pub := hubtest.StartProc(t, hubtest.ProcConfig{}, hubtest.Vidhub(t), "publish", "--nats", b.ClientURL(),
		"--room", "lobby", "--name", "alice", "--source", "pattern", "--size", "320x180", "--fps", "30")
	pub.WaitOutput(30*time.Second, "h264")
	stdout, stderr, code := runCmd(t, 30*time.Second, env("NATS_URL", b.ClientURL()), "view", "--room", "lobby", "--layer", "hi", "--headless", "--json", "--for", "3500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var last map[string]any
	for line := range strings.Lines(stdout) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		for _, k := range []string{"participant", "fps", "latency_ms_p50", "codec", "first_frame_ms", "keyframes", "decode_errors", "corrupt_shown"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", line, k)
			}
		}
		last = m
	}
	if last == nil {
		t.Fatalf("no stats lines:\n%s", stdout)
	}
	codec, _ := last["codec"].(string)
	if last["participant"] != "alice" || !strings.HasPrefix(codec, "avc1.") || last["layer"] != "h264" ||
		last["first_frame_ms"].(float64) < 0 || last["keyframes"].(float64) < 1 || last["corrupt_shown"].(float64) != 0 ||
		last["fps"].(float64) < 5 {
		t.Errorf("last line %v: want alice decoding avc1 on h264, a first frame, a keyframe, no corruption", last)
	}
}
