package subscriber

import (
	"errors"
	"image"
	"strings"
	"testing"
)

func TestGridCells(t *testing.T) {
	b := image.Rect(0, 0, 1280, 720)
	for _, tc := range []struct{ n, cols, rows int }{
		{1, 1, 1}, {2, 2, 1}, {3, 2, 2}, {4, 2, 2}, {5, 3, 2}, {6, 3, 2}, {7, 3, 3}, {9, 3, 3}, {10, 4, 3},
	} {
		cells := gridCells(tc.n, b, 4)
		if len(cells) != tc.n {
			t.Fatalf("n=%d: %d cells", tc.n, len(cells))
		}
		cols, rows := map[int]bool{}, map[int]bool{}
		for i, c := range cells {
			if !c.In(b) || c.Empty() {
				t.Errorf("n=%d: cell %d %v outside %v", tc.n, i, c, b)
			}
			for j := range i {
				if c.Overlaps(cells[j]) {
					t.Errorf("n=%d: cells %d and %d overlap", tc.n, i, j)
				}
			}
			cols[c.Min.X], rows[c.Min.Y] = true, true
		}
		if len(cols) != tc.cols || len(rows) != tc.rows {
			t.Errorf("n=%d: grid %dx%d, want %dx%d", tc.n, len(cols), len(rows), tc.cols, tc.rows)
		}
	}
	if gridCells(0, b, 4) != nil {
		t.Error("cells for no tiles")
	}
}

func TestFitRect(t *testing.T) {
	cell := image.Rect(100, 0, 740, 720) // 640x720
	for _, tc := range []struct {
		w, h int
		want image.Rectangle
	}{
		{1280, 720, image.Rect(100, 180, 740, 540)}, // wide: bars above and below
		{720, 1280, image.Rect(217, 0, 622, 720)},   // tall: bars left and right
		{640, 720, cell},
		{0, 0, cell},
	} {
		if got := fitRect(tc.w, tc.h, cell); got != tc.want {
			t.Errorf("fitRect(%d,%d) = %v, want %v", tc.w, tc.h, got, tc.want)
		}
	}
}

// TestNoWindowSaysWhatToDo: without a display (or, in the static build,
// without OpenCV) the error points to the other ways to watch.
func TestNoWindowSaysWhatToDo(t *testing.T) {
	err := WindowAvailable(func(string) string { return "" })
	if !errors.Is(err, ErrNoWindow) {
		t.Fatalf("no display: %v, want ErrNoWindow", err)
	}
	for _, want := range []string{"--headless", "vidhub web"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %s", err, want)
		}
	}
}
