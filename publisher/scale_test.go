package publisher

import (
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// fillRGBA paints every pixel of img with c.
func fillRGBA(img *image.RGBA, c color.RGBA) {
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// checkSolid fails unless every pixel of img is c.
func checkSolid(t *testing.T, img *image.RGBA, c color.RGBA) {
	t.Helper()
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			if got := img.RGBAAt(x, y); got != c {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, c)
			}
		}
	}
}

// subImage returns a w x h sub-image of a larger image, so that Rect.Min is
// non-zero and Stride is wider than the row, with the surrounding pixels
// set to a marker colour to catch reads and writes outside the rectangle.
func subImage(w, h int, marker color.RGBA) (sub, parent *image.RGBA) {
	parent = image.NewRGBA(image.Rect(-3, 5, w+8, h+11))
	fillRGBA(parent, marker)
	r := image.Rect(2, 7, 2+w, 7+h)
	return parent.SubImage(r).(*image.RGBA), parent
}

var scaleSizes = []struct{ sw, sh, dw, dh int }{
	{1280, 720, 320, 180},  // the lo layer
	{1280, 720, 1280, 720}, // identity
	{1921, 1081, 320, 180}, // non-integer shrink
	{1280, 720, 32, 18},    // 40x40 boxes: too big for the SWAR lanes
	{320, 180, 1280, 720},  // grow
	{17, 9, 100, 3},        // grow x, shrink y
	{100, 3, 17, 9},        // shrink x, grow y
	{1, 1, 5, 7},
	{5, 7, 1, 1},
	{3840, 2160, 1, 1}, // box too large for the reciprocal path
}

func TestScaleRGBASolid(t *testing.T) {
	c := color.RGBA{200, 100, 30, 255}
	for _, tc := range scaleSizes {
		src := image.NewRGBA(image.Rect(0, 0, tc.sw, tc.sh))
		fillRGBA(src, c)
		dst := image.NewRGBA(image.Rect(0, 0, tc.dw, tc.dh))
		scaleRGBA(dst, src)
		checkSolid(t, dst, c)
	}
}

func TestScaleRGBASubImages(t *testing.T) {
	c := color.RGBA{10, 20, 30, 255}
	marker := color.RGBA{255, 0, 255, 255}
	for _, tc := range scaleSizes {
		src, _ := subImage(tc.sw, tc.sh, marker)
		fillRGBA(src, c)
		dst, dstParent := subImage(tc.dw, tc.dh, marker)
		scaleRGBA(dst, src)
		// The marker must not leak in from outside src, and the pixels of
		// dst's parent outside dst must be untouched.
		checkSolid(t, dst, c)
		for y := dstParent.Rect.Min.Y; y < dstParent.Rect.Max.Y; y++ {
			for x := dstParent.Rect.Min.X; x < dstParent.Rect.Max.X; x++ {
				if !image.Pt(x, y).In(dst.Rect) && dstParent.RGBAAt(x, y) != marker {
					t.Fatalf("%v: wrote outside dst at (%d,%d)", tc, x, y)
				}
			}
		}
	}
}

func TestScaleRGBACheckerAverages(t *testing.T) {
	black := color.RGBA{0, 0, 0, 255}
	white := color.RGBA{255, 255, 255, 255}
	tests := []struct {
		sw, sh, dw, dh int
		want           color.RGBA
	}{
		// Every 2x2 (or larger even) box holds two of each: the mean,
		// 127.5 rounded half up.
		{2, 2, 1, 1, color.RGBA{128, 128, 128, 255}},
		{64, 36, 32, 18, color.RGBA{128, 128, 128, 255}},
		{1280, 720, 320, 180, color.RGBA{128, 128, 128, 255}},
	}
	for _, tc := range tests {
		src := image.NewRGBA(image.Rect(0, 0, tc.sw, tc.sh))
		for y := 0; y < tc.sh; y++ {
			for x := 0; x < tc.sw; x++ {
				if (x+y)%2 == 0 {
					src.SetRGBA(x, y, black)
				} else {
					src.SetRGBA(x, y, white)
				}
			}
		}
		dst := image.NewRGBA(image.Rect(0, 0, tc.dw, tc.dh))
		scaleRGBA(dst, src)
		checkSolid(t, dst, tc.want)
	}
}

// TestScaleRGBAExact compares against a direct, division-per-pixel
// implementation of the same mapping.
func TestScaleRGBAExact(t *testing.T) {
	for _, tc := range scaleSizes {
		if tc.sw*tc.sh > 1<<20 {
			continue // keep the reference affordable
		}
		src := image.NewRGBA(image.Rect(0, 0, tc.sw, tc.sh))
		for i := range src.Pix {
			src.Pix[i] = uint8(i*7 + i/13)
		}
		dst := image.NewRGBA(image.Rect(0, 0, tc.dw, tc.dh))
		scaleRGBA(dst, src)
		span := func(i, s, d int) (int, int) {
			if s >= d {
				return i * s / d, (i + 1) * s / d
			}
			a := (2*i + 1) * s / (2 * d)
			return a, a + 1
		}
		for dy := 0; dy < tc.dh; dy++ {
			y0, y1 := span(dy, tc.sh, tc.dh)
			for dx := 0; dx < tc.dw; dx++ {
				x0, x1 := span(dx, tc.sw, tc.dw)
				n := (x1 - x0) * (y1 - y0)
				for ch := 0; ch < 4; ch++ {
					sum := 0
					for y := y0; y < y1; y++ {
						for x := x0; x < x1; x++ {
							sum += int(src.Pix[src.PixOffset(x, y)+ch])
						}
					}
					want := uint8((sum + n/2) / n)
					if got := dst.Pix[dst.PixOffset(dx, dy)+ch]; got != want {
						t.Fatalf("%v: (%d,%d)[%d] = %d, want %d", tc, dx, dy, ch, got, want)
					}
				}
			}
		}
	}
}

func TestScaleRGBAGrowNearest(t *testing.T) {
	// A 2x1 image doubled must give two clean blocks, no blending.
	src := image.NewRGBA(image.Rect(0, 0, 2, 1))
	a, b := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}
	src.SetRGBA(0, 0, a)
	src.SetRGBA(1, 0, b)
	dst := image.NewRGBA(image.Rect(0, 0, 4, 2))
	scaleRGBA(dst, src)
	for y := 0; y < 2; y++ {
		for x := 0; x < 4; x++ {
			want := a
			if x >= 2 {
				want = b
			}
			if got := dst.RGBAAt(x, y); got != want {
				t.Errorf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestScaleRGBAEmpty(t *testing.T) {
	// Must not panic.
	scaleRGBA(image.NewRGBA(image.Rectangle{}), image.NewRGBA(image.Rect(0, 0, 4, 4)))
	scaleRGBA(image.NewRGBA(image.Rect(0, 0, 4, 4)), image.NewRGBA(image.Rectangle{}))
}

// AllocsPerRun counts every malloc in the process while it runs, not
// only the function's. After the package's other tests (brokers,
// publishers, OpenCV and FFmpeg threads) something in the process keeps
// allocating now and then, with no goroutine of theirs left: CI saw 2
// strays in 10 runs, and later one per call over 100 runs of scaleRGBA
// (150 ms a call under -race). So each pin runs in a process of its own
// (inCleanProcess), where only the function measured allocates, and takes
// the least of allocRounds rounds besides.
const (
	allocRuns   = 25
	allocRounds = 4
)

// cleanProcessEnv names the test a child process was started to run.
const cleanProcessEnv = "VIDHUB_TEST_CLEAN_PROCESS"

// inCleanProcess runs the calling test again, alone, in a fresh test
// process, and reports whether this is that process (the caller then
// measures). In the parent it fails t with the child's output if the child
// failed, and returns false.
func inCleanProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(cleanProcessEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), cleanProcessEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Errorf("%s in a process of its own: %v\n%s", t.Name(), err, out)
	}
	return false
}

func allocsPerCall(f func()) float64 {
	least := math.Inf(1)
	for range allocRounds {
		least = min(least, testing.AllocsPerRun(allocRuns, f))
	}
	return least
}

func TestScaleRGBANoAllocs(t *testing.T) {
	if !inCleanProcess(t) {
		return
	}
	src := image.NewRGBA(image.Rect(0, 0, 1280, 720))
	dst := image.NewRGBA(image.Rect(0, 0, 320, 180))
	if a := allocsPerCall(func() { scaleRGBA(dst, src) }); a != 0 {
		t.Errorf("%v allocs per scaleRGBA, want 0", a)
	}
}

func BenchmarkScaleRGBA720pToLo(b *testing.B) {
	src := newPatternRenderer("alice", 1280, 720).Render(1, patternTestTime)
	dst := image.NewRGBA(image.Rect(0, 0, 320, 180))
	b.ReportAllocs()
	for b.Loop() {
		scaleRGBA(dst, src)
	}
}
