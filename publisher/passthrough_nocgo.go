//go:build !cgo || vidhub_lite

package publisher

import (
	"context"

	"github.com/nats-io/nats.go"
)

// passthrough needs FFmpeg: the static build has none, so no source is
// ever passed through.
type passthrough struct{}

func openPassthrough(Config) (*passthrough, bool, error) { return nil, false, nil }

func (pt *passthrough) source() frameSource               { return nil }
func (pt *passthrough) codec() string                     { return "" }
func (pt *passthrough) size() (int, int)                  { return 0, 0 }
func (p *Publisher) runPassthrough(context.Context) error { return nil }
func (p *Publisher) replyGOP(*nats.Msg)                   {}
