//go:build !cgo

package media

import "fmt"

// CanEncodeH264 reports whether this build can encode H.264: the static
// build cannot.
func CanEncodeH264() bool { return false }

// NewEncoder returns ErrUnavailable: this build has no encoder.
func NewEncoder(EncoderConfig) (Encoder, error) {
	return nil, fmt.Errorf("H.264 encoder: %w", ErrUnavailable)
}
