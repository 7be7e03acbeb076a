package hubtest

import (
	"cmp"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Clip says what H264Clip makes: FFmpeg's testsrc2 pattern, Width x
// Height at 30 fps, Seconds long, with a keyframe every Keyint frames
// exactly. A zero field takes its default: 320x180, 2 seconds, a keyframe
// every 30 frames.
type Clip struct {
	Width, Height int
	Seconds       int
	Keyint        int
}

// H264Clip writes an H.264 MP4 with stock ffmpeg (libx264, no B-frames,
// yuv420p, no keyframes at scene cuts) into the test's temporary
// directory and returns its path. Without ffmpeg the test ends (see
// NeedTools).
func H264Clip(t testing.TB, c Clip) string {
	t.Helper()
	NeedTools(t, "ffmpeg")
	w, h, secs, keyint := cmp.Or(c.Width, 320), cmp.Or(c.Height, 180), cmp.Or(c.Seconds, 2), strconv.Itoa(cmp.Or(c.Keyint, 30))
	file := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size="+strconv.Itoa(w)+"x"+strconv.Itoa(h)+":rate=30",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-preset", "ultrafast", "-g", keyint, "-keyint_min", keyint,
		"-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return file
}
