package record_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
)

// TestExport records an H.264 publisher and exports two seconds of it:
// stock ffprobe reads an MP4 that starts at a keyframe at or before the
// span and holds every frame of it, as recorded.
func TestExport(t *testing.T) {
	if !media.H264Available() {
		hubtest.Unavailable(t, "this build has no MP4 writer (the full build has)")
	}
	hubtest.NeedTools(t, "ffprobe")
	url, nc := recording(t, record.Config{Room: "ex"})
	hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: "ex", Name: "cam", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: time.Second})
	hubtest.WaitRecorded(t, nc, "ex", 4*time.Second)
	now := time.Now()
	out := filepath.Join(t.TempDir(), "clip.mp4")
	ex, err := record.Export(ctx(t), nc, record.ExportConfig{Room: "ex", Name: "cam", From: now.Add(-3 * time.Second), To: now.Add(-time.Second), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exported %+v", ex)
	// Two seconds at 30 fps, and the lead-in from the keyframe before
	// (keyframes a second apart): 60 to 90 frames.
	if ex.Frames < 55 || ex.Frames > 95 || ex.Keyframes < 2 || ex.Skipped != 0 || ex.Width != 320 || ex.First.After(now.Add(-3*time.Second)) {
		t.Errorf("exported %+v: want 60 to 90 frames from a keyframe at or before the span", ex)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames", "-of", "default=noprint_wrappers=1", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	want := "codec_name=h264\nwidth=320\nheight=180\nnb_read_frames=" + strconv.Itoa(ex.Frames) + "\n"
	if string(probe) != want {
		t.Errorf("ffprobe says\n%s\nwant\n%s", probe, want)
	}
	first, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=flags", "-read_intervals", "%+#1", "-of", "csv=p=0", out).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(first), "K") {
		t.Errorf("the file's first packet is not a keyframe: %q %v", first, err)
	}

	for _, c := range []record.ExportConfig{
		{Room: "ex", Name: "cam", Layer: protocol.Hi, From: now.Add(-3 * time.Second), To: now, Out: out},
		{Room: "ex", Name: "cam", From: now, To: now.Add(-time.Second), Out: out},
		{Room: "ex", Name: "a.b", From: now.Add(-3 * time.Second), To: now, Out: out},
		{Room: "ex", Name: "cam", From: now.Add(-3 * time.Second), To: now},
	} {
		if _, err := record.Export(ctx(t), nc, c); !errors.Is(err, record.ErrBadConfig) {
			t.Errorf("Export(%+v): %v, want ErrBadConfig", c, err)
		}
	}
	none := filepath.Join(t.TempDir(), "none.mp4")
	if _, err := record.Export(ctx(t), nc, record.ExportConfig{Room: "ex", Name: "nobody", From: now.Add(-3 * time.Second), To: now, Out: none}); !errors.Is(err, record.ErrNothing) {
		t.Errorf("exporting a participant never recorded: %v, want ErrNothing", err)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("an export of nothing left a file: %v", err)
	}
}
