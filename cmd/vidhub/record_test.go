package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
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

// TestViewFrom replays a recorded room headless, the way the CLI
// contract reads: a 3 s rewind reports about 3000 ms of latency, counted
// from each frame's original capture time, at the recording's frame rate.
func TestViewFrom(t *testing.T) {
	if !subscriber.DecodesH264() {
		hubtest.Unavailable(t, "this build cannot decode H.264")
	}
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	url := b.ClientURL()
	if _, stderr, code := runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--room", "past"); code != 0 {
		t.Fatalf("record: exit %d: %s", code, stderr)
	}
	hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: "past", Name: "cam", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: time.Second})
	hubtest.WaitRecorded(t, hubtest.Connect(t, url), "past", 4*time.Second)
	stdout, stderr, code := runCmd(t, 30*time.Second, env(), "view", "--nats", url, "--room", "past", "--from", "-3s", "--headless", "--json", "--for", "3500ms")
	if code != 0 {
		t.Fatalf("view --from: exit %d: %s", code, stderr)
	}
	var last struct {
		Participant string  `json:"participant"`
		Codec       string  `json:"codec"`
		FPS         float64 `json:"fps"`
		Latency     float64 `json:"latency_ms_p50"`
		Corrupt     int     `json:"corrupt_shown"`
	}
	for line := range strings.Lines(stdout) {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
	}
	if last.Participant != "cam" || !strings.HasPrefix(last.Codec, "avc1.") || last.FPS < 10 || last.Corrupt != 0 ||
		last.Latency < 2000 || last.Latency > 6000 {
		t.Errorf("replay stats %+v, want cam in H.264 at about 30 fps and about 3000 ms:\n%s", last, stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "5m"}, "negative"},
		{[]string{"--from", "yesterday"}, "RFC 3339"},
		{[]string{"--from", "2099-01-01T00:00:00Z"}, "not in the past"},
		{[]string{"--speed", "2"}, "--speed needs --from"},
		{[]string{"--from", "-1m", "--speed", "0"}, "--speed"},
	} {
		_, stderr, code := runCmd(t, 20*time.Second, env(), append([]string{"view", "--nats", url, "--room", "past", "--headless"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("view %v: exit %d, want 2 with %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}
}

// TestExportCommand exports a span of a recording the way the CLI
// contract reads, takes a snapshot from it, and checks what mistakes say.
func TestExportCommand(t *testing.T) {
	if !subscriber.DecodesH264() {
		hubtest.Unavailable(t, "this build has no MP4 writer")
	}
	hubtest.NeedTools(t, "ffprobe")
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	url := b.ClientURL()
	if _, stderr, code := runCmd(t, 20*time.Second, env(), "record", "--nats", url, "--room", "r"); code != 0 {
		t.Fatalf("record: exit %d: %s", code, stderr)
	}
	hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: "r", Name: "p", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: time.Second})
	hubtest.WaitRecorded(t, hubtest.Connect(t, url), "r", 8*time.Second)
	out := filepath.Join(t.TempDir(), "F.mp4")
	stdout, stderr, code := runCmd(t, 30*time.Second, env(), "export", "--nats", url, "--room", "r", "--name", "p", "--from", "-7s", "--to", "-2s", "--out", out)
	if code != 0 || !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stdout, "not re-encoded") {
		t.Fatalf("export: exit %d\n%s%s", code, stdout, stderr)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	var frames int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(probe)), "h264,%d", &frames); err != nil || frames < 140 || frames > 190 {
		t.Errorf("ffprobe reads %q: want h264 with 150 to 180 frames (5 s at 30 fps, from the keyframe before)", probe)
	}
	still := filepath.Join(t.TempDir(), "still.jpg")
	stdout, stderr, code = runCmd(t, 30*time.Second, env(), "snapshot", "--nats", url, "--room", "r", "--name", "p", "--at", "-3s", "--out", still)
	if code != 0 || !strings.Contains(stdout, "wrote "+still) || !strings.Contains(stdout, "320x180 from h264") {
		t.Errorf("snapshot: exit %d\n%s%s", code, stdout, stderr)
	}
	if b, err := os.ReadFile(still); err != nil || len(b) < 1000 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Errorf("snapshot file: %d bytes, %v: want a JPEG", len(b), err)
	}
	for _, args := range [][]string{{"--room", "r", "--name", "p"}, {"--room", "r", "--name", "p", "--out", still, "--at", "soon"}} {
		if _, stderr, code := runCmd(t, 20*time.Second, env(), append([]string{"snapshot", "--nats", url}, args...)...); code != 2 {
			t.Errorf("snapshot %v: exit %d, want 2:\n%s", args, code, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--room", "r", "--name", "p", "--from", "-7s"}, 2, "required"},
		{[]string{"--room", "r", "--name", "p", "--from", "-7s", "--to", "-9s", "--out", out}, 1, "--to must come after --from"},
		{[]string{"--room", "r", "--name", "p", "--from", "-7s", "--layer", "hi", "--out", out}, 1, "JPEG"},
		{[]string{"--room", "r", "--name", "nobody", "--from", "-7s", "--out", out}, 1, "nothing"},
		{[]string{"--room", "none", "--name", "p", "--from", "-7s", "--out", out}, 1, "not being recorded"},
	} {
		_, stderr, code := runCmd(t, 30*time.Second, env(), append([]string{"export", "--nats", url}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("export %v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
}
