package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

func runSnapshot(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("snapshot")
	room := fs.String("room", "", "recorded room")
	name := fs.String("name", "", "participant whose picture to take")
	layer := fs.String("layer", "", "layer to take it from (default: the first of h264, hi, h264lo, lo the recording keeps)")
	at := fs.String("at", "", "moment: a time before now such as -30s, or an RFC 3339 time (default: the newest picture)")
	quality := fs.Int("quality", 90, "JPEG quality of a picture decoded from H.264, 1 to 100")
	out := fs.String("out", "", "JPEG file to write")
	var cf clientFlags
	cf.register(fs)
	// VIDHUB_OUT is the bench's folder; this is a file.
	fs.envVar("out", "VIDHUB_SNAPSHOT_OUT")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if *room == "" || *name == "" || *out == "" {
		return usagef("--room, --name and --out are required")
	}
	if _, err := protocol.NewAddress(*room, *name); err != nil {
		return usageError{err}
	}
	cfg := record.SnapshotConfig{Room: *room, Name: *name, Quality: *quality}
	if *layer != "" {
		l, err := protocol.ParseLayer(*layer)
		if err != nil {
			return usageError{fmt.Errorf("--layer: %w", err)}
		}
		cfg.Layer = l
	}
	if *at != "" {
		t, err := parseMoment("--at", *at, time.Now())
		if err != nil {
			return usageError{err}
		}
		cfg.At = t
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub snapshot", log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var s record.Snapshot
	if err := withRight(sctx, nc, cf, access.RightReplay, *room, func(ctx context.Context) (err error) {
		s, err = record.TakeSnapshot(ctx, nc, cfg)
		return err
	}); err != nil {
		return err
	}
	if err := os.WriteFile(*out, s.JPEG, 0o644); err != nil {
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	fmt.Fprintf(env.stdout, "wrote %s: %s in room %s, %dx%d from %s, captured %s\n", *out, *name, *room, s.Width, s.Height, s.Layer,
		s.At.UTC().Format(time.RFC3339Nano))
	return nil
}
