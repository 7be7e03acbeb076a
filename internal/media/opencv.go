package media

import (
	"image"
	"image/color"
)

// This file declares what vidhub takes from OpenCV: capture (cameras,
// files, stream URLs, GStreamer pipelines), BGR pictures with JPEG
// coding and scaling by libjpeg(-turbo) and OpenCV, drawing, and the
// desktop window. The full build implements it over gocv
// (opencv_cv.go); the lite and static builds have no OpenCV, and every
// constructor there returns an error wrapping ErrNoOpenCV
// (opencv_none.go). OpenCVAvailable says which, so callers can pick
// their pure Go path instead.

// ErrNoOpenCV is returned (wrapped) by every OpenCV constructor of a
// build without OpenCV: the static build and the lite build. It is also
// an ErrUnavailable: errors.Is(err, ErrUnavailable) holds for it.
var ErrNoOpenCV error = &lackError{"this build of vidhub has no OpenCV (the static build, built with CGO_ENABLED=0, and the lite build have none); use the full build"}

// lackError is an error for a part a build lacks: it says which part,
// and matches ErrUnavailable.
type lackError struct{ msg string }

func (e *lackError) Error() string        { return e.msg }
func (e *lackError) Is(target error) bool { return target == ErrUnavailable }

// Describe says what native media code this build has, for vidhub
// version: the OpenCV version of the full build, or what the lite and
// static builds do without.
func Describe() string {
	switch {
	case OpenCVAvailable():
		return "OpenCV " + openCVVersion()
	case CanEncodeH264():
		return "lite build, no OpenCV, H.264 encoding by libx264"
	default:
		return "static build, no OpenCV"
	}
}

// Picture is a BGR picture (3 bytes a pixel, as BGR24) in OpenCV's
// memory. It is not safe for concurrent use; Close gives its memory back
// and must be called once it is no longer needed (the matprofile build
// counts what is left open: MatCount).
type Picture interface {
	// Image views the picture's pixels without copying: valid until
	// Close, and writable (a decoder may fill them).
	Image() Image
	// Size is the picture's size.
	Size() (w, h int)
	// EncodeJPEG calls use with the picture scaled to w x h (OpenCV's
	// area interpolation when shrinking, linear when growing) and coded
	// as a JPEG of quality q by libjpeg(-turbo). The bytes are valid
	// only during the call.
	EncodeJPEG(w, h, q int, use func(jpeg []byte) error) error
	Close()
}

// Canvas is a Picture that can be drawn on.
type Canvas interface {
	Picture
	// Fill paints the whole canvas c.
	Fill(c color.RGBA)
	// Draw scales p into r (area interpolation), which must lie inside
	// the canvas.
	Draw(p Picture, r image.Rectangle)
	// Rect draws r's outline thick pixels wide, or fills it if thick is
	// negative.
	Rect(r image.Rectangle, c color.RGBA, thick int)
	// Text writes text in OpenCV's Hershey simplex font at scale, anti-
	// aliased, with its baseline starting at at.
	Text(text string, at image.Point, scale float64, c color.RGBA, thick int)
	// TextSize is the size of text as Text would write it, and the
	// depth of its descenders below the baseline.
	TextSize(text string, scale float64, thick int) (size image.Point, baseline int)
}

// CaptureConfig says what to ask of a camera. Zero values leave the
// camera's own settings.
type CaptureConfig struct {
	Width, Height int
	FPS           float64
}

// Capture reads frames from a camera, file, stream or GStreamer
// pipeline. It is not goroutine-safe: one goroutine per device.
type Capture interface {
	// Read captures the next frame; ok is false when none came (the end
	// of a file, a camera unplugged, a stream gone). The caller closes
	// the picture.
	Read() (p Picture, ok bool)
	Close() error
}

// Window is a desktop window (OpenCV's HighGUI). HighGUI must run on
// the main OS thread, and WaitKey pumps its events: call it after each
// Show.
type Window interface {
	// Show draws p in the window, scaled to it.
	Show(p Picture)
	// WaitKey waits up to ms milliseconds for a key and returns it, or
	// -1 if none was pressed.
	WaitKey(ms int) int
	// Visible reports whether the window is still on screen: false once
	// the user has closed it.
	Visible() bool
	Close()
}
