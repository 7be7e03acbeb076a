package subscriber

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// MaxSpeed is the fastest replay.
const MaxSpeed = 16

// ErrBadReplay is returned (wrapped) by Join for a replay it cannot
// start as asked.
var ErrBadReplay = errors.New("bad replay")

// replay feeds a Room from its recording, paced by the frames' capture
// times: the room's usual handlers take each message as if it came live.
type replay struct {
	cons  jetstream.Consumer
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
	if speed < 0 || speed > MaxSpeed || math.IsNaN(speed) {
		return fmt.Errorf("%w: speed %v: use more than 0 and at most %d", ErrBadReplay, r.cfg.Speed, MaxSpeed)
	}
	if r.cfg.From.After(time.Now()) {
		return fmt.Errorf("%w: %s is in the future: replay from a moment past, such as -5m", ErrBadReplay, r.cfg.From.Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := record.Get(ctx, r.nc, r.cfg.Room); err != nil {
		return fmt.Errorf("replaying room %s: %w", r.cfg.Room, err)
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return err
	}
	start := r.cfg.From.Add(-record.LookBack)
	cons, err := js.OrderedConsumer(ctx, record.StreamName(r.cfg.Room), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	})
	if err != nil {
		return fmt.Errorf("replaying room %s: %w", r.cfg.Room, err)
	}
	r.replay = &replay{cons: cons, from: r.cfg.From, speed: speed}
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

// feed reads the recording and hands each message to the room at its
// time. What was recorded before Config.From is held back, per subject
// from its last keyframe on (presence: the last beat), and handed over
// at once when the replay reaches From, so that every tile starts from a
// keyframe at or before it.
func (r *Room) feed(ctx context.Context) {
	it, err := r.replay.cons.Messages()
	if err != nil {
		r.log.Warn("cannot read the recording", "err", err)
		return
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	from, speed := r.replay.from, r.replay.speed
	held := map[string][]*nats.Msg{} // by subject, until From
	var order []string               // subjects in the order first held
	var wall time.Time               // when the replay reached From; zero until then
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		jm, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				r.log.Warn("reading the recording stopped", "err", err)
			}
			return
		}
		m := &nats.Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}
		at, key := replayTime(jm, m)
		if wall.IsZero() && at.Before(from) {
			subj := m.Subject
			if _, ok := held[subj]; !ok {
				order = append(order, subj)
			}
			switch {
			case key || !isFrame(m): // a GOP (or JPEG) starts; presence: the last beat
				held[subj] = append(held[subj][:0], m)
			case len(held[subj]) > 0: // a delta of the GOP held
				held[subj] = append(held[subj], m)
			}
			continue
		}
		if wall.IsZero() {
			wall = time.Now()
			for _, subj := range order {
				for _, h := range held[subj] {
					r.dispatch(h)
				}
			}
			clear(held)
		}
		due := wall.Add(time.Duration(float64(at.Sub(from)) / speed))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		r.dispatch(m)
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
	return err == nil && !s.Presence && !s.Key
}

// replayTime is when m happened: a frame's capture time, else when the
// broker stored it; key reports a keyframe.
func replayTime(jm jetstream.Msg, m *nats.Msg) (at time.Time, key bool) {
	if isFrame(m) {
		if meta, err := protocol.ParseFrameHeader(m.Header); err == nil && meta.Time > 0 {
			return meta.CaptureTime(), meta.Key
		}
	}
	if md, err := jm.Metadata(); err == nil {
		return md.Timestamp, false
	}
	return time.Now(), false
}
