package publisher

import (
	"context"
	"errors"
	"image"
	"strings"
	"time"

	"github.com/vidhub/vidhub/internal/media"
)

// ErrSource is returned (wrapped) when a source cannot be opened or read.
var ErrSource = errors.New("video source")

// ErrNeedsOpenCV is returned (wrapped) for a source that needs OpenCV in a
// build without it (CGO_ENABLED=0).
var ErrNeedsOpenCV = errors.New("this source needs OpenCV, which this build of vidhub lacks (built with CGO_ENABLED=0); use the full build, or --source pattern")

// frameSource is where frames come from. Read is called from one
// goroutine only: capture devices are not goroutine-safe.
type frameSource interface {
	// Read blocks until the next frame. It returns an error wrapping
	// io.EOF at the end of a file that does not loop. A live source that
	// stops delivering reopens itself with backoff until ctx is done.
	Read(ctx context.Context) (frame, error)
	// Live reports whether the source delivers at its own rate (camera,
	// stream, pipeline) rather than whenever it is read (file, pattern).
	Live() bool
	// Size is the size of the frames it delivers.
	Size() (w, h int)
	Close() error
}

// frame is one captured picture.
type frame interface {
	// encode calls use with the frame as a JPEG of w x h at quality q.
	// The bytes are valid only during the call.
	encode(w, h, q int, use func(jpeg []byte) error) error
	// picture is the frame's pixels at full size, for the H.264 encoder;
	// valid until release.
	picture() media.Image
	// release gives the frame's memory back; the frame is not used after.
	release()
}

// openSource opens what cfg.Source names.
func openSource(cfg Config) (frameSource, error) {
	if cfg.Source == "pattern" || strings.HasPrefix(cfg.Source, "pattern:") {
		w, h := cfg.Width, cfg.Height
		if w == 0 {
			w, h = DefaultWidth, DefaultHeight
		}
		return newPatternSource(cfg.Name, w, h), nil
	}
	return openCVSource(cfg)
}

// patternSource is the synthetic moving picture: pure Go, so it works in
// every build.
type patternSource struct {
	r    *patternRenderer
	n    uint64
	pool *rgbaPool
}

var _ frameSource = (*patternSource)(nil)

func newPatternSource(name string, w, h int) *patternSource {
	return &patternSource{r: newPatternRenderer(name, w, h), pool: newRGBAPool(w, h)}
}

func (s *patternSource) Read(context.Context) (frame, error) {
	s.n++
	img := s.r.Render(s.n, time.Now())
	f := s.pool.get()
	copy(f.img.Pix, img.Pix)
	return f, nil
}

func (s *patternSource) Live() bool       { return false }
func (s *patternSource) Size() (int, int) { return s.pool.w, s.pool.h }
func (s *patternSource) Close() error     { return nil }

// rgbaPool recycles frame buffers between capture and publishing. It is a
// small bounded free list rather than a sync.Pool: a publisher holds at
// most a few frames at once (one being captured, one in the mailbox, one
// being encoded), and a free list keeps them deterministically, where a
// sync.Pool may drop them at any GC (and, under the race detector, at
// random), turning every such frame into a fresh 3.7 MB allocation.
type rgbaPool struct {
	w, h int
	free chan *imageFrame
}

// rgbaPoolSize is how many idle frames a pool keeps: enough for capture,
// mailbox and encoder to each hold one.
const rgbaPoolSize = 4

func newRGBAPool(w, h int) *rgbaPool {
	return &rgbaPool{w: w, h: h, free: make(chan *imageFrame, rgbaPoolSize)}
}

func (rp *rgbaPool) get() *imageFrame {
	select {
	case f := <-rp.free:
		return f
	default:
		return &imageFrame{img: image.NewRGBA(image.Rect(0, 0, rp.w, rp.h)), pool: rp}
	}
}

func (rp *rgbaPool) put(f *imageFrame) {
	select {
	case rp.free <- f:
	default: // full: let the garbage collector have it
	}
}

// imageFrame is a frame held as RGBA in Go memory.
type imageFrame struct {
	img     *image.RGBA
	scratch *image.RGBA // the frame scaled to another size, kept for reuse
	pool    *rgbaPool
	native  nativeImage // the frame in the encoder's own form, per build
}

var _ frame = (*imageFrame)(nil)

// encodeGo encodes the frame at w x h with pure Go scaling and encoder.
func (f *imageFrame) encodeGo(w, h, q int, use func([]byte) error) error {
	img := f.img
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		if f.scratch == nil || f.scratch.Bounds().Dx() != w || f.scratch.Bounds().Dy() != h {
			f.scratch = image.NewRGBA(image.Rect(0, 0, w, h))
		}
		scaleRGBA(f.scratch, img)
		img = f.scratch
	}
	return encodeRGBAStd(img, q, use)
}

func (f *imageFrame) picture() media.Image {
	b := f.img.Bounds()
	return media.Image{Fmt: media.RGBA, Width: b.Dx(), Height: b.Dy(), Stride: f.img.Stride, Pix: f.img.Pix}
}

func (f *imageFrame) release() {
	f.native.reset()
	if f.pool != nil {
		f.pool.put(f)
	}
}
