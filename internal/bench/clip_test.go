package bench

import (
	"image"
	"math"
	"testing"
)

// TestClipFramesEquallySharp films the clip without sensor noise and
// checks what a camera's frames share: each is as sharp as the next
// (its mean squared gradient within 15% of the others', where bilinear
// sampling of the scene differs five times over), each is the scene moved by the pan
// (frame 10 at a whole-pixel offset from frame 0 matches it, shifted,
// to within a level), and the same frame comes out the same every time.
func TestClipFramesEquallySharp(t *testing.T) {
	c := newClip(320, 180, 40, 30)
	c.sigma = 0
	clear(c.noise)
	c.dx, c.dy = 0.25, 0.1 // frame 10 is 2.5 px right and 1 px down; 20 is 5 and 2
	// detail is the mean squared luma gradient of frame i: how sharp it is.
	detail := func(i int) (float64, *image.RGBA) {
		img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
		c.frame(i, img)
		y := lumaOf(img, nil)
		var e float64
		for yy := range c.h - 1 {
			for x := range c.w - 1 {
				k := yy*c.w + x
				gx, gy := y[k+1]-y[k], y[k+c.w]-y[k]
				e += float64(gx*gx + gy*gy)
			}
		}
		return e / float64((c.w-1)*(c.h-1)), img
	}
	lo, hi := math.Inf(1), 0.0
	for i := range 9 { // offsets 0 to 2 px across: every quarter pixel
		e, _ := detail(i)
		lo, hi = min(lo, e), max(hi, e)
	}
	if hi > 1.15*lo {
		t.Errorf("detail from %.1f to %.1f over sub-pixel offsets: frames are not equally sharp", lo, hi)
	}
	_, f0 := detail(0)
	_, f20 := detail(20)
	var worst int
	for y := range c.h - 2 {
		for x := range c.w - 5 {
			for ch := range 3 {
				d := int(f0.Pix[(y+2)*f0.Stride+(x+5)*4+ch]) - int(f20.Pix[y*f20.Stride+x*4+ch])
				worst = max(worst, d, -d)
			}
		}
	}
	if worst > 1 {
		t.Errorf("frame 20 (5 px right, 2 px down) differs from frame 0 moved back by up to %d levels", worst)
	}
	_, again := detail(0)
	for i := range f0.Pix {
		if f0.Pix[i] != again.Pix[i] {
			t.Fatalf("frame 0 made twice differs at byte %d", i)
		}
	}
}
