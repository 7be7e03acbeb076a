package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// MaxReplaySpeed is the fastest a viewing socket replays a recording
// (speed=), as vidhub view --speed.
const MaxReplaySpeed = record.MaxSpeed

// recordingTimeout bounds the broker's answers about a recording.
const recordingTimeout = 5 * time.Second

// replayQuery is a viewing socket's replay parameters, checked.
type replayQuery struct {
	on    bool // from= was given
	from  time.Time
	speed float64
}

// parseReplay reads from= (an RFC 3339 time, or a negative duration
// back from now such as -30s) and speed= (above 0, at most
// MaxReplaySpeed; 1 when absent) of a viewing socket's query. Every
// error wraps ErrBadRequest and says what a good value looks like.
func parseReplay(q url.Values, now time.Time) (replayQuery, error) {
	s, sp := q.Get("from"), q.Get("speed")
	if s == "" {
		if sp != "" {
			return replayQuery{}, fmt.Errorf("%w: speed=%s without from=: speed is a replay's, so say from when, e.g. from=-30s", ErrBadRequest, sp)
		}
		return replayQuery{}, nil
	}
	rq := replayQuery{on: true, speed: 1}
	if d, err := time.ParseDuration(s); err == nil {
		if d >= 0 {
			return replayQuery{}, fmt.Errorf("%w: from=%s: a duration goes back from now, so it is negative, e.g. from=-30s", ErrBadRequest, s)
		}
		rq.from = now.Add(d)
	} else {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return replayQuery{}, fmt.Errorf("%w: from=%q: use a moment past, as a negative duration such as -30s or -1h30m, or an RFC 3339 time such as 2026-11-27T18:00:00Z", ErrBadRequest, s)
		}
		if t.After(now) {
			return replayQuery{}, fmt.Errorf("%w: from=%s is in the future (the gateway's clock says %s): a recording holds only what happened", ErrBadRequest, s, now.UTC().Format(time.RFC3339))
		}
		rq.from = t
	}
	if sp != "" {
		v, err := strconv.ParseFloat(sp, 64)
		if err != nil || !record.ValidSpeed(v) {
			return replayQuery{}, fmt.Errorf("%w: speed=%q: use a number above 0, at most %d (1 is as recorded, 2 twice as fast)", ErrBadRequest, sp, MaxReplaySpeed)
		}
		rq.speed = v
	}
	return rq, nil
}

// recordingError answers a request about a recording that cannot be
// read: 404 when there is none (the room is not recorded, or the broker
// has no JetStream), 503 when the broker did not answer. It returns
// the status and the reason to show.
func recordingError(room string, err error) (int, string) {
	switch {
	case errors.Is(err, record.ErrNotRecording):
		return http.StatusNotFound, fmt.Sprintf("room %s is not recorded: there is nothing to replay (start a recording with vidhub record --room %s)", room, room)
	case errors.Is(err, record.ErrNoJetStream):
		return http.StatusNotFound, "nothing is recorded here: " + record.ErrNoJetStream.Error()
	}
	return http.StatusServiceUnavailable, fmt.Sprintf("the broker did not say whether room %s is recorded: %v; try again", room, err)
}

// recordingDoc is what GET /api/rooms/{room}/recording answers.
type recordingDoc struct {
	Recording bool `json:"recording"`
	// First and Last are the window the recording keeps (RFC 3339);
	// absent when it keeps nothing yet.
	First  *time.Time       `json:"first,omitempty"`
	Last   *time.Time       `json:"last,omitempty"`
	Layers []protocol.Layer `json:"layers,omitempty"`
	// Replay says whether the request's token may replay the room.
	Replay bool `json:"replay"`
	// Reason says why there is no recording to replay, or no right to.
	Reason string `json:"reason,omitempty"`
}

// serveRecording describes the recording of a room: whether there is
// one, the window it keeps and its layers, and whether the request may
// replay it. A room without a recording, and a broker without
// JetStream, are a 404 with recording false, never a server error.
func (g *Gateway) serveRecording(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if err := protocol.ValidRoom(room); err != nil {
		g.badRequest(w, err)
		return
	}
	gr, ok := g.allow(w, r, room, func(c webtoken.Claims) error { return c.CanView(room) })
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordingTimeout)
	defer cancel()
	info, err := record.Get(ctx, g.nc, room)
	if err != nil {
		code, reason := recordingError(room, err)
		w.WriteHeader(code)
		writeJSON(w, recordingDoc{Reason: reason})
		return
	}
	doc := recordingDoc{Recording: true, Layers: info.Layers, Replay: true}
	if !info.First.IsZero() {
		first, last := info.First.UTC(), info.Last.UTC()
		doc.First, doc.Last = &first, &last
	}
	if err := canReplay(gr.c, room); err != nil {
		doc.Replay, doc.Reason = false, err.Error()
	}
	writeJSON(w, doc)
}

// openReplay opens the recording a viewing socket replays, or answers
// why it cannot (404 when there is none, 503 when the broker does not
// answer).
func (g *Gateway) openReplay(w http.ResponseWriter, r *http.Request, room string, rq replayQuery) (*replay, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), recordingTimeout)
	defer cancel()
	rd, err := record.NewReader(ctx, g.nc, record.ReadConfig{Room: room, From: rq.from, Follow: true})
	if err != nil {
		code, reason := recordingError(room, err)
		g.refuse("not_recorded", "refused a replay", "room", room, "err", err)
		http.Error(w, reason, code)
		return nil, false
	}
	return &replay{
		room: room, rd: rd, from: rq.from, speed: rq.speed,
		dir: newDirectory(nil, nil), moved: make(chan struct{}, 1), before: true,
		kept: map[keptKey]*protocol.GOPRun[keptFrame]{}, taken: map[keptKey]bool{}, proven: map[string]bool{},
	}, true
}

// replay feeds one viewing socket from a room's recording instead of the
// live feeds: record.Play hands on each recorded message at its pace, and
// the socket's own slots and writer send it (latest decodable frame wins,
// as live). Recorded presence makes the room state the page shows. A
// replay subscribes to nothing live, asks no publisher for a keyframe
// and announces no presence. Only run's goroutine touches it, but for
// moved.
type replay struct {
	v     *viewer
	room  string
	rd    *record.Reader
	from  time.Time
	speed float64

	// dir is the room as the recording has it: presence read from it,
	// publishers proven by their recorded frames.
	dir    *directory
	proven map[string]bool
	clock  time.Time // the newest moment handed on
	swept  time.Time // clock at the last sweep and room state
	before bool      // the last item handed on led into from

	// kept is, per publisher and H.264 layer, the run since its last
	// keyframe (within protocol.GOPRun's bounds: a page that takes a
	// layer whose run is too long waits for its next keyframe); taken
	// whether the socket took that layer when the replay last looked.
	// moved says the page changed what it takes.
	kept  map[keptKey]*protocol.GOPRun[keptFrame]
	taken map[keptKey]bool
	moved chan struct{}
}

type keptKey struct {
	name  string
	layer protocol.Layer
}

type keptFrame struct {
	meta protocol.FrameMeta
	msg  []byte
}

// choiceChanged tells the replay that the page changed what it takes.
func (rp *replay) choiceChanged() {
	select {
	case rp.moved <- struct{}{}:
	default:
	}
}

// run plays the recording to the socket until ctx ends; an error means
// the recording could not be read on.
func (rp *replay) run(ctx context.Context) error {
	defer rp.rd.Close()
	rp.v.log.Info("browser replaying", "from", rp.from.UTC().Format(time.RFC3339Nano), "speed", rp.speed)
	err := record.Play(ctx, rp.rd, rp.from, rp.speed, func(it record.Item) { rp.deliver(ctx, it) })
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		// Play follows the recording; it ends only when its stream is gone.
		err = errors.New("the recording ended")
	}
	rp.v.log.Warn("replay stopped", "err", err)
	return closeWith("replay", websocket.StatusInternalError, "reading the recording stopped: "+err.Error())
}

// deliver hands one recorded message to the socket.
func (rp *replay) deliver(ctx context.Context, it record.Item) {
	rp.serveMoved(ctx)
	s, err := protocol.ParseSubject(it.Msg.Subject)
	if err != nil || s.Room() != rp.room || s.Key || s.Report {
		return
	}
	if it.At.After(rp.clock) {
		rp.clock = it.At
	}
	name := s.Participant()
	switch {
	case s.Presence:
		p, err := protocol.DecodePresence(it.Msg.Data)
		if err != nil {
			return
		}
		rp.dir.update(rp.room, name, p, it.At)
		if rp.proven[name] {
			rp.dir.sawFrame(rp.room, name)
		}
	case it.Frame:
		rp.proven[name] = true
		rp.dir.sawFrame(rp.room, name)
		msg := AppendWire(make([]byte, 0, wireFixed+len(name)+len(it.Msg.Data)), WireFrame{
			Participant: name, Layer: s.Layer, Meta: it.Meta, Body: it.Msg.Data,
		})
		h264 := s.Layer.Codec() == protocol.CodecH264
		k := keptKey{name, s.Layer}
		if h264 {
			rp.keep(k, it.Meta, msg)
			rp.taken[k] = rp.v.takes(name, s.Layer)
		}
		rp.v.offer(name, s.Layer, it.Meta, msg, time.Now())
		if h264 && it.Before {
			// What leads into from comes at once: hand it on no faster
			// than the socket sends it, rather than skip it.
			_ = rp.v.waitRoom(ctx, name)
		}
	}
	rp.syncState(it.Before)
}

// keep adds a frame to the run of its publisher and layer.
func (rp *replay) keep(k keptKey, meta protocol.FrameMeta, msg []byte) {
	run := rp.kept[k]
	if run == nil {
		run = &protocol.GOPRun[keptFrame]{}
		rp.kept[k] = run
	}
	run.Add(keptFrame{meta, msg}, meta.Key, len(msg))
}

// serveMoved hands the kept run since the last keyframe to a page that
// takes a publisher's H.264 layer anew: what a live socket gets by
// asking the publisher for a keyframe.
func (rp *replay) serveMoved(ctx context.Context) {
	select {
	case <-rp.moved:
	default:
		return
	}
	for k, run := range rp.kept {
		now := rp.v.takes(k.name, k.layer)
		if now && !rp.taken[k] {
			for _, f := range run.Units() {
				rp.v.offer(k.name, k.layer, f.meta, f.msg, time.Now())
				if rp.v.waitRoom(ctx, k.name) != nil {
					return
				}
			}
		}
		rp.taken[k] = now
	}
}

// syncState sends the recorded room state when it changed, and every
// beat of the recording's time, after forgetting the participants
// silent for too long then. before says the item just handed on led
// into from.
func (rp *replay) syncState(before bool) {
	changed := false
	select {
	case <-rp.dir.changed:
		changed = true
	default:
	}
	started := rp.before && !before
	rp.before = before
	if !changed && !started && rp.clock.Sub(rp.swept) < protocol.Beat {
		return
	}
	if started || rp.clock.Sub(rp.swept) >= protocol.Beat {
		rp.dir.sweep(rp.clock)
		rp.swept = rp.clock
	}
	rp.v.setState(encodeRoomState(rp.dir.room(rp.room), rp.clock))
}
