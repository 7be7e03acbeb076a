package bench

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// clip is a camera-like test clip made here, lossless: a still scene
// richer than the pattern publisher's (1/f noise like a photograph's
// texture, soft-edged shapes, small and large text, uneven lighting),
// panned slowly by a fraction of a pixel per frame, with mild sensor noise
// drawn afresh for every frame. Frame i is the same in every call, so the
// clip needs no storage: each pass over it makes its frames again.
//
// It is filmed the way a camera films: the scene is first blurred by a
// fixed amount (a camera's lens and the low-pass filter before its
// sensor; sigma clipOptics), and each frame samples it at its sub-pixel
// offset with a windowed sinc (Lanczos, clipTaps taps), which moves a
// picture so blurred without blurring it much again. Every frame is then
// about as sharp as the next (mean squared gradient within 10%), as a
// camera's are. Sampling the scene with bilinear interpolation instead,
// as this clip first did, blurs a frame by how far its offset is from a
// whole pixel (not at all at 0, most at a half): the mean squared
// gradient of its frames differed five times over, which no camera does.
type clip struct {
	w, h   int
	frames int
	fps    float64
	scene  *image.RGBA
	dx, dy float64 // pan, pixels per frame
	sigma  float64 // sensor noise, standard deviation in 8-bit levels
	noise  []int8
}

// Clip parameters: a slow diagonal pan, the optics' blur and mild noise.
const (
	clipPanX   = 1.3
	clipPanY   = 0.45
	clipNoise  = 2.0
	clipOptics = 0.7 // Gaussian sigma, pixels
	clipSeed   = 20261124
	clipTaps   = 6 // Lanczos-3: three taps each side
	clipMargin = clipTaps / 2
)

func newClip(w, h, frames int, fps float64) *clip {
	c := &clip{w: w, h: h, frames: frames, fps: fps, dx: clipPanX, dy: clipPanY, sigma: clipNoise}
	sw := w + int(math.Ceil(c.dx*float64(frames))) + 2*clipMargin + 1
	sh := h + int(math.Ceil(c.dy*float64(frames))) + 2*clipMargin + 1
	c.scene = makeScene(sw, sh)
	blurScene(c.scene, clipOptics)
	c.noise = noiseTable(c.sigma)
	return c
}

// describe says what the clip is, for the report.
func (c *clip) describe() string {
	return fmt.Sprintf("%dx%d, %d frames at %g fps, generated: 1/f value noise, %d soft-edged shapes, text at 1x and 3x, uneven lighting; filmed through optics that blur by a Gaussian of sigma %.1f px, panned %.2f px right and %.2f px down per frame (windowed-sinc sampling: every frame about as sharp as the next), Gaussian sensor noise sigma %.0f per channel, new in every frame",
		c.w, c.h, c.frames, c.fps, sceneShapes, clipOptics, c.dx, c.dy, c.sigma)
}

// sceneShapes is how many shapes the scene holds.
const sceneShapes = 60

// makeScene draws the still scene.
func makeScene(w, h int) *image.RGBA {
	rng := rand.New(rand.NewPCG(clipSeed, 1))
	// Luminance: octaves of value noise whose amplitude falls with their
	// frequency (about 1/f, like natural images); colour: a few broad
	// octaves per chroma axis.
	lum := make([]float32, w*h)
	cb := make([]float32, w*h)
	cr := make([]float32, w*h)
	addNoise(lum, w, h, rng, []int{256, 128, 64, 32, 16, 8, 4, 2}, 1.0)
	addNoise(cb, w, h, rng, []int{384, 192, 96}, 0.55)
	addNoise(cr, w, h, rng, []int{384, 192, 96}, 0.55)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)*0.45, float64(h)*0.4
	diag := math.Hypot(float64(w), float64(h))
	for y := range h {
		for x := range w {
			i := y*w + x
			// Light falls off from a point left of centre, as a lamp's.
			light := 1.15 - 0.75*math.Hypot(float64(x)-cx, float64(y)-cy)/diag
			l := (110 + 70*float64(lum[i])) * light
			u, v := 60*float64(cb[i]), 60*float64(cr[i])
			p := img.Pix[i*4 : i*4+4 : i*4+4]
			p[0] = clamp8(l + 1.402*v)
			p[1] = clamp8(l - 0.344*u - 0.714*v)
			p[2] = clamp8(l + 1.772*u)
			p[3] = 255
		}
	}
	for range sceneShapes {
		col := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
		alpha := 0.5 + 0.5*rng.Float64()
		x0, y0 := rng.Float64()*float64(w), rng.Float64()*float64(h)
		size := 8 + rng.Float64()*float64(min(w, h))/6
		if rng.IntN(2) == 0 {
			blendDisc(img, x0, y0, size, col, alpha)
		} else {
			blendRect(img, x0, y0, size*(0.5+rng.Float64()), size*(0.3+rng.Float64()), col, alpha)
		}
	}
	drawText(img, rng)
	return img
}

// addNoise adds value noise at each wavelength (pixels), amplitude
// proportional to wavelength^0.9, normalised to about -1..1 in all.
func addNoise(dst []float32, w, h int, rng *rand.Rand, waves []int, gain float64) {
	var total float64
	for _, s := range waves {
		total += math.Pow(float64(s), 0.9)
	}
	for _, s := range waves {
		amp := float32(gain * math.Pow(float64(s), 0.9) / total)
		gw, gh := w/s+2, h/s+2
		grid := make([]float32, gw*gh)
		for i := range grid {
			grid[i] = float32(rng.Float64()*2 - 1)
		}
		inv := 1 / float32(s)
		for y := range h {
			fy := float32(y) * inv
			gy := int(fy)
			ty := smooth(fy - float32(gy))
			for x := range w {
				fx := float32(x) * inv
				gx := int(fx)
				tx := smooth(fx - float32(gx))
				a := grid[gy*gw+gx] + (grid[gy*gw+gx+1]-grid[gy*gw+gx])*tx
				b := grid[(gy+1)*gw+gx] + (grid[(gy+1)*gw+gx+1]-grid[(gy+1)*gw+gx])*tx
				dst[y*w+x] += amp * (a + (b-a)*ty)
			}
		}
	}
}

func smooth(t float32) float32 { return t * t * (3 - 2*t) }

func clamp8(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// blendDisc draws a disc with an anti-aliased edge.
func blendDisc(img *image.RGBA, cx, cy, r float64, c color.RGBA, alpha float64) {
	b := img.Bounds().Intersect(image.Rect(int(cx-r)-1, int(cy-r)-1, int(cx+r)+2, int(cy+r)+2))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			cov := r - math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy) + 0.5
			blend(img, x, y, c, alpha*math.Min(1, math.Max(0, cov)))
		}
	}
}

// blendRect draws a rectangle with a vertical gradient and soft edges.
func blendRect(img *image.RGBA, x0, y0, w, h float64, c color.RGBA, alpha float64) {
	b := img.Bounds().Intersect(image.Rect(int(x0)-1, int(y0)-1, int(x0+w)+2, int(y0+h)+2))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		cy := math.Min(1, math.Max(0, math.Min(float64(y)+1-y0, y0+h-float64(y))))
		shade := 0.7 + 0.3*(float64(y)-y0)/h
		g := color.RGBA{clamp8(float64(c.R) * shade), clamp8(float64(c.G) * shade), clamp8(float64(c.B) * shade), 255}
		for x := b.Min.X; x < b.Max.X; x++ {
			cx := math.Min(1, math.Max(0, math.Min(float64(x)+1-x0, x0+w-float64(x))))
			blend(img, x, y, g, alpha*cx*cy)
		}
	}
}

func blend(img *image.RGBA, x, y int, c color.RGBA, a float64) {
	if a <= 0 {
		return
	}
	p := img.Pix[img.PixOffset(x, y):]
	p[0] = uint8(float64(p[0])*(1-a) + float64(c.R)*a + 0.5)
	p[1] = uint8(float64(p[1])*(1-a) + float64(c.G)*a + 0.5)
	p[2] = uint8(float64(p[2])*(1-a) + float64(c.B)*a + 0.5)
}

// drawText writes lines of small text, and a few in large type scaled up
// with a smooth filter, like signs and labels in a room.
func drawText(img *image.RGBA, rng *rand.Rand) {
	b := img.Bounds()
	lines := []string{
		"vidhub camera-like test clip: the quick brown fox jumps over the lazy dog 0123456789",
		"SSIM on luma, 11x11 Gaussian windows; JPEG q80 against H.264 at a tenth of its bitrate",
		"Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!",
	}
	d := font.Drawer{Dst: img, Face: basicfont.Face7x13}
	for i := range 24 {
		shade := uint8(rng.IntN(2) * 255)
		d.Src = image.NewUniform(color.RGBA{shade, shade, shade, 255})
		d.Dot = fixed.P(rng.IntN(max(1, b.Dx()-400)), 20+rng.IntN(max(1, b.Dy()-40)))
		d.DrawString(lines[i%len(lines)])
	}
	for i := range 3 {
		small := image.NewRGBA(image.Rect(0, 0, 260, 16))
		sd := font.Drawer{Dst: small, Face: basicfont.Face7x13, Src: image.NewUniform(color.RGBA{240, 230, 200, 255}), Dot: fixed.P(2, 12)}
		sd.DrawString([]string{"ROOM 42 - LIVE", "EXIT ->", "Debian 12 / 2 cores"}[i])
		x, y := rng.IntN(max(1, b.Dx()-800)), rng.IntN(max(1, b.Dy()-60))
		draw.CatmullRom.Scale(img, image.Rect(x, y, x+780, y+48), small, small.Bounds(), draw.Over, nil)
	}
}

// frame makes frame i of the clip in dst (w x h).
func (c *clip) frame(i int, dst *image.RGBA) {
	ox, oy := c.dx*float64(i), c.dy*float64(i)
	ix, iy := int(ox), int(oy)
	// The fraction is the same for every pixel of a frame, so are the
	// weights: in 1/4096ths, horizontal then vertical.
	wx, wy := lanczos(ox-float64(ix)), lanczos(oy-float64(iy))
	// Each frame reads the noise table from its own random place.
	start := rand.New(rand.NewPCG(clipSeed, uint64(i)+2)).IntN(len(c.noise))
	src, sstride := c.scene.Pix, c.scene.Stride
	mask := len(c.noise) - 1
	parallelRows(c.h, func(y0, y1 int) {
		// Rows y0..y1 need scene rows y0..y1+clipTaps-1, resampled
		// across first (kept in 1/4096ths).
		rows := make([]int32, (y1-y0+clipTaps-1)*c.w*3)
		for r := range y1 - y0 + clipTaps - 1 {
			in := src[(iy+y0+r)*sstride+ix*4:]
			out := rows[r*c.w*3 : (r+1)*c.w*3]
			for x := range c.w {
				for ch := range 3 {
					var v int32
					for k, wk := range wx {
						v += int32(in[(x+k)*4+ch]) * wk
					}
					out[x*3+ch] = v
				}
			}
		}
		for y := y0; y < y1; y++ {
			out := dst.Pix[y*dst.Stride:]
			k0 := start + y*c.w*3
			base := (y - y0) * c.w * 3
			for x := range c.w {
				for ch := range 3 {
					j := base + x*3 + ch
					var v int64
					for k, wk := range wy {
						v += int64(rows[j+k*c.w*3]) * int64(wk)
					}
					px := int32((v + 1<<23) >> 24)
					px += int32(c.noise[(k0+x*3+ch)&mask])
					out[x*4+ch] = uint8(min(255, max(0, px)))
				}
				out[x*4+3] = 255
			}
		}
	})
}

// lanczos returns the Lanczos-3 weights, in 1/4096ths summing to 4096,
// of the clipTaps scene pixels around a sample frac (0 <= frac < 1) of a
// pixel past the third of them.
func lanczos(frac float64) [clipTaps]int32 {
	const a = clipTaps / 2
	var f [clipTaps]float64
	var sum float64
	for k := range clipTaps {
		x := frac - float64(k-(a-1))
		v := 1.0
		if x != 0 {
			px := math.Pi * x
			v = a * math.Sin(px) * math.Sin(px/a) / (px * px)
		}
		f[k] = v
		sum += v
	}
	var w [clipTaps]int32
	var total int32
	for k := range w {
		w[k] = int32(math.Round(f[k] / sum * 4096))
		total += w[k]
	}
	w[a-1] += 4096 - total // rounding: to the nearest pixel's weight
	return w
}

// blurScene blurs img in place by a Gaussian of standard deviation sigma
// pixels (the camera's optics), across then down; edges repeat.
func blurScene(img *image.RGBA, sigma float64) {
	r := int(math.Ceil(3 * sigma))
	kern := make([]float32, 2*r+1)
	var sum float32
	for k := range kern {
		d := float64(k - r)
		kern[k] = float32(math.Exp(-d * d / (2 * sigma * sigma)))
		sum += kern[k]
	}
	for k := range kern {
		kern[k] /= sum
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	tmp := make([]float32, w*h*3)
	parallelRows(h, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			row := img.Pix[y*img.Stride:]
			for x := range w {
				for ch := range 3 {
					var v float32
					for k, kv := range kern {
						xx := min(w-1, max(0, x+k-r))
						v += kv * float32(row[xx*4+ch])
					}
					tmp[(y*w+x)*3+ch] = v
				}
			}
		}
	})
	parallelRows(h, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			out := img.Pix[y*img.Stride:]
			for x := range w {
				for ch := range 3 {
					var v float32
					for k, kv := range kern {
						yy := min(h-1, max(0, y+k-r))
						v += kv * tmp[(yy*w+x)*3+ch]
					}
					out[x*4+ch] = clamp8(float64(v))
				}
			}
		}
	})
}

// noiseTable is sensor noise: rounded Gaussian samples of standard
// deviation sigma, more than a frame's worth, so that frames starting at
// random places in it look unrelated to each other.
func noiseTable(sigma float64) []int8 {
	rng := rand.New(rand.NewPCG(clipSeed, 3))
	t := make([]int8, 1<<22)
	for i := range t {
		t[i] = int8(max(-127, min(127, math.Round(rng.NormFloat64()*sigma))))
	}
	return t
}

// parallelRows runs fn over bands of rows [0, h) on every core.
func parallelRows(h int, fn func(y0, y1 int)) {
	n := min(runtime.GOMAXPROCS(0), max(1, h/16))
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { fn(h*k/n, h*(k+1)/n) })
	}
	wg.Wait()
}

// lumaOf returns the BT.601 luma (full range) of an RGBA image.
func lumaOf(img *image.RGBA, dst []float32) []float32 {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	if cap(dst) < w*h {
		dst = make([]float32, w*h)
	}
	dst = dst[:w*h]
	for y := range h {
		p := img.Pix[y*img.Stride:]
		for x := range w {
			dst[y*w+x] = 0.299*float32(p[x*4]) + 0.587*float32(p[x*4+1]) + 0.114*float32(p[x*4+2])
		}
	}
	return dst
}

// SSIM as x264 and FFmpeg compute it: 8x8 windows stepped by 4 pixels
// (sums of 4x4 blocks), with Wang et al.'s constants for 8-bit samples
// and the sample (n-1) variance.
const (
	ssimC1 = (0.01 * 255) * (0.01 * 255)
	ssimC2 = (0.03 * 255) * (0.03 * 255)
)

// ssim is the mean SSIM of two luma planes of w x h over every 8x8
// window at a 4-pixel step that fits inside the picture.
func ssim(a, b []float32, w, h int) float64 {
	bw, bh := w/4, h/4
	if bw < 2 || bh < 2 || len(a) < w*h || len(b) < w*h {
		return 0
	}
	// Sums of each 4x4 block: a, b, a*a + b*b, a*b.
	blocks := make([][4]float64, bw*bh)
	parallelRows(bh, func(y0, y1 int) {
		for by := y0; by < y1; by++ {
			for bx := range bw {
				var s [4]float64
				for y := by * 4; y < by*4+4; y++ {
					for x := bx * 4; x < bx*4+4; x++ {
						va, vb := float64(a[y*w+x]), float64(b[y*w+x])
						s[0] += va
						s[1] += vb
						s[2] += va*va + vb*vb
						s[3] += va * vb
					}
				}
				blocks[by*bw+bx] = s
			}
		}
	})
	var mu sync.Mutex
	var total float64
	parallelRows(bh-1, func(y0, y1 int) {
		var sum float64
		for by := y0; by < y1; by++ {
			for bx := range bw - 1 {
				var s [4]float64
				for _, k := range [4]int{by*bw + bx, by*bw + bx + 1, (by+1)*bw + bx, (by+1)*bw + bx + 1} {
					for j := range s {
						s[j] += blocks[k][j]
					}
				}
				const n = 64.0
				ma, mb := s[0]/n, s[1]/n
				vars := (s[2] - (s[0]*s[0]+s[1]*s[1])/n) / (n - 1) // var(a) + var(b)
				cov := (s[3] - s[0]*s[1]/n) / (n - 1)
				sum += (2*ma*mb + ssimC1) * (2*cov + ssimC2) / ((ma*ma + mb*mb + ssimC1) * (vars + ssimC2))
			}
		}
		mu.Lock()
		total += sum
		mu.Unlock()
	})
	return total / float64((bw-1)*(bh-1))
}
