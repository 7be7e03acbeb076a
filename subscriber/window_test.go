//go:build cgo && !vidhub_lite

package subscriber

import (
	"image"
	"image/color"
	"testing"

	"github.com/vidhub/vidhub/internal/media"
)

// newCanvas is a new w x h canvas filled with c, closed when the test ends.
func newCanvas(t *testing.T, w, h int, c color.RGBA) media.Canvas {
	t.Helper()
	cv, err := media.NewCanvas(w, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cv.Close)
	cv.Fill(c)
	return cv
}

// bgrAt reads one pixel of a BGR canvas.
func bgrAt(p media.Picture, at image.Point) [3]uint8 {
	img := p.Image()
	i := at.Y*img.Stride + at.X*3
	return [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

func TestComposeGrid(t *testing.T) {
	canvas := newCanvas(t, 1280, 360, color.RGBA{})
	red := newCanvas(t, 320, 180, color.RGBA{R: 255})
	blue := newCanvas(t, 640, 360, color.RGBA{B: 255})

	composeGrid(canvas, []gridCell{{img: red, label: "red"}, {img: blue, label: "blue", self: true}, {label: "waiting"}}, "empty")
	// Three tiles: a 2x2 grid; red top left, blue top right, the third
	// (no picture yet) bottom left, background elsewhere.
	cells := gridCells(3, image.Rect(0, 0, 1280, 360), 4)
	center := func(r image.Rectangle) image.Point { return r.Min.Add(r.Size().Div(2)) }
	if got := bgrAt(canvas, center(cells[0]).Sub(image.Pt(0, 20))); got != [3]uint8{0, 0, 255} {
		t.Errorf("tile 0 centre is %v, want red", got)
	}
	if got := bgrAt(canvas, center(cells[1]).Sub(image.Pt(0, 20))); got != [3]uint8{255, 0, 0} {
		t.Errorf("tile 1 centre is %v, want blue", got)
	}
	bg := [3]uint8{background.B, background.G, background.R}
	if got := bgrAt(canvas, center(cells[2]).Sub(image.Pt(0, 20))); got != bg {
		t.Errorf("empty tile centre is %v, want background %v", got, bg)
	}
	if got := bgrAt(canvas, image.Pt(1279, 359)); got != bg {
		t.Errorf("uncovered corner is %v, want background", got)
	}
	// The tiles are letterboxed: red is 16:9 in a 638x178 cell, so the
	// sides of its cell are background.
	if got := bgrAt(canvas, image.Pt(cells[0].Min.X+2, center(cells[0]).Y)); got != bg {
		t.Errorf("letterbox bar is %v, want background", got)
	}
	// The own tile is framed in green.
	fit := fitRect(640, 360, cells[1])
	if got := bgrAt(canvas, image.Pt(center(fit).X, fit.Min.Y+1)); got != [3]uint8{selfColor.B, selfColor.G, selfColor.R} {
		t.Errorf("own tile frame is %v, want green", got)
	}
	// The label is drawn over the foot of the picture: dark box, light text.
	foot := image.Pt(fit.Min.X+10, fit.Max.Y-14)
	if got := bgrAt(canvas, foot); got == [3]uint8{255, 0, 0} {
		t.Errorf("no label at the foot of tile 1")
	}
}

func TestComposeGridEmpty(t *testing.T) {
	canvas := newCanvas(t, 320, 180, color.RGBA{})
	composeGrid(canvas, nil, "waiting for publishers")
	bg := [3]uint8{background.B, background.G, background.R}
	text := 0
	for y := 0; y < 180; y++ {
		for x := 0; x < 320; x++ {
			if bgrAt(canvas, image.Pt(x, y)) != bg {
				text++
			}
		}
	}
	if text == 0 {
		t.Error("empty room shows no message")
	}
}
