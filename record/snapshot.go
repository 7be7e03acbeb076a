package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// SnapshotConfig says which picture to take.
type SnapshotConfig struct {
	Room, Name string
	// Layer is the layer to take it from; empty means the first of h264,
	// hi, h264lo and lo that the recording keeps.
	Layer protocol.Layer
	// At is the moment; zero means the newest picture recorded.
	At time.Time
	// Quality of the JPEG written from an H.264 picture; 0 means 90.
	Quality int
}

// Snapshot is a picture taken from a recording.
type Snapshot struct {
	JPEG          []byte
	Width, Height int
	Layer         protocol.Layer
	At            time.Time // the picture's capture time
}

// TakeSnapshot returns participant Name's picture at cfg.At (the last one
// captured at or before it) from the recording of Room, as a JPEG: a
// recorded JPEG as it is, an H.264 picture decoded from the keyframe
// before it and encoded (the full build decodes H.264; the others say
// they cannot).
func TakeSnapshot(ctx context.Context, nc *nats.Conn, cfg SnapshotConfig) (Snapshot, error) {
	var out Snapshot
	a, err := protocol.NewAddress(cfg.Room, cfg.Name)
	if err != nil {
		return out, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if cfg.Quality == 0 {
		cfg.Quality = 90
	}
	if cfg.Quality < 1 || cfg.Quality > 100 {
		return out, fmt.Errorf("%w: JPEG quality %d: use 1 to 100", ErrBadConfig, cfg.Quality)
	}
	info, err := Get(ctx, nc, cfg.Room)
	if err != nil {
		return out, err
	}
	if cfg.Layer == "" {
		for _, l := range []protocol.Layer{protocol.H264, protocol.Hi, protocol.H264Lo, protocol.Lo} {
			if slices.Contains(info.Layers, l) {
				cfg.Layer = l
				break
			}
		}
	}
	if !slices.Contains(info.Layers, cfg.Layer) {
		return out, fmt.Errorf("%w: the recording of room %s keeps %v, not %q", ErrBadConfig, cfg.Room, info.Layers, cfg.Layer)
	}
	at := cfg.At
	if at.IsZero() {
		at = time.Now()
	}
	// The frames that lead into the moment just after at: for H.264, the
	// run from the last keyframe on; for JPEG, the last frame.
	rd, err := NewReader(ctx, nc, ReadConfig{Room: cfg.Room, From: at.Add(time.Nanosecond), Subjects: []string{a.FrameSubject(cfg.Layer)}})
	if err != nil {
		return out, err
	}
	defer rd.Close()
	var run [][]byte
	var metas []protocol.FrameMeta
	for {
		it, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) || (err == nil && !it.Before) {
			break
		}
		if err != nil {
			return out, err
		}
		if it.Frame {
			run, metas = append(run, it.Msg.Data), append(metas, it.Meta)
		}
	}
	if len(run) == 0 {
		return out, fmt.Errorf("%s of room %s at %s: %w", cfg.Name, cfg.Room, at.Format(time.RFC3339), ErrNothing)
	}
	last := metas[len(metas)-1]
	out.Layer, out.At, out.Width, out.Height = cfg.Layer, last.CaptureTime(), last.Width, last.Height
	if cfg.Layer.Codec() == protocol.CodecJPEG {
		out.JPEG = bytes.Clone(run[len(run)-1])
		return out, nil
	}
	dec, err := media.NewDecoder()
	if err != nil {
		return out, fmt.Errorf("decoding %s's picture: %w", cfg.Name, err)
	}
	defer dec.Close()
	for i, m := range run {
		if _, err := dec.Decode(m); err != nil {
			return out, fmt.Errorf("decoding %s's picture (frame %d of the GOP): %w", cfg.Name, i, err)
		}
	}
	w, h := dec.Size()
	if w <= 0 || h <= 0 {
		return out, fmt.Errorf("decoding %s's picture: the decoder gave none", cfg.Name)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if err := dec.Picture(media.Image{Fmt: media.RGBA, Width: w, Height: h, Stride: img.Stride, Pix: img.Pix}); err != nil {
		return out, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: cfg.Quality}); err != nil {
		return out, err
	}
	out.JPEG, out.Width, out.Height = buf.Bytes(), w, h
	return out, nil
}
