//go:build cgo

package media

import (
	"math"
	"os/exec"
	"testing"
)

// scene draws frame n of a moving test picture into a new BGR24 image: a
// diagonal gradient with a box that moves 8 pixels a frame.
func scene(w, h, n int) Image {
	img := Image{Fmt: BGR24, Width: w, Height: h, Stride: w * 3, Pix: make([]byte, w*h*3)}
	drawScene(img, n)
	return img
}

func drawScene(img Image, n int) {
	w, h := img.Width, img.Height
	bw, bh := w/6, h/5
	bx, by := (n*8)%(w-bw), (h-bh)/2+int(float64(h/4)*math.Sin(float64(n)/10))
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			b, g, r := byte(x*255/w), byte(y*255/h), byte((x+y+n)%256)
			if x >= bx && x < bx+bw && y >= by && y < by+bh {
				b, g, r = 240, 40, 40
			}
			switch img.Fmt {
			case BGR24:
				row[x*3], row[x*3+1], row[x*3+2] = b, g, r
			case RGBA:
				row[x*4], row[x*4+1], row[x*4+2], row[x*4+3] = r, g, b, 255
			}
		}
	}
}

// busyScene draws frame n of a picture that is hard to code: fine
// texture everywhere, scrolling 3 pixels a frame, as a handheld camera's
// view of foliage would be.
func busyScene(w, h, n int) Image {
	img := Image{Fmt: BGR24, Width: w, Height: h, Stride: w * 3, Pix: make([]byte, w*h*3)}
	for y := range h {
		for x := range w {
			u, v := uint32(x+3*n), uint32(y+n)
			t := (u*2654435761 ^ v*2246822519) >> 24 // hashed texture
			s := byte((u/4 + v/4) % 256)             // and coarser structure
			img.Pix[y*img.Stride+x*3] = byte(t)/2 + s/2
			img.Pix[y*img.Stride+x*3+1] = byte(t>>1)/2 + s/3
			img.Pix[y*img.Stride+x*3+2] = s
		}
	}
	return img
}

// psnr compares two BGR24 images of one size.
func psnr(a, b Image) float64 {
	var se float64
	for y := range a.Height {
		ra := a.Pix[y*a.Stride : y*a.Stride+a.Width*3]
		rb := b.Pix[y*b.Stride : y*b.Stride+b.Width*3]
		for i := range ra {
			d := float64(ra[i]) - float64(rb[i])
			se += d * d
		}
	}
	mse := se / float64(a.Width*a.Height*3)
	if mse == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/mse)
}

// needTools fails the test (a missing tool is a failure, not a skip)
// unless every tool is on PATH.
func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run make deps-test (scripts/deps.sh test) to install it", tool)
		}
	}
}

// encodeAll encodes n frames of scene at w x h and returns copies of
// their access units; force lists the frames to force to keyframes.
func encodeAll(t testing.TB, cfg EncoderConfig, n int, pic func(w, h, i int) Image, force ...int) []AU {
	t.Helper()
	enc, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var aus []AU
	for i := range n {
		forced := false
		for _, f := range force {
			forced = forced || f == i
		}
		au, err := enc.Encode(pic(cfg.Width, cfg.Height, i), forced)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		au.Data = append([]byte(nil), au.Data...)
		aus = append(aus, au)
	}
	return aus
}

var cameraCache = map[[3]int][]Image{}

// cameraScenes returns n frames of a camera-like picture: scene's first
// frame as a still background with sensor noise (-1 to +2), and the
// moving box.
func cameraScenes(w, h, n int) []Image {
	k := [3]int{w, h, n}
	if imgs, ok := cameraCache[k]; ok {
		return imgs
	}
	bg := scene(w, h, 0)
	imgs := make([]Image, n)
	for f := range imgs {
		img := scene(w, h, f)
		bw, bh := w/6, h/5
		bx := (f * 8) % (w - bw)
		seed := uint32(f * 7919)
		for y := range h {
			for x := range w {
				if x >= bx && x < bx+bw && y >= (h-bh)/2 && y < (h+bh)/2 {
					continue
				}
				seed = seed*1664525 + 1013904223
				nz := int(seed>>30) - 1
				for c := range 3 {
					i := y*img.Stride + x*3 + c
					img.Pix[i] = byte(min(255, max(0, int(bg.Pix[i])+nz)))
				}
			}
		}
		imgs[f] = img
	}
	cameraCache[k] = imgs
	return imgs
}
