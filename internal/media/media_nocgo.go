//go:build !cgo

package media

import "fmt"

// H264Available reports whether this build can encode and decode H.264.
func H264Available() bool { return false }

// NewEncoder returns ErrUnavailable: this build has no encoder.
func NewEncoder(EncoderConfig) (Encoder, error) {
	return nil, fmt.Errorf("H.264 encoder: %w", ErrUnavailable)
}

// NewDecoder returns ErrUnavailable: this build has no decoder.
func NewDecoder() (Decoder, error) {
	return nil, fmt.Errorf("H.264 decoder: %w", ErrUnavailable)
}

// OpenH264 returns ErrUnavailable: this build has no demuxer.
func OpenH264(url string) (Demuxer, error) {
	return nil, fmt.Errorf("opening %s: %w", url, ErrUnavailable)
}
