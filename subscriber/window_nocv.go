//go:build !cgo || vidhub_lite

package subscriber

import (
	"context"
	"fmt"
	"log/slog"
)

// WindowConfig says how to show a room.
type WindowConfig struct {
	Title         string
	Width, Height int
	Logger        *slog.Logger
	OnFrame       func(tiles int)
}

var errNoOpenCV = fmt.Errorf("%w: this build of vidhub has no OpenCV (built with CGO_ENABLED=0); use --headless for stats in the terminal, watch in a browser through vidhub web, or use the full build", ErrNoWindow)

// WindowAvailable reports why a window cannot be opened: this build has
// no OpenCV.
func WindowAvailable(func(string) string) error { return errNoOpenCV }

// RunWindow needs OpenCV; this build has none.
func RunWindow(context.Context, *Room, WindowConfig) error { return errNoOpenCV }
