//go:build cgo && !vidhub_lite

package media

import (
	"errors"
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"
)

// OpenCVAvailable reports whether this build has OpenCV: the full build
// has.
func OpenCVAvailable() bool { return true }

func openCVVersion() string { return gocv.OpenCVVersion() }

// OpenCamera opens the camera at index through the platform's own camera
// API (AVFoundation on macOS, Media Foundation or DirectShow on Windows),
// asking it for cfg.
func OpenCamera(index int, cfg CaptureConfig) (Capture, error) {
	c, err := opened(gocv.VideoCaptureDeviceWithAPI(index, gocv.VideoCaptureAny))
	if err != nil {
		return nil, fmt.Errorf("camera %d: %w", index, err)
	}
	c.setup(cfg)
	return c, nil
}

// OpenV4L2 opens the Video4Linux camera at dev (/dev/video0), asking it
// for cfg.
func OpenV4L2(dev string, cfg CaptureConfig) (Capture, error) {
	c, err := opened(gocv.VideoCaptureFileWithAPI(dev, gocv.VideoCaptureV4L2))
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", dev, err)
	}
	c.setup(cfg)
	return c, nil
}

// OpenVideo opens a video file or stream URL with whichever backend
// OpenCV finds for it.
func OpenVideo(name string) (Capture, error) {
	c, err := opened(gocv.VideoCaptureFile(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// OpenGStreamer opens a GStreamer pipeline, which must end in appsink.
func OpenGStreamer(pipeline string) (Capture, error) {
	c, err := opened(gocv.VideoCaptureFileWithAPI(pipeline, gocv.VideoCaptureGstreamer))
	if err != nil {
		return nil, fmt.Errorf("GStreamer pipeline %q: %w", pipeline, err)
	}
	return c, nil
}

// errNotOpened is what the Open functions wrap when OpenCV cannot open a
// source; the caller knows best what to suggest.
var errNotOpened = errors.New("OpenCV cannot open it")

// capture is a Capture over an OpenCV VideoCapture.
type capture struct{ vc *gocv.VideoCapture }

var _ Capture = (*capture)(nil)

// opened checks what a gocv VideoCapture constructor returned.
func opened(vc *gocv.VideoCapture, err error) (*capture, error) {
	if err != nil || vc == nil || !vc.IsOpened() {
		if vc != nil {
			_ = vc.Close()
		}
		return nil, errNotOpened
	}
	return &capture{vc: vc}, nil
}

// setup asks a camera for cfg, and keeps the driver's queue short: old
// frames are stale frames.
func (c *capture) setup(cfg CaptureConfig) {
	c.vc.Set(gocv.VideoCaptureBufferSize, 1)
	if cfg.Width > 0 {
		c.vc.Set(gocv.VideoCaptureFrameWidth, float64(cfg.Width))
		c.vc.Set(gocv.VideoCaptureFrameHeight, float64(cfg.Height))
	}
	if cfg.FPS > 0 {
		c.vc.Set(gocv.VideoCaptureFPS, cfg.FPS)
	}
}

func (c *capture) Read() (Picture, bool) {
	m := gocv.NewMat()
	if !c.vc.Read(&m) || m.Empty() {
		_ = m.Close()
		return nil, false
	}
	return &mat{m: m}, true
}

func (c *capture) Close() error { return c.vc.Close() }

// mat is a Picture and Canvas over a BGR gocv Mat.
type mat struct{ m gocv.Mat }

var _ Canvas = (*mat)(nil)

// maxSide bounds the pictures NewPicture makes, as checkImage does.
const maxSide = 1 << 14

// NewPicture makes a w x h BGR picture whose pixels are not set: for a
// decoder to write into through Image.
func NewPicture(w, h int) (Picture, error) { return newMat(w, h) }

// NewCanvas makes a w x h canvas to draw on; its pixels are not set
// (Fill them).
func NewCanvas(w, h int) (Canvas, error) { return newMat(w, h) }

func newMat(w, h int) (*mat, error) {
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return nil, fmt.Errorf("picture of %dx%d: want a size from 1x1 to %dx%d", w, h, maxSide, maxSide)
	}
	return &mat{m: gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)}, nil
}

// PictureFrom copies img into a new BGR picture, converting RGBA. Its
// rows must have no padding (Stride is Width times the bytes a pixel).
func PictureFrom(img Image) (Picture, error) {
	if err := checkImage(img); err != nil {
		return nil, err
	}
	mt, bpp := gocv.MatTypeCV8UC3, 3
	if img.Fmt == RGBA {
		mt, bpp = gocv.MatTypeCV8UC4, 4
	}
	if img.Stride != img.Width*bpp {
		return nil, fmt.Errorf("image rows of %d bytes for %d pixels: OpenCV needs them without padding", img.Stride, img.Width)
	}
	// The wrapper shares Go memory: own a copy before it goes.
	src, err := gocv.NewMatFromBytes(img.Height, img.Width, mt, img.Pix[:img.Height*img.Stride])
	if err != nil {
		return nil, fmt.Errorf("wrapping an image for OpenCV: %w", err)
	}
	defer func() { _ = src.Close() }()
	if img.Fmt == BGR24 {
		return &mat{m: src.Clone()}, nil
	}
	bgr := gocv.NewMat()
	gocv.CvtColor(src, &bgr, gocv.ColorRGBAToBGR)
	return &mat{m: bgr}, nil
}

// DecodeJPEG decodes a JPEG into a new BGR picture with OpenCV
// (libjpeg(-turbo)).
func DecodeJPEG(b []byte) (Picture, error) {
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil {
		return nil, fmt.Errorf("JPEG decoding: %w", err)
	}
	if m.Empty() {
		_ = m.Close()
		return nil, errors.New("JPEG decoding: OpenCV could not decode it")
	}
	return &mat{m: m}, nil
}

func (p *mat) Image() Image {
	pix, err := p.m.DataPtrUint8() // no copy; fails for a Mat that is not continuous
	if err != nil {
		pix = p.m.ToBytes()
	}
	return Image{Fmt: BGR24, Width: p.m.Cols(), Height: p.m.Rows(), Stride: p.m.Step(), Pix: pix}
}

func (p *mat) Size() (int, int) { return p.m.Cols(), p.m.Rows() }

func (p *mat) EncodeJPEG(w, h, q int, use func([]byte) error) error {
	if p.m.Cols() == w && p.m.Rows() == h {
		return encodeMat(p.m, q, use)
	}
	interp := gocv.InterpolationArea
	if w > p.m.Cols() {
		interp = gocv.InterpolationLinear
	}
	scaled := gocv.NewMat()
	defer func() { _ = scaled.Close() }()
	gocv.Resize(p.m, &scaled, image.Pt(w, h), 0, 0, interp)
	return encodeMat(scaled, q, use)
}

// encodeMat encodes a BGR Mat with libjpeg(-turbo) through OpenCV.
func encodeMat(m gocv.Mat, q int, use func([]byte) error) error {
	// gocv: an empty params slice panics, and the error is always nil.
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, q})
	if err != nil {
		return fmt.Errorf("JPEG encoding: %w", err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return fmt.Errorf("JPEG encoding of a %dx%d frame produced nothing", m.Cols(), m.Rows())
	}
	return use(buf.GetBytes())
}

func (p *mat) Close() { _ = p.m.Close() }

func (p *mat) Fill(c color.RGBA) {
	p.m.SetTo(gocv.NewScalar(float64(c.B), float64(c.G), float64(c.R), 0))
}

func (p *mat) Draw(src Picture, r image.Rectangle) {
	r = r.Intersect(image.Rect(0, 0, p.m.Cols(), p.m.Rows()))
	if r.Empty() {
		return
	}
	s, done := asMat(src)
	defer done()
	if s.Empty() {
		return
	}
	// Scaled straight into the canvas: cv::resize writes into a region
	// of the right size and type in place.
	region := p.m.Region(r)
	defer func() { _ = region.Close() }()
	gocv.Resize(s, &region, r.Size(), 0, 0, gocv.InterpolationArea)
}

func (p *mat) Rect(r image.Rectangle, c color.RGBA, thick int) {
	gocv.Rectangle(&p.m, r, c, thick)
}

func (p *mat) Text(text string, at image.Point, scale float64, c color.RGBA, thick int) {
	gocv.PutTextWithParams(&p.m, text, at, gocv.FontHersheySimplex, scale, c, thick, gocv.LineAA, false)
}

func (p *mat) TextSize(text string, scale float64, thick int) (image.Point, int) {
	return gocv.GetTextSizeWithBaseline(text, gocv.FontHersheySimplex, scale, thick)
}

// asMat is p's Mat, and what to call once done with it: a Picture made
// elsewhere is wrapped (not copied) if it is BGR24 without padding, or
// is an empty Mat.
func asMat(p Picture) (gocv.Mat, func()) {
	if m, ok := p.(*mat); ok {
		return m.m, func() {}
	}
	img := p.Image()
	if checkImage(img) != nil || img.Fmt != BGR24 || img.Stride != 3*img.Width {
		m := gocv.NewMat()
		return m, func() { _ = m.Close() }
	}
	m, err := gocv.NewMatFromBytes(img.Height, img.Width, gocv.MatTypeCV8UC3, img.Pix[:img.Height*img.Stride])
	if err != nil {
		m = gocv.NewMat()
	}
	return m, func() { _ = m.Close() }
}

// window is a Window over a HighGUI window.
type window struct{ w *gocv.Window }

var _ Window = (*window)(nil)

// NewWindow opens a desktop window titled title, of w x h. It must be
// called on the main OS thread, as must every method of the window.
func NewWindow(title string, w, h int) (Window, error) {
	win := gocv.NewWindow(title)
	win.ResizeWindow(w, h)
	return &window{w: win}, nil
}

func (w *window) Show(p Picture) {
	m, done := asMat(p)
	defer done()
	w.w.IMShow(m)
}

func (w *window) WaitKey(ms int) int { return w.w.WaitKey(ms) }
func (w *window) Visible() bool      { return w.w.GetWindowProperty(gocv.WindowPropertyVisible) >= 1 }
func (w *window) Close()             { _ = w.w.Close() }
