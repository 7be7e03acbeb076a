//go:build cgo && !vidhub_lite

package mediatest

import (
	"image"
	"image/color"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// WriteClip writes n frames of w x h video (MJPEG in AVI, at 30 fps) into
// the test's temporary directory and returns its path. Each frame is a
// different colour, with a caption.
func WriteClip(t testing.TB, n, w, h int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.avi")
	vw, err := gocv.VideoWriterFile(path, "MJPG", 30, w, h, true)
	if err != nil {
		t.Fatal(err)
	}
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer func() { _ = m.Close() }()
	for i := range n {
		m.SetTo(gocv.NewScalar(float64(i*20), 100, 200, 0))
		gocv.PutText(&m, "frame", image.Pt(5, h/2), gocv.FontHersheySimplex, 0.5, color.RGBA{255, 255, 255, 0}, 1)
		if err := vw.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
