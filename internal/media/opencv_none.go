//go:build !cgo || vidhub_lite

package media

import "fmt"

// OpenCVAvailable reports whether this build has OpenCV: neither the
// static build nor the lite build has.
func OpenCVAvailable() bool { return false }

func openCVVersion() string { return "" }

// OpenCamera returns ErrNoOpenCV: this build has no capture.
func OpenCamera(index int, _ CaptureConfig) (Capture, error) {
	return nil, fmt.Errorf("camera %d: %w", index, ErrNoOpenCV)
}

// OpenV4L2 returns ErrNoOpenCV: this build has no capture.
func OpenV4L2(dev string, _ CaptureConfig) (Capture, error) {
	return nil, fmt.Errorf("camera %s: %w", dev, ErrNoOpenCV)
}

// OpenVideo returns ErrNoOpenCV: this build has no capture.
func OpenVideo(name string) (Capture, error) {
	return nil, fmt.Errorf("%s: %w", name, ErrNoOpenCV)
}

// OpenGStreamer returns ErrNoOpenCV: this build has no capture.
func OpenGStreamer(pipeline string) (Capture, error) {
	return nil, fmt.Errorf("GStreamer pipeline %q: %w", pipeline, ErrNoOpenCV)
}

// NewPicture returns ErrNoOpenCV: this build has no OpenCV pictures.
func NewPicture(w, h int) (Picture, error) {
	return nil, fmt.Errorf("picture of %dx%d: %w", w, h, ErrNoOpenCV)
}

// NewCanvas returns ErrNoOpenCV: this build has no OpenCV drawing.
func NewCanvas(w, h int) (Canvas, error) {
	return nil, fmt.Errorf("canvas of %dx%d: %w", w, h, ErrNoOpenCV)
}

// PictureFrom returns ErrNoOpenCV: this build has no OpenCV pictures.
func PictureFrom(Image) (Picture, error) {
	return nil, fmt.Errorf("picture: %w", ErrNoOpenCV)
}

// DecodeJPEG returns ErrNoOpenCV: this build decodes JPEG with the
// standard library (image/jpeg), outside this package.
func DecodeJPEG([]byte) (Picture, error) {
	return nil, fmt.Errorf("JPEG decoding: %w", ErrNoOpenCV)
}

// NewWindow returns ErrNoOpenCV: this build has no desktop window.
func NewWindow(title string, _, _ int) (Window, error) {
	return nil, fmt.Errorf("window %q: %w", title, ErrNoOpenCV)
}
