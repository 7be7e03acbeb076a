//go:build !cgo || vidhub_lite

package media

import (
	"errors"
	"strings"
	"testing"
)

// TestNoOpenCV checks that a build without OpenCV says so from every
// constructor, as an ErrNoOpenCV that is an ErrUnavailable.
func TestNoOpenCV(t *testing.T) {
	if OpenCVAvailable() {
		t.Fatal("OpenCVAvailable in a build without OpenCV")
	}
	if d := Describe(); !strings.Contains(d, "no OpenCV") {
		t.Errorf("Describe() = %q, want it to say there is no OpenCV", d)
	}
	errs := map[string]error{}
	_, errs["OpenCamera"] = OpenCamera(0, CaptureConfig{})
	_, errs["OpenV4L2"] = OpenV4L2("/dev/video0", CaptureConfig{})
	_, errs["OpenVideo"] = OpenVideo("clip.mp4")
	_, errs["OpenGStreamer"] = OpenGStreamer("videotestsrc ! appsink")
	_, errs["NewPicture"] = NewPicture(2, 2)
	_, errs["NewCanvas"] = NewCanvas(2, 2)
	_, errs["PictureFrom"] = PictureFrom(Image{})
	_, errs["DecodeJPEG"] = DecodeJPEG(nil)
	_, errs["NewWindow"] = NewWindow("w", 2, 2)
	for name, err := range errs {
		if !errors.Is(err, ErrNoOpenCV) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no OpenCV") {
			t.Errorf("%s: %v; want ErrNoOpenCV (an ErrUnavailable) saying there is no OpenCV", name, err)
		}
	}
	if MatCount() != -1 {
		t.Errorf("MatCount() = %d, want -1 (not counted)", MatCount())
	}
}
