//go:build !cgo || vidhub_lite

package publisher

import (
	"fmt"
)

func openCVSource(cfg Config) (frameSource, error) {
	return nil, fmt.Errorf("source %q: %w", cfg.Source, ErrNeedsOpenCV)
}

// nativeImage is empty: this build encodes in Go.
type nativeImage struct{}

func (nativeImage) reset() {}

func (f *imageFrame) encode(w, h, q int, use func([]byte) error) error {
	return f.encodeGo(w, h, q, use)
}
