package record_test

import (
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

// TestExportAcrossResize records a publisher that halves its size (its
// viewers report a path too slow even for its floor at half the frame
// rate): an export across the change ends at it and says where, and an
// export from there writes the rest at the new size.
func TestExportAcrossResize(t *testing.T) {
	if !media.H264Available() {
		hubtest.Unavailable(t, "this build has no MP4 writer (the full build has)")
	}
	hubtest.NeedTools(t, "ffprobe")
	url, nc := recording(t, record.Config{Room: "rs"})
	const bitrate = 400_000
	pub := hubtest.Publish(t, hubtest.Connect(t, url), publisher.Config{Room: "rs", Name: "cam", Source: "pattern", FPS: 30,
		Width: 640, Height: 360, Codec: protocol.CodecH264, KeyInt: time.Second, Bitrate: bitrate, MinBitrate: bitrate, Adapt: true})
	hubtest.WaitRecorded(t, nc, "rs", 2*time.Second)
	start := time.Now()
	// Two viewers say a third of the frames are lost, until the size
	// halves; then they fall silent, and without reports the size holds.
	congestion := hubtest.Congest(t, nc, "rs", "cam", 2)
	hubtest.Eventually(t, 15*time.Second, func() bool {
		a := pub.Stats().Adapt
		return len(a) > 0 && a[0].Width == 320
	}, "the publisher did not halve its size: %+v", hubtest.Lazy(func() any { return pub.Stats().Adapt }))
	congestion.Stop()
	// Two seconds at half the size (and half the frame rate).
	p0 := pub.Stats().Published
	hubtest.Eventually(t, 10*time.Second, func() bool { return pub.Stats().Published >= p0+30 }, "no frames published at half the size")

	dir := t.TempDir()
	out := filepath.Join(dir, "before.mp4")
	ex, err := record.Export(ctx(t), nc, record.ExportConfig{Room: "rs", Name: "cam", From: start.Add(-2 * time.Second), To: time.Now(), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	note := ex.ResizedNote()
	t.Logf("exported %+v: %s", ex, note)
	if ex.Width != 640 || ex.Height != 360 || ex.NextWidth != 320 || ex.NextHeight != 180 || ex.Resized.Before(start) || ex.Last.After(ex.Resized) {
		t.Errorf("exported across the change %+v: want 640x360 up to the change to 320x180", ex)
	}
	at := ex.Resized.UTC().Format(time.RFC3339Nano)
	if want := "changes size at " + at + " (640x360 → 320x180): exported up to there; export again with --from " + at + " for the rest"; !strings.Contains(note, want) {
		t.Errorf("the note says %q, want %q", note, want)
	}
	probe(t, out, 640, 360, ex.Frames)

	rest := filepath.Join(dir, "after.mp4")
	ex2, err := record.Export(ctx(t), nc, record.ExportConfig{Room: "rs", Name: "cam", From: ex.Resized, To: time.Now(), Out: rest})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exported the rest %+v", ex2)
	if ex2.Width != 320 || ex2.Height != 180 || !ex2.First.Equal(ex.Resized) || !ex2.Resized.IsZero() || ex2.Frames < 20 {
		t.Errorf("exported from the change %+v: want 320x180 from %s on", ex2, at)
	}
	probe(t, rest, 320, 180, ex2.Frames)
}

// probe checks with stock ffprobe that file holds frames of H.264 at w x h.
func probe(t *testing.T, file string, w, h, frames int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames", "-of", "default=noprint_wrappers=1", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	want := "codec_name=h264\nwidth=" + strconv.Itoa(w) + "\nheight=" + strconv.Itoa(h) + "\nnb_read_frames=" + strconv.Itoa(frames) + "\n"
	if string(out) != want {
		t.Errorf("ffprobe %s says\n%s\nwant\n%s", filepath.Base(file), out, want)
	}
}
