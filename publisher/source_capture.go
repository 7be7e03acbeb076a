package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vidhub/vidhub/internal/media"
)

// cvSource captures through OpenCV (media.Capture): cameras, files,
// stream URLs and GStreamer pipelines.
type cvSource struct {
	desc  string // what it is, for messages
	live  bool
	loop  bool
	open  func() (media.Capture, error)
	vc    media.Capture
	first *pictureFrame // read at open to prove the source works
	w, h  int
	log   *slog.Logger
}

var _ frameSource = (*cvSource)(nil)

// openCVSource opens a source other than the pattern: in a build without
// OpenCV, it says so.
func openCVSource(cfg Config) (frameSource, error) {
	if !media.OpenCVAvailable() {
		return nil, fmt.Errorf("source %q: %w", cfg.Source, ErrNeedsOpenCV)
	}
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
		s.open = func() (media.Capture, error) {
			vc, err := media.OpenGStreamer(pipeline)
			if err != nil {
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
		s.open = func() (media.Capture, error) {
			// media keeps the driver's queue short: old frames are stale.
			vc, err := cam.open(media.CaptureConfig{Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS})
			if err != nil {
				return nil, fmt.Errorf("%w: cannot open %s: %w", ErrSource, s.desc, err)
			}
			return vc, nil
		}
	case strings.Contains(src, "://"):
		s.desc, s.live = "stream "+src, true
		s.open = func() (media.Capture, error) {
			vc, err := media.OpenVideo(src)
			if err != nil {
				return nil, fmt.Errorf("%w: cannot open %s: is the URL right and the stream up?", ErrSource, s.desc)
			}
			return vc, nil
		}
	default:
		s.desc = "file " + src
		s.open = func() (media.Capture, error) {
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("%w: cannot open %s: %w (a source is pattern, a camera like 0 or /dev/video0, a file, a URL or gst:<pipeline>)", ErrSource, s.desc, err)
			}
			vc, err := media.OpenVideo(src)
			if err != nil {
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
	f, ok := readFrame(vc)
	if !ok {
		_ = vc.Close()
		return nil, fmt.Errorf("%w: %s opened but delivered no frame", ErrSource, s.desc)
	}
	s.vc, s.first = vc, f
	s.w, s.h = f.p.Size()
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

// open opens the camera, asking it for cfg, or says what to check.
func (c camera) open(cfg media.CaptureConfig) (media.Capture, error) {
	if c.dev == "" {
		vc, err := media.OpenCamera(c.index, cfg)
		if err != nil {
			return nil, errors.New("it does not open; is a camera attached, not in use, and may this program use it (the system's camera privacy settings)?")
		}
		return vc, nil
	}
	if _, err := os.Stat(c.dev); err != nil {
		return nil, fmt.Errorf("%w; is a camera attached? (ls /dev/video*)", err)
	}
	vc, err := media.OpenV4L2(c.dev, cfg)
	if err != nil {
		return nil, errors.New("it exists but does not open; is it in use, or is this user not in the video group?")
	}
	return vc, nil
}

// closeVC closes vc if there is one.
func closeVC(vc media.Capture) {
	if vc != nil {
		_ = vc.Close()
	}
}

// readFrame reads the next frame of vc.
func readFrame(vc media.Capture) (*pictureFrame, bool) {
	p, ok := vc.Read()
	if !ok {
		return nil, false
	}
	return &pictureFrame{p: p}, true
}

func (s *cvSource) Read(ctx context.Context) (frame, error) {
	if f := s.first; f != nil {
		s.first = nil
		return f, nil
	}
	if s.vc != nil {
		if f, ok := readFrame(s.vc); ok {
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
		if f, ok := readFrame(vc); ok {
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
		if f, ok := readFrame(vc); ok {
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

// pictureFrame is a BGR frame in OpenCV memory.
type pictureFrame struct{ p media.Picture }

var _ frame = (*pictureFrame)(nil)

func (f *pictureFrame) encode(w, h, q int, use func([]byte) error) error {
	return f.p.EncodeJPEG(w, h, q, use)
}

func (f *pictureFrame) release() { f.p.Close() }

func (f *pictureFrame) picture() media.Image { return f.p.Image() }

// nativeImage holds an imageFrame converted to a BGR picture once, so
// that in a build with OpenCV each layer is scaled and encoded by OpenCV
// from it: several times faster than Go.
type nativeImage struct{ bgr media.Picture }

func (n *nativeImage) reset() {
	if n.bgr != nil {
		n.bgr.Close()
		n.bgr = nil
	}
}

func (f *imageFrame) encode(w, h, q int, use func([]byte) error) error {
	if !media.OpenCVAvailable() || f.img.Stride != 4*f.img.Bounds().Dx() {
		return f.encodeGo(w, h, q, use)
	}
	if f.native.bgr == nil {
		bgr, err := media.PictureFrom(f.picture())
		if err != nil {
			return fmt.Errorf("converting a frame for OpenCV: %w", err)
		}
		f.native.bgr = bgr
	}
	return f.native.bgr.EncodeJPEG(w, h, q, use)
}
