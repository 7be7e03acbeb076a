//go:build cgo && !vidhub_lite

package media

import (
	"bytes"
	"image"
	"image/jpeg"
	"strings"
	"testing"
)

// TestEncodeJPEGI420 takes the H.264 encoder's I420 picture of a test
// scene to a JPEG and decodes it with the standard library: the size is
// the picture's, and the colours are the scene's (limited range mapped
// to JPEG's full range) about as closely as a JPEG of the same quality
// made from the RGB scene itself, including sizes that are not whole
// 16x16 blocks.
func TestEncodeJPEGI420(t *testing.T) {
	for _, sz := range [][2]int{{1280, 720}, {320, 180}, {130, 98}} {
		w, h := sz[0], sz[1]
		src := scene(w, h, 3)
		enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, FPS: 30})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enc.Encode(src, true); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := EncodeJPEGI420(enc.Input(), 90, func(b []byte) error { got = bytes.Clone(b); return nil }); err != nil {
			t.Fatal(err)
		}
		enc.Close()
		ours := decodeToBGR(t, got, w, h)
		rgba := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				p := src.Pix[y*src.Stride+x*3:]
				copy(rgba.Pix[y*rgba.Stride+x*4:], []byte{p[2], p[1], p[0], 255})
			}
		}
		var ref bytes.Buffer
		if err := jpeg.Encode(&ref, rgba, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		theirs := decodeToBGR(t, ref.Bytes(), w, h)
		po, pr := psnr(src, ours), psnr(src, theirs)
		t.Logf("%dx%d: from I420 %d bytes, PSNR %.1f dB; from RGB (image/jpeg) %d bytes, %.1f dB", w, h, len(got), po, ref.Len(), pr)
		if po < 30 || po < pr-2 {
			t.Errorf("%dx%d: PSNR %.1f dB from I420 against %.1f from RGB: colours or range wrong", w, h, po, pr)
		}
	}
	bad := []Image{
		{Fmt: RGBA, Width: 16, Height: 16, Stride: 64, Pix: make([]byte, 1024)},
		{Fmt: I420, Width: 15, Height: 16, Stride: 15, Pix: make([]byte, 15*24)},
		{Fmt: I420, Width: 16, Height: 16, Stride: 16, Pix: make([]byte, 100)},
	}
	for _, img := range bad {
		err := EncodeJPEGI420(img, 80, func([]byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "want even sizes") {
			t.Errorf("%+v: %v, want a refusal", img.Fmt, err)
		}
	}
	ok := Image{Fmt: I420, Width: 16, Height: 16, Stride: 16, Pix: make([]byte, 384)}
	if err := EncodeJPEGI420(ok, 0, func([]byte) error { return nil }); err == nil {
		t.Error("quality 0 taken")
	}
}

// decodeToBGR decodes a JPEG with the standard library into a BGR24
// Image of w x h.
func decodeToBGR(t *testing.T, b []byte, w, h int) Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Fatalf("JPEG of %v, want %dx%d", img.Bounds(), w, h)
	}
	out := Image{Fmt: BGR24, Width: w, Height: h, Stride: w * 3, Pix: make([]byte, w*h*3)}
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(x, y).RGBA()
			copy(out.Pix[y*out.Stride+x*3:], []byte{byte(bl >> 8), byte(g >> 8), byte(r >> 8)})
		}
	}
	return out
}
