package record

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
}

// Export writes participant Name's H.264 layer from the recording of Room
// between From and To into an MP4 file, as it was recorded: nothing is
// decoded or encoded. The file starts at the keyframe at or before From.
// A gap in the recording (a publisher offline, a frame lost) is a gap in
// the file: what follows it waits for the next keyframe. JPEG layers are
// not exported (MP4 is for the H.264 layers, a twentieth of the bytes):
// record with --layers h264 to export.
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
	js, err := jetstream.New(nc)
	if err != nil {
		return out, err
	}
	a, _ := protocol.NewAddress(cfg.Room, cfg.Name)
	start := cfg.From.Add(-LookBack)
	cons, err := js.OrderedConsumer(ctx, StreamName(cfg.Room), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{a.FrameSubject(cfg.Layer)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	})
	if err != nil {
		return out, fmt.Errorf("reading the recording of room %s: %w", cfg.Room, explain(err))
	}
	var (
		w     media.MP4Writer
		gop   []jetstream.Msg // the GOP before From, from its keyframe
		chain protocol.Chain
		done  bool
	)
	write := func(m jetstream.Msg, meta protocol.FrameMeta) error {
		if pass, _ := chain.Offer(cfg.Layer, meta); !pass {
			out.Skipped++
			return nil
		}
		if w == nil {
			if w, err = media.CreateMP4(cfg.Out, meta.Width, meta.Height); err != nil {
				return err
			}
			out.Width, out.Height, out.First = meta.Width, meta.Height, meta.CaptureTime()
		}
		if err := w.Write(m.Data(), time.Duration(meta.Time), meta.Key); err != nil {
			return err
		}
		out.Frames++
		out.Bytes += len(m.Data())
		out.Last = meta.CaptureTime()
		if meta.Key {
			out.Keyframes++
		}
		return nil
	}
	for !done {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out, closeWith(w, fmt.Errorf("reading the recording: %w", explain(err)))
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := protocol.ParseLayerFrame(cfg.Layer, m.Headers(), m.Data())
			if err != nil {
				out.Skipped++ // not a frame: never published by vidhub
				continue
			}
			at := meta.CaptureTime()
			switch {
			case at.After(cfg.To):
				done = true
			case at.Before(cfg.From):
				if meta.Key {
					gop = gop[:0]
				}
				if meta.Key || len(gop) > 0 {
					gop = append(gop, m)
				}
				continue
			}
			if done {
				break
			}
			for _, g := range gop {
				gm, _ := protocol.ParseLayerFrame(cfg.Layer, g.Headers(), g.Data())
				if err := write(g, gm); err != nil {
					return out, closeWith(w, err)
				}
			}
			gop = nil
			if err := write(m, meta); err != nil {
				return out, closeWith(w, err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, closeWith(w, fmt.Errorf("reading the recording: %w", err))
		}
		if got == 0 {
			done = true // the end of the recording: To is later than its last frame
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
