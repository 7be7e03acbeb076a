package subscriber

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// MaxSpeed is the fastest replay.
const MaxSpeed = record.MaxSpeed

// ErrBadReplay is returned (wrapped) by Join for a replay it cannot
// start as asked.
var ErrBadReplay = errors.New("bad replay")

// replay feeds a Room from its recording, paced by the frames' capture
// times: the room's usual handlers take each message as if it came live.
type replay struct {
	rd    *record.Reader
	from  time.Time
	speed float64
}

// startReplay opens the recording of the room and starts feeding it.
// Join calls it instead of subscribing.
func (r *Room) startReplay() error {
	speed := r.cfg.Speed
	if speed == 0 {
		speed = 1
	}
	if !record.ValidSpeed(speed) {
		return fmt.Errorf("%w: speed %v: use more than 0 and at most %d", ErrBadReplay, r.cfg.Speed, MaxSpeed)
	}
	if r.cfg.From.After(time.Now()) {
		return fmt.Errorf("%w: %s is in the future: replay from a moment past, such as -5m", ErrBadReplay, r.cfg.From.Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := record.NewReader(ctx, r.nc, record.ReadConfig{Room: r.cfg.Room, From: r.cfg.From, Follow: true})
	if err != nil {
		return fmt.Errorf("replaying room %s: %w", r.cfg.Room, err)
	}
	r.replay = &replay{rd: rd, from: r.cfg.From, speed: speed}
	r.mu.Lock()
	_ = r.subscribeLayer(r.wantLayer())
	r.mu.Unlock()
	rctx, rcancel := context.WithCancel(context.Background())
	r.cancel = rcancel
	r.wg.Go(func() { r.loop(rctx) })
	r.wg.Go(func() { r.feed(rctx) })
	r.log.Info("replaying room", "from", r.cfg.From.UTC().Format(time.RFC3339Nano), "speed", speed, "layer", r.Layer())
	return nil
}

// feed plays the recording to the room's handlers, from the keyframe
// at or before Config.From of every publisher on, paced by capture time.
func (r *Room) feed(ctx context.Context) {
	defer r.replay.rd.Close()
	err := record.Play(ctx, r.replay.rd, r.replay.from, r.replay.speed, func(it record.Item) { r.dispatch(it.Msg) })
	switch {
	case err == nil:
		r.log.Info("the replay reached the recording's end")
	case ctx.Err() == nil:
		r.log.Warn("reading the recording stopped", "err", err)
	}
}

// dispatch hands a recorded message to the room's handler for it.
func (r *Room) dispatch(m *nats.Msg) {
	if isFrame(m) {
		r.onFrame(m)
	} else {
		r.onPresence(m)
	}
}

// isFrame reports whether m is a frame (not presence).
func isFrame(m *nats.Msg) bool {
	s, err := protocol.ParseSubject(m.Subject)
	return err == nil && s.Frame()
}
