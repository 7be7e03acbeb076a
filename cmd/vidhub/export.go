package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// exportTimeout bounds an export: reading a span of a recording from the
// broker and writing it out.
const exportTimeout = 5 * time.Minute

func runExport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("export")
	room := fs.String("room", "", "recorded room")
	name := fs.String("name", "", "participant whose video to export")
	layer := fs.String("layer", string(protocol.H264), "H.264 layer to export: h264 or h264lo")
	from := fs.String("from", "", "start: a time before now such as -7s, or an RFC 3339 time (the file starts at the keyframe at or before it)")
	to := fs.String("to", "", "end: a time such as -2s, or an RFC 3339 time (default: now)")
	out := fs.String("out", "", "MP4 file to write")
	var cf clientFlags
	cf.register(fs)
	// VIDHUB_OUT is the bench's folder; this is a file.
	fs.envVar("out", "VIDHUB_EXPORT_OUT")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	now := time.Now()
	if *room == "" || *name == "" || *from == "" || *out == "" {
		return usagef("--room, --name, --from and --out are required")
	}
	if _, err := protocol.NewAddress(*room, *name); err != nil {
		return usageError{err}
	}
	l, err := protocol.ParseLayer(*layer)
	if err != nil {
		return usageError{fmt.Errorf("--layer: %w", err)}
	}
	start, err := parseFrom(*from, now)
	if err != nil {
		return usageError{err}
	}
	end := now
	if *to != "" {
		if end, err = parseMoment("--to", *to, now); err != nil {
			return usageError{err}
		}
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub export", log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	ectx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	var ex record.Exported
	if err := withRight(ectx, nc, cf, access.RightReplay, *room, func(ctx context.Context) (err error) {
		ex, err = record.Export(ctx, nc, record.ExportConfig{Room: *room, Name: *name, Layer: l, From: start, To: end, Out: *out})
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s: %d frames (%d keyframes) of %s in room %s, %dx%d, %s from %s to %s, as recorded (not re-encoded)",
		*out, ex.Frames, ex.Keyframes, *name, *room, ex.Width, ex.Height, formatBytes(uint64(ex.Bytes)),
		ex.First.UTC().Format(time.RFC3339Nano), ex.Last.UTC().Format(time.RFC3339Nano))
	if ex.Skipped > 0 {
		fmt.Fprintf(env.stdout, "; %d frames after gaps in the recording left out, up to the next keyframe", ex.Skipped)
	}
	if note := ex.ResizedNote(); note != "" {
		fmt.Fprintf(env.stdout, "; %s", note)
	}
	fmt.Fprintln(env.stdout)
	return nil
}
