package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// LookBack is how far before the moment asked for a replay or export
// reads a recording, to find the keyframe at or before it: publishers
// send one at least every --keyint (2 s by default), passed-through
// cameras every few seconds.
const LookBack = 10 * time.Second

// ErrNothing is returned (wrapped) by Export when the recording holds no
// picture of the participant in the span asked for.
var ErrNothing = errors.New("the recording holds nothing of that span")

// ExportConfig says what to export.
type ExportConfig struct {
	Room, Name string
	// Layer is the H.264 layer to export; empty means protocol.H264.
	Layer    protocol.Layer
	From, To time.Time
	// Out is the MP4 file to write.
	Out string
}

// Exported says what Export wrote.
type Exported struct {
	Frames    int       `json:"frames"`
	Keyframes int       `json:"keyframes"`
	Skipped   int       `json:"skipped"` // access units after a gap, until the next keyframe
	Bytes     int       `json:"bytes"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	First     time.Time `json:"first"` // capture time of the first frame written
	Last      time.Time `json:"last"`
	// Resized, when not zero, is the capture time of the frame at which
	// the recording changes size, to NextWidth x NextHeight (a publisher
	// adapting to its viewers' path halves it): an MP4 track has one
	// size, so the file ends before that frame. Exporting again from
	// Resized writes the rest.
	Resized    time.Time `json:"resized,omitzero"`
	NextWidth  int       `json:"next_width,omitempty"`
	NextHeight int       `json:"next_height,omitempty"`
}

// ResizedNote says where the recording changed size and how to export
// the rest, or is empty when it did not within the span.
func (e Exported) ResizedNote() string {
	if e.Resized.IsZero() {
		return ""
	}
	at := e.Resized.UTC().Format(time.RFC3339Nano)
	return fmt.Sprintf("the recording changes size at %s (%dx%d → %dx%d): exported up to there; export again with --from %s for the rest",
		at, e.Width, e.Height, e.NextWidth, e.NextHeight, at)
}

// Export writes participant Name's H.264 layer from the recording of Room
// between From and To into an MP4 file, as it was recorded: nothing is
// decoded or encoded. The file starts at the keyframe at or before From.
// A gap in the recording (a publisher offline, a frame lost) is a gap in
// the file: what follows it waits for the next keyframe. JPEG layers are
// not exported (MP4 is for the H.264 layers, a twentieth of the bytes):
// record with --layers h264 to export. Where the layer changes size, the
// file ends (Exported.Resized): an MP4 track has one size.
func Export(ctx context.Context, nc *nats.Conn, cfg ExportConfig) (Exported, error) {
	var out Exported
	if cfg.Layer == "" {
		cfg.Layer = protocol.H264
	}
	if _, err := protocol.NewAddress(cfg.Room, cfg.Name); err != nil {
		return out, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if cfg.Layer.Codec() != protocol.CodecH264 {
		return out, fmt.Errorf("%w: layer %s is JPEG: export writes the H.264 layers (h264, h264lo) into MP4 as they are; record them with --layers h264", ErrBadConfig, cfg.Layer)
	}
	if !cfg.To.After(cfg.From) {
		return out, fmt.Errorf("%w: the span from %s to %s is empty: --to must come after --from", ErrBadConfig,
			cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339))
	}
	if cfg.Out == "" {
		return out, fmt.Errorf("%w: no file to write: name one, e.g. clip.mp4", ErrBadConfig)
	}
	info, err := Get(ctx, nc, cfg.Room)
	if err != nil {
		return out, err
	}
	if !slices.Contains(info.Layers, cfg.Layer) {
		return out, fmt.Errorf("%w: the recording of room %s keeps %v, not %s", ErrBadConfig, cfg.Room, info.Layers, cfg.Layer)
	}
	a, _ := protocol.NewAddress(cfg.Room, cfg.Name)
	rd, err := NewReader(ctx, nc, ReadConfig{Room: cfg.Room, From: cfg.From, Subjects: []string{a.FrameSubject(cfg.Layer)}})
	if err != nil {
		return out, err
	}
	defer rd.Close()
	var (
		w     media.MP4Writer
		chain protocol.Chain
	)
	for {
		it, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, closeWith(w, err)
		}
		if !it.Frame {
			out.Skipped++ // not a frame: never published by vidhub
			continue
		}
		if it.At.After(cfg.To) {
			break
		}
		meta := it.Meta
		if pass, _ := chain.Offer(cfg.Layer, meta); !pass {
			out.Skipped++
			continue
		}
		if w != nil && (meta.Width != out.Width || meta.Height != out.Height) {
			if meta.CaptureTime().After(cfg.From) {
				out.Resized, out.NextWidth, out.NextHeight = meta.CaptureTime(), meta.Width, meta.Height
				break
			}
			// Only the lead-in before From is at the old size: the file
			// starts over here.
			if err := w.Close(); err != nil {
				return out, err
			}
			w, out = nil, Exported{Skipped: out.Skipped}
		}
		if w == nil && !meta.Key {
			out.Skipped++ // a new size starts with a keyframe
			continue
		}
		if w == nil {
			if w, err = media.CreateMP4(cfg.Out, meta.Width, meta.Height); err != nil {
				return out, err
			}
			out.Width, out.Height, out.First = meta.Width, meta.Height, meta.CaptureTime()
		}
		if err := w.Write(it.Msg.Data, time.Duration(meta.Time), meta.Key); err != nil {
			return out, closeWith(w, err)
		}
		out.Frames++
		out.Bytes += len(it.Msg.Data)
		out.Last = meta.CaptureTime()
		if meta.Key {
			out.Keyframes++
		}
	}
	if w == nil {
		return out, fmt.Errorf("%s of room %s from %s to %s: %w", cfg.Name, cfg.Room, cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339), ErrNothing)
	}
	return out, w.Close()
}

// closeWith closes w, if open, and returns err.
func closeWith(w media.MP4Writer, err error) error {
	if w != nil {
		_ = w.Close()
	}
	return err
}
