package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// recordTimeout bounds each JetStream request of vidhub record.
const recordTimeout = 10 * time.Second

func runRecord(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("record")
	room := fs.String("room", "", "room to record (or to stop recording with --stop)")
	layers := fs.String("layers", "h264,h264lo", "comma-separated layers to keep; presence is always kept, so a replay knows who was there")
	maxAge := fs.Duration("max-age", record.DefaultMaxAge, "keep at most this long a past: older frames go first")
	maxBytes := bytesFlag{n: record.DefaultMaxBytes, max: 1 << 50}
	fs.Var(&maxBytes, "max-bytes", "keep at most this many bytes, a `SIZE` such as 10GB: past it, the oldest frames go")
	replicas := fs.Int("replicas", 1, "brokers of a JetStream cluster that each keep a copy (1 to 5)")
	list := fs.Bool("list", false, "list the broker's recordings and exit")
	stop := fs.Bool("stop", false, "stop recording --room and delete what it holds")
	asJSON := fs.Bool("json", false, "with --list, print JSON")
	var cf clientFlags
	cf.register(fs)
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if *list && *stop {
		return usagef("--list and --stop: choose one")
	}
	if !*list && *room == "" {
		return usagef("--room is required (or --list)")
	}
	var ls []protocol.Layer
	for s := range strings.SplitSeq(*layers, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		l, err := protocol.ParseLayer(s)
		if err != nil {
			return usageError{fmt.Errorf("--layers: %w", err)}
		}
		ls = append(ls, l)
	}
	cfg := record.Config{Room: *room, Layers: ls, MaxAge: *maxAge, MaxBytes: maxBytes.n, Replicas: *replicas}
	if !*list && !*stop {
		if _, err := cfg.Check(); err != nil {
			return usageError{err}
		}
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub record", log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	switch {
	case *list:
		var infos []record.Info
		if err := withRight(rctx, nc, cf, access.RightRecord, "", func(ctx context.Context) (err error) {
			infos, err = record.List(ctx, nc)
			return err
		}); err != nil {
			return err
		}
		return printRecordings(env, infos, *asJSON)
	case *stop:
		if err := withRight(rctx, nc, cf, access.RightRecord, *room, func(ctx context.Context) error {
			return record.Stop(ctx, nc, *room)
		}); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "stopped recording room %s and deleted the recording\n", *room)
		return nil
	}
	var i record.Info
	if err := withRight(rctx, nc, cf, access.RightRecord, *room, func(ctx context.Context) (err error) {
		i, err = record.Start(ctx, nc, cfg)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "recording room %s (%s, and presence) as stream %s: keeps %v or %s, the oldest first, on %d broker(s)\n",
		i.Room, joinLayers(i.Layers), i.Stream, i.MaxAge, formatBytes(uint64(i.MaxBytes)), i.Replicas)
	return nil
}

func printRecordings(env *cmdEnv, infos []record.Info, asJSON bool) error {
	if asJSON {
		if infos == nil {
			infos = []record.Info{}
		}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	if len(infos) == 0 {
		fmt.Fprintln(env.stdout, "no recordings: start one with vidhub record --room R")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tLAYERS\tMESSAGES\tBYTES\tFROM\tTO\tKEEPS")
	for _, i := range infos {
		from, to := "-", "-"
		if !i.First.IsZero() {
			from, to = i.First.UTC().Format(time.RFC3339), i.Last.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%v or %s\n", i.Room, joinLayers(i.Layers), i.Msgs, formatBytes(i.Bytes), from, to,
			i.MaxAge, formatBytes(uint64(i.MaxBytes)))
	}
	return tw.Flush()
}

func joinLayers(ls []protocol.Layer) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l)
	}
	return strings.Join(s, ",")
}

// formatBytes writes n in the largest unit (of 1024) it fills, to a
// tenth.
func formatBytes(n uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %s", uint64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}
