//go:build matprofile && cgo && !vidhub_lite

package media_test

import (
	"bytes"
	"image"
	"image/color"
	"testing"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/internal/media/mediatest"
)

// TestMatsClosed runs every OpenCV path of media, failures included, and
// checks that once each Picture and Capture is closed no Mat is left
// open. Run with -tags matprofile.
func TestMatsClosed(t *testing.T) {
	clip := mediatest.WriteClip(t, 3, 160, 120)
	before := media.MatCount()
	if before < 0 {
		t.Fatal("MatCount is not counting in the matprofile build")
	}
	for _, open := range []func() (media.Capture, error){
		func() (media.Capture, error) { return media.OpenVideo(clip) },
		func() (media.Capture, error) { return media.OpenGStreamer(gstCamera) },
	} {
		c, err := open()
		if err != nil {
			t.Fatal(err)
		}
		for range 4 { // past the clip's end
			if p, ok := c.Read(); ok {
				p.Close()
			}
		}
		_ = c.Close()
	}
	if _, err := media.OpenGStreamer("nosuchelement ! appsink"); err == nil {
		t.Fatal("a bad pipeline opened")
	}

	canvas, err := media.NewCanvas(320, 180)
	if err != nil {
		t.Fatal(err)
	}
	src := image.NewRGBA(image.Rect(0, 0, 64, 48))
	p, err := media.PictureFrom(media.Image{Fmt: media.RGBA, Width: 64, Height: 48, Stride: src.Stride, Pix: src.Pix})
	if err != nil {
		t.Fatal(err)
	}
	canvas.Fill(color.RGBA{B: 100})
	canvas.Draw(p, image.Rect(10, 10, 138, 106))
	canvas.Text("label", image.Pt(5, 170), 0.6, color.RGBA{R: 255, G: 255, B: 255}, 1)
	var jpg []byte
	for _, w := range []int{64, 32, 128} {
		if err := p.EncodeJPEG(w, w*3/4, 80, func(b []byte) error { jpg = append(jpg[:0], b...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	d, err := media.DecodeJPEG(jpg)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := media.DecodeJPEG(bytes.Repeat([]byte{0x42}, 64)); err == nil {
		t.Fatal("junk decoded")
	}
	bgr, err := media.PictureFrom(canvas.Image())
	if err != nil {
		t.Fatal(err)
	}
	bgr.Close()
	p.Close()
	canvas.Close()
	if n := media.MatCount() - before; n != 0 {
		t.Fatalf("%d Mats left open:\n%s", n, media.MatProfile())
	}
}
