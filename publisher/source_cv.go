//go:build cgo && !vidhub_lite

package publisher

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/vidhub/vidhub/internal/media"
)

// cvSource captures through OpenCV: cameras, files, stream URLs and
// GStreamer pipelines.
type cvSource struct {
	desc  string // what it is, for messages
	live  bool
	loop  bool
	open  func() (*gocv.VideoCapture, error)
	vc    *gocv.VideoCapture
	first *matFrame // read at open to prove the source works
	w, h  int
	log   *slog.Logger
}

var _ frameSource = (*cvSource)(nil)

func openCVSource(cfg Config) (frameSource, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &cvSource{loop: cfg.Loop, log: log}
	src := cfg.Source
	switch {
	case strings.HasPrefix(src, "gst:"):
		pipeline := strings.TrimPrefix(src, "gst:")
		s.desc, s.live = fmt.Sprintf("GStreamer pipeline %q", pipeline), true
		s.open = func() (*gocv.VideoCapture, error) {
			vc, err := gocv.VideoCaptureFileWithAPI(pipeline, gocv.VideoCaptureGstreamer)
			if err != nil || !vc.IsOpened() {
				closeVC(vc)
				return nil, fmt.Errorf("%w: cannot open %s: check that it runs with gst-launch-1.0 and ends in appsink", ErrSource, s.desc)
			}
			return vc, nil
		}
	case isCamera(src):
		cam, err := cameraOf(runtime.GOOS, src)
		if err != nil {
			return nil, err
		}
		s.desc, s.live = "camera "+cam.desc(), true
		s.open = func() (*gocv.VideoCapture, error) {
			vc, err := cam.open()
			if err != nil {
				return nil, fmt.Errorf("%w: cannot open %s: %w", ErrSource, s.desc, err)
			}
			// Keep the driver's queue short: old frames are stale frames.
			vc.Set(gocv.VideoCaptureBufferSize, 1)
			if cfg.Width > 0 {
				vc.Set(gocv.VideoCaptureFrameWidth, float64(cfg.Width))
				vc.Set(gocv.VideoCaptureFrameHeight, float64(cfg.Height))
			}
			if cfg.FPS > 0 {
				vc.Set(gocv.VideoCaptureFPS, cfg.FPS)
			}
			return vc, nil
		}
	case strings.Contains(src, "://"):
		s.desc, s.live = "stream "+src, true
		s.open = func() (*gocv.VideoCapture, error) {
			vc, err := gocv.VideoCaptureFile(src)
			if err != nil || !vc.IsOpened() {
				closeVC(vc)
				return nil, fmt.Errorf("%w: cannot open %s: is the URL right and the stream up?", ErrSource, s.desc)
			}
			return vc, nil
		}
	default:
		s.desc = "file " + src
		s.open = func() (*gocv.VideoCapture, error) {
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("%w: cannot open %s: %w (a source is pattern, a camera like 0 or /dev/video0, a file, a URL or gst:<pipeline>)", ErrSource, s.desc, err)
			}
			vc, err := gocv.VideoCaptureFile(src)
			if err != nil || !vc.IsOpened() {
				closeVC(vc)
				return nil, fmt.Errorf("%w: cannot open %s: not a video OpenCV can read", ErrSource, s.desc)
			}
			return vc, nil
		}
	}
	if cfg.Loop && s.live {
		return nil, fmt.Errorf("%w: --loop is for files; %s is live", ErrBadConfig, s.desc)
	}
	vc, err := s.open()
	if err != nil {
		return nil, err
	}
	f, ok := readMat(vc)
	if !ok {
		closeVC(vc)
		return nil, fmt.Errorf("%w: %s opened but delivered no frame", ErrSource, s.desc)
	}
	s.vc, s.first = vc, f
	s.w, s.h = f.m.Cols(), f.m.Rows()
	return s, nil
}

func isCamera(src string) bool {
	if _, err := strconv.Atoi(src); err == nil {
		return true
	}
	return strings.HasPrefix(src, "/dev/video")
}

// camera is a camera source as the platform names it: a V4L2 device path
// on Linux, an index into the platform's own camera API elsewhere
// (AVFoundation on macOS, Media Foundation or DirectShow on Windows).
type camera struct {
	dev   string // Linux: /dev/videoN
	index int    // elsewhere
}

// cameraOf reads a camera source (0, /dev/video0) for the platform goos.
func cameraOf(goos, src string) (camera, error) {
	n, err := strconv.Atoi(src)
	if goos == "linux" {
		if err == nil {
			return camera{dev: "/dev/video" + strconv.Itoa(n)}, nil
		}
		return camera{dev: src}, nil
	}
	if err != nil || n < 0 {
		return camera{}, fmt.Errorf("%w: %s is a Linux camera path; on %s name a camera by its index, e.g. --source 0", ErrSource, src, goos)
	}
	return camera{index: n}, nil
}

func (c camera) desc() string {
	if c.dev != "" {
		return c.dev
	}
	return strconv.Itoa(c.index)
}

// open opens the camera, or says what to check.
func (c camera) open() (*gocv.VideoCapture, error) {
	if c.dev == "" {
		vc, err := gocv.VideoCaptureDeviceWithAPI(c.index, gocv.VideoCaptureAny)
		if err != nil || !vc.IsOpened() {
			closeVC(vc)
			return nil, errors.New("it does not open; is a camera attached, not in use, and may this program use it (the system's camera privacy settings)?")
		}
		return vc, nil
	}
	if _, err := os.Stat(c.dev); err != nil {
		return nil, fmt.Errorf("%w; is a camera attached? (ls /dev/video*)", err)
	}
	vc, err := gocv.VideoCaptureFileWithAPI(c.dev, gocv.VideoCaptureV4L2)
	if err != nil || !vc.IsOpened() {
		closeVC(vc)
		return nil, errors.New("it exists but does not open; is it in use, or is this user not in the video group?")
	}
	return vc, nil
}

func closeVC(vc *gocv.VideoCapture) {
	if vc != nil {
		_ = vc.Close()
	}
}

func readMat(vc *gocv.VideoCapture) (*matFrame, bool) {
	m := gocv.NewMat()
	if !vc.Read(&m) || m.Empty() {
		_ = m.Close()
		return nil, false
	}
	return &matFrame{m: m}, true
}

func (s *cvSource) Read(ctx context.Context) (frame, error) {
	if f := s.first; f != nil {
		s.first = nil
		return f, nil
	}
	if s.vc != nil {
		if f, ok := readMat(s.vc); ok {
			return f, nil
		}
	}
	if !s.live {
		if !s.loop {
			return nil, fmt.Errorf("%w: %s: %w", ErrSource, s.desc, io.EOF)
		}
		closeVC(s.vc)
		s.vc = nil
		vc, err := s.open()
		if err != nil {
			return nil, err
		}
		s.vc = vc
		if f, ok := readMat(vc); ok {
			return f, nil
		}
		return nil, fmt.Errorf("%w: %s delivered no frame after rewinding", ErrSource, s.desc)
	}
	// A camera unplugged or a stream gone: reopen with backoff.
	s.log.Warn("source stopped delivering frames; reopening", "source", s.desc)
	closeVC(s.vc)
	s.vc = nil
	backoff := 250 * time.Millisecond
	for {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
		vc, err := s.open()
		if err != nil {
			s.log.Debug("reopen failed", "source", s.desc, "err", err)
			continue
		}
		if f, ok := readMat(vc); ok {
			s.vc = vc
			s.log.Info("source is back", "source", s.desc)
			return f, nil
		}
		closeVC(vc)
	}
}

func (s *cvSource) Live() bool       { return s.live }
func (s *cvSource) Size() (int, int) { return s.w, s.h }

func (s *cvSource) Close() error {
	if s.first != nil {
		s.first.release()
		s.first = nil
	}
	if s.vc != nil {
		err := s.vc.Close()
		s.vc = nil
		return err
	}
	return nil
}

// matFrame is a BGR frame in OpenCV memory.
type matFrame struct{ m gocv.Mat }

var _ frame = (*matFrame)(nil)

func (f *matFrame) encode(w, h, q int, use func([]byte) error) error {
	if f.m.Cols() == w && f.m.Rows() == h {
		return encodeMat(f.m, q, use)
	}
	interp := gocv.InterpolationArea
	if w > f.m.Cols() {
		interp = gocv.InterpolationLinear
	}
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(f.m, &scaled, image.Pt(w, h), 0, 0, interp)
	return encodeMat(scaled, q, use)
}

func (f *matFrame) release() { _ = f.m.Close() }

func (f *matFrame) picture() media.Image {
	pix, err := f.m.DataPtrUint8() // no copy; fails for a Mat that is not continuous
	if err != nil {
		pix = f.m.ToBytes()
	}
	return media.Image{Fmt: media.BGR24, Width: f.m.Cols(), Height: f.m.Rows(), Stride: f.m.Step(), Pix: pix}
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

// nativeImage holds an imageFrame converted to a BGR Mat once, so each
// layer is scaled by OpenCV from it: several times faster than Go.
type nativeImage struct {
	bgr gocv.Mat
	ok  bool
}

func (n *nativeImage) reset() {
	if n.ok {
		_ = n.bgr.Close()
		n.ok = false
	}
}

func (f *imageFrame) encode(w, h, q int, use func([]byte) error) error {
	b := f.img.Bounds()
	if f.img.Stride != 4*b.Dx() {
		return f.encodeGo(w, h, q, use)
	}
	if !f.native.ok {
		rgba, err := gocv.NewMatFromBytes(b.Dy(), b.Dx(), gocv.MatTypeCV8UC4, f.img.Pix)
		if err != nil {
			return fmt.Errorf("wrapping a frame for OpenCV: %w", err)
		}
		f.native.bgr = gocv.NewMat()
		gocv.CvtColor(rgba, &f.native.bgr, gocv.ColorRGBAToBGR)
		_ = rgba.Close()
		f.native.ok = true
	}
	return (&matFrame{m: f.native.bgr}).encode(w, h, q, use)
}
