//go:build cgo && vidhub_lite

package media

import (
	"errors"
	"testing"
)

// TestLiteAvailable checks what the lite build says it can do: encode,
// but neither decode nor demux.
func TestLiteAvailable(t *testing.T) {
	if !CanEncodeH264() {
		t.Error("CanEncodeH264 is false in the lite build, which links libx264")
	}
	if CanDecodeH264() || H264Available() {
		t.Errorf("CanDecodeH264 %v, H264Available %v in the lite build: want false, it has no decoder", CanDecodeH264(), H264Available())
	}
	if _, err := NewDecoder(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewDecoder: %v, want ErrUnavailable", err)
	}
	if _, err := OpenH264("in.mp4"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("OpenH264: %v, want ErrUnavailable", err)
	}
}
