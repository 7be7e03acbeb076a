package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
	"github.com/vidhub/vidhub/subscriber"
)

// viewFlags are the flags of view and join.
type viewFlags struct {
	layer    string
	headless bool
	json     bool
	dur      time.Duration
}

func (v *viewFlags) register(fs *flagSet) {
	fs.StringVar(&v.layer, "layer", string(subscriber.LayerAuto), "layer to watch: auto (lo for a grid, hi for one publisher), hi or lo")
	fs.BoolVar(&v.headless, "headless", false, "open no window: print each publisher's stats every second")
	fs.BoolVar(&v.json, "json", false, "with --headless: one JSON object per publisher per second")
	fs.DurationVar(&v.dur, "for", 0, "stop after this long (e.g. 30s); 0 runs until interrupted")
}

func (v *viewFlags) mode() (subscriber.LayerMode, error) {
	m, err := subscriber.ParseLayerMode(v.layer)
	if err != nil {
		return "", usageError{err}
	}
	if v.json && !v.headless {
		return "", usagef("--json needs --headless")
	}
	return m, nil
}

func runView(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("view")
	room := fs.String("room", "lobby", "room to watch ("+protocol.NameRule+")")
	name := fs.String("name", "", "this viewer's name in the room's presence (default: --user, else viewer-<random>)")
	from := fs.String("from", "", "replay the room's recording (vidhub record) from this moment: a time before now such as -5m, or an RFC 3339 time; empty watches live")
	speed := fs.Float64("speed", 1, "with --from: replay this many times as fast (at most 16)")
	var vf viewFlags
	var cf clientFlags
	vf.register(fs)
	cf.register(fs)
	if err := env.parse(fs, args); err != nil {
		return err
	}
	mode, err := vf.mode()
	if err != nil {
		return err
	}
	at, err := parseFrom(*from, time.Now())
	if err != nil {
		return usageError{err}
	}
	if fs.isSet("speed") && at.IsZero() {
		return usagef("--speed needs --from: a live room plays at its own pace")
	}
	if !record.ValidSpeed(*speed) {
		return usagef("--speed %v: use more than 0 and at most %d", *speed, subscriber.MaxSpeed)
	}
	if err := protocol.ValidRoom(*room); err != nil {
		return usageError{err}
	}
	if *name == "" {
		// With access control a viewer may announce itself only under its
		// own user name.
		*name = cf.user
	}
	if *name != "" {
		if err := protocol.ValidParticipant(*name); err != nil {
			return usageError{err}
		}
	}
	if !vf.headless {
		if err := subscriber.WindowAvailable(env.getenv); err != nil {
			return err
		}
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub view "+*room, log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	if !at.IsZero() {
		// A replay refused by the broker would wait out its request's
		// timeout: asking for the recording first, watched, fails at once
		// and says which right to grant.
		if err := withRight(ctx, nc, cf, access.RightReplay, *room, func(ctx context.Context) error {
			_, err := record.Get(ctx, nc, *room)
			return err
		}); err != nil {
			return fmt.Errorf("replaying room %s: %w", *room, err)
		}
	}
	rcfg := subscriber.Config{Room: *room, Name: *name, Layer: mode, Logger: log, From: at, Speed: *speed}
	return watch(ctx, env, nc, rcfg, vf)
}

// parseFrom reads --from: empty (live), or a moment before now
// (parseMoment).
func parseFrom(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseMoment("--from", s, now)
	if err == nil && !t.Before(now) {
		err = fmt.Errorf("--from %s is not in the past: the recording holds only what happened", s)
	}
	return t, err
}

// parseMoment reads a moment for flag: a negative duration before now
// ("-5m"), or an RFC 3339 time.
func parseMoment(flag, s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d > 0 {
			return time.Time{}, fmt.Errorf("%s %s: a duration goes back from now, so it is negative, e.g. -5m", flag, s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: use a time before now such as -5m or -1h30m, or an RFC 3339 time such as 2026-11-27T18:00:00Z", flag, s)
	}
	return t, nil
}

// watch joins a room and shows it: in a window, or as stats.
func watch(ctx context.Context, env *cmdEnv, nc *nats.Conn, rcfg subscriber.Config, vf viewFlags) error {
	if vf.dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, vf.dur)
		defer cancel()
	}
	rcfg.KeepFrames = !vf.headless
	if vf.headless {
		rcfg.OnStats = statsPrinter(env.stdout, rcfg.Room, vf.json)
	}
	room, err := subscriber.Join(nc, rcfg)
	if err != nil {
		return err
	}
	defer room.Close()
	if vf.headless {
		<-ctx.Done()
		return nil
	}
	return subscriber.RunWindow(ctx, room, subscriber.WindowConfig{Logger: rcfg.Logger})
}

// statsPrinter prints tile stats each interval: JSON lines, or text.
func statsPrinter(w io.Writer, room string, asJSON bool) func([]subscriber.TileStats) {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return func(stats []subscriber.TileStats) {
		mu.Lock()
		defer mu.Unlock()
		if asJSON {
			for _, s := range stats {
				_ = enc.Encode(s)
			}
			return
		}
		if len(stats) == 0 {
			fmt.Fprintf(w, "%s  room %s: no one is publishing yet\n", time.Now().Format("15:04:05"), room)
			return
		}
		for _, s := range stats {
			fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), s)
		}
	}
}
