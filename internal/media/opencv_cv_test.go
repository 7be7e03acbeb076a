//go:build cgo && !vidhub_lite

package media_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/internal/media/mediatest"
)

// gstCamera is a GStreamer pipeline standing in for a camera.
const gstCamera = "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! appsink"

func TestCaptureGStreamer(t *testing.T) {
	c, err := media.OpenGStreamer(gstCamera)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for i := range 3 {
		p, ok := c.Read()
		if !ok {
			t.Fatalf("frame %d: none", i)
		}
		if w, h := p.Size(); w != 320 || h != 240 {
			t.Errorf("frame %d is %dx%d, want the pipeline's 320x240", i, w, h)
		}
		img := p.Image()
		if img.Fmt != media.BGR24 || img.Width != 320 || img.Height != 240 || img.Stride < 3*320 || len(img.Pix) < img.Stride*239+3*320 {
			t.Errorf("frame %d: image %v %dx%d stride %d with %d bytes", i, img.Fmt, img.Width, img.Height, img.Stride, len(img.Pix))
		}
		p.Close()
	}
}

func TestCaptureFile(t *testing.T) {
	clip := mediatest.WriteClip(t, 4, 160, 120)
	c, err := media.OpenVideo(clip)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	n := 0
	for {
		p, ok := c.Read()
		if !ok {
			break
		}
		if w, h := p.Size(); w != 160 || h != 120 {
			t.Errorf("frame %d is %dx%d, want 160x120", n, w, h)
		}
		p.Close()
		n++
	}
	if n != 4 {
		t.Errorf("read %d frames of a 4-frame clip", n)
	}
}

func TestCaptureOpenFails(t *testing.T) {
	notVideo := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notVideo, []byte("not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() (media.Capture, error){
		"missing file": func() (media.Capture, error) { return media.OpenVideo("/no/such/clip.mp4") },
		"not a video":  func() (media.Capture, error) { return media.OpenVideo(notVideo) },
		"bad pipeline": func() (media.Capture, error) { return media.OpenGStreamer("nosuchelement ! appsink") },
		"missing V4L2": func() (media.Capture, error) { return media.OpenV4L2("/dev/video93", media.CaptureConfig{}) },
		"not a camera": func() (media.Capture, error) {
			return media.OpenV4L2(notVideo, media.CaptureConfig{Width: 640, Height: 480})
		},
		"missing index": func() (media.Capture, error) { return media.OpenCamera(93, media.CaptureConfig{}) },
	} {
		c, err := open()
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

// rgbaOf is a w x h RGBA image of one colour.
func rgbaOf(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

func imageOf(img *image.RGBA) media.Image {
	return media.Image{Fmt: media.RGBA, Width: img.Rect.Dx(), Height: img.Rect.Dy(), Stride: img.Stride, Pix: img.Pix}
}

// bgrAt reads one pixel of a picture.
func bgrAt(p media.Picture, x, y int) [3]byte {
	img := p.Image()
	i := y*img.Stride + 3*x
	return [3]byte{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

func TestPictureFrom(t *testing.T) {
	src := rgbaOf(64, 48, color.RGBA{R: 200, G: 100, B: 50, A: 255})
	p, err := media.PictureFrom(imageOf(src))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := bgrAt(p, 10, 10); got != [3]byte{50, 100, 200} {
		t.Errorf("RGBA converted to %v, want BGR 50 100 200", got)
	}
	// A BGR image is copied: the picture does not change with it.
	pix := bytes.Repeat([]byte{1, 2, 3}, 8*4)
	q, err := media.PictureFrom(media.Image{Fmt: media.BGR24, Width: 8, Height: 4, Stride: 24, Pix: pix})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	pix[0] = 99
	if got := bgrAt(q, 0, 0); got != [3]byte{1, 2, 3} {
		t.Errorf("copied BGR pixel is %v, want 1 2 3", got)
	}
	for name, img := range map[string]media.Image{
		"padded rows": {Fmt: media.BGR24, Width: 8, Height: 4, Stride: 32, Pix: make([]byte, 32*4)},
		"short":       {Fmt: media.BGR24, Width: 8, Height: 4, Stride: 24, Pix: make([]byte, 24*3)},
		"no format":   {Width: 8, Height: 4, Stride: 24, Pix: make([]byte, 24*4)},
	} {
		if p, err := media.PictureFrom(img); err == nil {
			p.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEncodeDecodeJPEG(t *testing.T) {
	p, err := media.PictureFrom(imageOf(rgbaOf(320, 180, color.RGBA{R: 30, G: 160, B: 220, A: 255})))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, sz := range []image.Point{{320, 180}, {160, 90}, {640, 360}} {
		var got []byte
		if err := p.EncodeJPEG(sz.X, sz.Y, 80, func(b []byte) error { got = append([]byte(nil), b...); return nil }); err != nil {
			t.Fatalf("%v: %v", sz, err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(got))
		if err != nil || cfg.Width != sz.X || cfg.Height != sz.Y {
			t.Fatalf("%v: the JPEG is %dx%d (%v)", sz, cfg.Width, cfg.Height, err)
		}
		d, err := media.DecodeJPEG(got)
		if err != nil {
			t.Fatal(err)
		}
		px := bgrAt(d, sz.X/2, sz.Y/2)
		d.Close()
		for i, want := range [3]byte{220, 160, 30} {
			if diff := int(px[i]) - int(want); diff < -8 || diff > 8 {
				t.Errorf("%v: decoded centre %v, want about BGR 220 160 30", sz, px)
				break
			}
		}
	}
	stop := errors.New("stop")
	if err := p.EncodeJPEG(320, 180, 80, func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("EncodeJPEG returned %v, want use's error", err)
	}
	for name, b := range map[string][]byte{"empty": nil, "junk": bytes.Repeat([]byte{0x42}, 100), "truncated": {0xFF, 0xD8, 0xFF}} {
		if d, err := media.DecodeJPEG(b); err == nil {
			d.Close()
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestCanvas(t *testing.T) {
	c, err := media.NewCanvas(200, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bg := color.RGBA{R: 24, G: 24, B: 28}
	c.Fill(bg)
	red, err := media.PictureFrom(imageOf(rgbaOf(40, 20, color.RGBA{R: 255, A: 255})))
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()
	c.Draw(red, image.Rect(100, 0, 180, 40)) // scaled up twice
	c.Draw(red, image.Rect(190, 90, 400, 400))
	c.Rect(image.Rect(0, 50, 50, 100), color.RGBA{G: 255}, -1)
	size, base := c.TextSize("hello", 0.6, 1)
	if size.X <= 0 || size.Y <= 0 || base < 0 {
		t.Errorf("text size %v baseline %d", size, base)
	}
	c.Text("hello", image.Pt(2, 30), 0.6, color.RGBA{R: 255, G: 255, B: 255}, 1)
	for _, tc := range []struct {
		x, y int
		want [3]byte
	}{
		{140, 20, [3]byte{0, 0, 255}},  // inside the drawn picture
		{195, 95, [3]byte{0, 0, 255}},  // clipped to the canvas
		{90, 20, [3]byte{28, 24, 24}},  // left of it: background
		{140, 60, [3]byte{28, 24, 24}}, // below it
		{25, 75, [3]byte{0, 255, 0}},   // the filled rectangle
		{199, 80, [3]byte{28, 24, 24}}, // untouched
	} {
		if got := bgrAt(c, tc.x, tc.y); got != tc.want {
			t.Errorf("pixel %d,%d is %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	text := 0
	for y := 10; y < 35; y++ {
		for x := 0; x < 80; x++ {
			if bgrAt(c, x, y) != [3]byte{28, 24, 24} {
				text++
			}
		}
	}
	if text == 0 {
		t.Error("no text drawn")
	}
	if _, err := media.NewCanvas(0, 10); err == nil {
		t.Error("a 0x10 canvas: no error")
	}
	if _, err := media.NewPicture(10, 1<<20); err == nil {
		t.Error("a 10x1048576 picture: no error")
	}
}

// TestWindow shows a canvas in a desktop window on a virtual display.
func TestWindow(t *testing.T) {
	t.Setenv("DISPLAY", hubtest.Xvfb(t))
	rundir := t.TempDir()
	if err := os.Chmod(rundir, 0o700); err != nil { // as Qt wants it
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", rundir)
	// HighGUI wants one OS thread for a window's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	win, err := media.NewWindow("media test", 320, 180)
	if err != nil {
		t.Fatal(err)
	}
	defer win.Close()
	c, err := media.NewCanvas(320, 180)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Fill(color.RGBA{B: 200})
	for range 5 {
		win.Show(c)
		if k := win.WaitKey(10); k != -1 {
			t.Errorf("key %d, with nobody typing", k)
		}
	}
	if !win.Visible() {
		t.Error("the window is not visible")
	}
}

func TestDescribe(t *testing.T) {
	if !media.OpenCVAvailable() {
		t.Fatal("the full build says it has no OpenCV")
	}
	if d := media.Describe(); len(d) < len("OpenCV 4") || d[:7] != "OpenCV " {
		t.Errorf("Describe() = %q, want OpenCV and its version", d)
	}
}
