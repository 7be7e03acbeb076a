//go:build !cgo || vidhub_lite

package media

import (
	"context"
	"fmt"
)

// CanDecodeH264 reports whether this build can decode H.264 and pass it
// through: neither the static build nor the lite build (which has no
// FFmpeg) can.
func CanDecodeH264() bool { return false }

// NewDecoder returns ErrUnavailable: this build has no decoder.
func NewDecoder() (Decoder, error) {
	return nil, fmt.Errorf("H.264 decoder: %w", ErrUnavailable)
}

// OpenH264 returns ErrUnavailable: this build has no demuxer.
func OpenH264(url string) (Demuxer, error) {
	return nil, fmt.Errorf("opening %s: %w", url, ErrUnavailable)
}

// OpenH264Context returns ErrUnavailable: this build has no demuxer.
func OpenH264Context(_ context.Context, url string) (Demuxer, error) { return OpenH264(url) }

// CreateMP4 returns ErrUnavailable: this build has no MP4 writer.
func CreateMP4(path string, w, h int) (MP4Writer, error) {
	return nil, fmt.Errorf("writing %s: %w", path, ErrUnavailable)
}
