//go:build cgo && !vidhub_lite

package media

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMP4 writes two seconds of H.264 into an MP4 file and has the stock
// ffprobe read it back: every frame, the size, the duration, and the
// keyframes where the encoder put them (nothing is decoded or encoded).
func TestMP4(t *testing.T) {
	needTools(t, "ffprobe")
	const w, h, n = 320, 180, 60
	aus := encodeAll(t, EncoderConfig{Width: w, Height: h, FPS: 30, KeyInt: 30}, n, scene)
	path := filepath.Join(t.TempDir(), "clip.mp4")
	m, err := CreateMP4(path, w, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Write(aus[1].Data, 0, false); err == nil {
		t.Error("an MP4 starting with a delta: no error")
	}
	base := 5 * time.Hour // any origin
	for i, au := range aus {
		if err := m.Write(au.Data, base+time.Duration(i)*time.Second/30, au.Key); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames,duration", "-of", "default=noprint_wrappers=1", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"codec_name=h264", "width=320", "height=180", "nb_read_frames=60", "duration=2.00"} {
		if !strings.Contains(got, want) {
			t.Errorf("ffprobe says\n%s\nwant %s", got, want)
		}
	}
	pk, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=flags", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if keys := strings.Count(string(pk), "K"); keys != 2 {
		t.Errorf("%d keyframes in the file, want 2 (frames 0 and 30)", keys)
	}
	if empty, _ := CreateMP4(filepath.Join(t.TempDir(), "none.mp4"), w, h); empty.Close() != nil {
		t.Error("closing a writer that wrote nothing failed")
	}
}
