package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

const (
	// viewReadLimit bounds a control message from a viewing browser.
	viewReadLimit = 8192
	// maxHi bounds how many participants one browser takes in hi.
	maxHi = 8
	// maxH264 bounds how many participants one browser takes in H.264;
	// the rest come in JPEG.
	maxH264 = 64
	// maxTexts bounds the control messages queued for one browser.
	maxTexts = 8
	// pingGap is the least time between two clock probes a browser gets
	// an answer to; probes that come faster are ignored.
	pingGap = 50 * time.Millisecond
	// keyRequestRate and keyRequestBurst pace the keyframe requests one
	// browser may send; the rest are ignored. The gateway's own pace per
	// publisher and layer (keyAskEvery) comes on top.
	keyRequestRate  = 10
	keyRequestBurst = 10
)

// viewer is one browser watching one room. The feeds offer it frames; it
// keeps only the newest unsent one per participant (latest frame wins)
// and its own writer goroutine sends them, so a stalled browser only
// loses its own frames, counted.
//
// H.264 frames cannot be skipped one by one: each refers to the one
// before. For a participant it takes in H.264 the viewer keeps the latest
// decodable frame instead: when a frame would overwrite one not yet sent
// (the browser fell behind), or a frame is missing from the sequence (the
// gateway's subscription shed it), it drops everything up to the next
// keyframe and asks the publisher for one. The browser never gets a frame
// it cannot decode, and its stall costs nobody else anything.
type viewer struct {
	g      *Gateway
	log    *slog.Logger
	conn   *websocket.Conn
	out    messageWriter // conn, in production
	room   string
	name   string // announced in presence; "" announces nothing
	self   string // the browser's own publishing name, if any
	minGap time.Duration
	start  time.Time

	mu       sync.Mutex
	hi       map[string]bool // participants taken full size; the rest small
	h264     map[string]bool // participants taken in H.264
	jpeg     bool            // the participants not in h264 come in JPEG
	feeds    []protocol.Layer
	slots    map[string][]byte
	chains   map[string]*chain    // H.264 state of each participant in h264
	accepted map[string]time.Time // for minGap
	texts    [][]byte
	state    []byte // newest unsent room state
	pong     *pong  // newest unanswered clock probe
	lastPing time.Time
	closed   bool // no more presence
	wake     chan struct{}

	// batch is reused by every flush; stall ends a browser that takes
	// longer than the write timeout over one batch. Both are made once
	// per socket, not per frame.
	batch   []outMsg
	stall   *time.Timer
	stalled atomic.Bool

	sent, dropped atomic.Uint64
	dropLog       rate.Sometimes
	// keyLimit paces the keyframe requests this browser may relay.
	keyLimit *rate.Limiter

	// rp, when set, feeds the socket from a recording instead of the
	// live feeds: nothing is subscribed, no keyframe is asked of a
	// publisher, no presence is announced.
	rp *replay
	// flushed is signalled after the writer took a batch: a replay that
	// hands on a run of frames at once waits on it for room.
	flushed chan struct{}
}

// chain is where the H.264 frames of one participant stand on a socket:
// the reference chain the browser's decoder follows, which drops frames
// until the next keyframe after a gap, and the frames not yet written.
type chain struct {
	protocol.Chain
	// queue holds the frames not yet written, in order: a short queue
	// rides out a writer that is late by a frame or two (scheduling, a
	// busy machine), which a single slot would turn into a skip to the
	// next keyframe. Only a browser maxQueued frames behind skips.
	queue [][]byte
}

// maxQueued bounds the H.264 frames of one participant waiting for one
// browser: about half a second at 30 fps.
const maxQueued = 16

// layerForLocked is the layer the viewer takes participant p in, if any.
// v.mu is held.
func (v *viewer) layerForLocked(p string) (protocol.Layer, bool) {
	size := protocol.Lo
	if v.hi[p] {
		size = protocol.Hi
	}
	if v.h264[p] {
		return size.As(protocol.CodecH264), true
	}
	return size, v.jpeg
}

// layersLocked is every layer the viewer takes, in allLayers' order. v.mu
// is held.
func (v *viewer) layersLocked() []protocol.Layer {
	var need [len(allLayers)]bool
	if v.jpeg {
		need[layerIndex(protocol.Lo)] = true // everyone not named otherwise
	}
	for p := range v.hi {
		if l, ok := v.layerForLocked(p); ok {
			need[layerIndex(l)] = true
		}
	}
	for p := range v.h264 {
		l, _ := v.layerForLocked(p)
		need[layerIndex(l)] = true
	}
	var out []protocol.Layer
	for i, l := range allLayers {
		if need[i] {
			out = append(out, l)
		}
	}
	return out
}

// layers is every layer the viewer takes.
func (v *viewer) layers() []protocol.Layer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.layersLocked()
}

// offer hands the viewer a framed message from participant's layer l.
func (v *viewer) offer(participant string, l protocol.Layer, meta protocol.FrameMeta, msg []byte, now time.Time) {
	v.mu.Lock()
	if want, ok := v.layerForLocked(participant); !ok || want != l {
		v.mu.Unlock()
		return
	}
	if l.Codec() == protocol.CodecH264 {
		v.offerH264(participant, l, meta, msg, now)
		return
	}
	if v.minGap > 0 {
		if now.Sub(v.accepted[participant]) < v.minGap {
			v.mu.Unlock()
			return // thinned to the asked rate, not a drop
		}
		v.accepted[participant] = now
	}
	_, overwrote := v.slots[participant]
	v.slots[participant] = msg
	v.mu.Unlock()
	if overwrote {
		v.drop(1)
	}
	v.poke()
}

// offerH264 is offer for an H.264 frame: latest decodable frame wins.
// v.mu is held; offerH264 releases it.
func (v *viewer) offerH264(participant string, l protocol.Layer, meta protocol.FrameMeta, msg []byte, now time.Time) {
	c := v.chains[participant]
	if c == nil {
		c = &chain{}
		v.chains[participant] = c
	}
	pass, restart := c.Offer(l, meta)
	if restart {
		// Another layer, or the publisher started again: what waits
		// belongs to the old stream.
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	dropped := 0
	if len(c.queue) >= maxQueued && !meta.Key {
		// The browser is maxQueued frames behind: it cannot catch up
		// frame by frame. What waits goes, and it starts again at the
		// next keyframe, not at a stale picture.
		c.Break()
		pass = false
		dropped += len(c.queue)
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	if !pass {
		v.mu.Unlock()
		v.g.m.h264Waited.Add(1)
		v.drop(dropped + 1)
		if v.rp == nil {
			v.g.keys.ask(v.room, participant, l, now)
		}
		return
	}
	if meta.Key {
		// A keyframe needs nothing before it: what waits is stale.
		dropped += len(c.queue)
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	c.queue = append(c.queue, msg)
	v.mu.Unlock()
	if dropped > 0 {
		v.drop(dropped)
	}
	v.poke()
}

// takes reports whether the viewer takes participant's layer l.
func (v *viewer) takes(participant string, l protocol.Layer) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	want, ok := v.layerForLocked(participant)
	return ok && want == l
}

// waitRoom waits until the H.264 frames of participant waiting for the
// browser are few enough that more can come without a skip to the next
// keyframe, or ctx ends. A replay calls it between the frames of a run
// it hands on at once; the live path never waits.
func (v *viewer) waitRoom(ctx context.Context, participant string) error {
	for {
		v.mu.Lock()
		n := 0
		if c := v.chains[participant]; c != nil {
			n = len(c.queue)
		}
		v.mu.Unlock()
		if n < maxQueued/2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.flushed:
		}
	}
}

// drop counts n frames the browser will never get.
func (v *viewer) drop(n int) {
	v.dropped.Add(uint64(n))
	v.g.m.dropped.Add(uint64(n))
	v.dropLog.Do(func() {
		v.log.Info("browser falling behind: dropping frames (newest wins; H.264 to the next keyframe)", "dropped", v.dropped.Load(), "sent", v.sent.Load())
	})
}

func (v *viewer) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// sendText queues a control message; the oldest goes when too many wait.
func (v *viewer) sendText(b []byte) {
	v.mu.Lock()
	if len(v.texts) >= maxTexts {
		v.texts = v.texts[1:]
	}
	v.texts = append(v.texts, b)
	v.mu.Unlock()
	v.poke()
}

// setState offers the newest room state.
func (v *viewer) setState(b []byte) {
	v.mu.Lock()
	v.state = b
	v.mu.Unlock()
	v.poke()
}

// messageWriter is what a viewer writes to: a *websocket.Conn.
type messageWriter interface {
	Write(ctx context.Context, typ websocket.MessageType, p []byte) error
}

var _ messageWriter = (*websocket.Conn)(nil)

// outMsg is one message of a batch.
type outMsg struct {
	typ websocket.MessageType
	b   []byte
}

// write sends what the viewer holds until ctx ends or a write fails.
//
// Writes take a context without a deadline or cancellation: a per-write
// context.WithTimeout costs allocations per frame per viewer (and the
// websocket package arms a watcher for every cancellable context).
// Instead one timer per socket bounds each batch: a browser that takes
// longer than the write timeout over a batch is disconnected. When ctx
// ends, the socket is being closed, which ends a blocked write too.
func (v *viewer) write(ctx context.Context) error {
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-v.wake:
		}
		if err := v.flush(wctx, ctx); err != nil {
			if v.stalled.Load() {
				return v.stallError()
			}
			return err
		}
	}
}

// stallError is how a socket ends when the stall timer closed it.
func (v *viewer) stallError() error {
	return closeWith("stalled", websocket.StatusTryAgainLater,
		fmt.Sprintf("browser stalled: a write took over %v; reconnect when the network is better", v.g.cfg.WriteTimeout))
}

// flush writes one batch: the queued texts, the newest room state and the
// newest frame of each participant. wctx is for writes, stop ends the
// batch early.
func (v *viewer) flush(wctx, stop context.Context) error {
	v.mu.Lock()
	batch := v.batch[:0]
	pg := v.pong
	v.pong = nil
	for _, t := range v.texts {
		batch = append(batch, outMsg{websocket.MessageText, t})
	}
	clear(v.texts)
	v.texts = v.texts[:0]
	if v.state != nil {
		batch = append(batch, outMsg{websocket.MessageText, v.state})
		v.state = nil
	}
	for _, b := range v.slots {
		batch = append(batch, outMsg{websocket.MessageBinary, b})
	}
	clear(v.slots)
	for _, c := range v.chains {
		for i, b := range c.queue {
			batch = append(batch, outMsg{websocket.MessageBinary, b})
			c.queue[i] = nil
		}
		c.queue = c.queue[:0]
	}
	v.mu.Unlock()
	if v.flushed != nil {
		select {
		case v.flushed <- struct{}{}:
		default:
		}
	}
	if v.stall != nil {
		v.stall.Reset(v.g.cfg.WriteTimeout)
		defer v.stall.Stop()
	}
	var err error
	if pg != nil {
		// Stamped as late as possible: the time it leaves (t2) is what
		// the page's estimate of the clock offset rests on.
		pg.T2 = unixMillis(time.Now())
		b, _ := json.Marshal(pg)
		err = v.out.Write(wctx, websocket.MessageText, b)
	}
	for i, o := range batch {
		if err != nil || stop.Err() != nil {
			break
		}
		if err = v.out.Write(wctx, o.typ, o.b); err != nil {
			break
		}
		if o.typ == websocket.MessageBinary {
			v.sent.Add(1)
			v.g.m.framesOut[layerIndex(wireLayer(o.b))].Add(1)
		}
		batch[i] = outMsg{} // the frame is not kept alive until the next batch
	}
	clear(batch)
	v.batch = batch[:0]
	return err
}

// control is what a viewing browser may send: the participants it takes
// full size (a focused tile, or the only one; everyone else comes small),
// the participants it takes in H.264 (those whose presence lists H.264
// streams its decoder supports), and whether it takes the rest in JPEG
// (absent means it does). {"hi":["alice"]} is a protocol v1 page's: all
// JPEG.
type control struct {
	Hi   []string `json:"hi"`
	H264 []string `json:"h264,omitempty"`
	JPEG *bool    `json:"jpeg,omitempty"`
}

// choice is a checked control message.
type choice struct {
	hi, h264 map[string]bool
	jpeg     bool
}

// ping is a clock probe from the page, NTP's request: T0 is the page's
// clock when it sent the probe, in Unix milliseconds. The gateway answers
// with a pong that adds T1, its clock when the probe came, and T2, its
// clock when the answer left; the page, noting T3 when the answer comes,
// takes offset = ((T1-T0)+(T2-T3))/2 and round trip (T3-T0)-(T2-T1),
// and trusts the probe with the least round trip.
type ping struct {
	Type string  `json:"type"` // "ping"
	T0   float64 `json:"t0"`
}

// pong answers a ping.
type pong struct {
	Type string  `json:"type"` // "pong"
	T0   float64 `json:"t0"`
	T1   float64 `json:"t1"`
	T2   float64 `json:"t2"`
}

// keyRequest is a browser's request for a keyframe: its decoder saw a
// gap or failed. The gateway relays it to the publisher (rate-limited)
// only for a participant and H.264 layer the socket takes.
type keyRequest struct {
	Type  string `json:"type"` // "key"
	Name  string `json:"name"`
	Layer string `json:"layer"` // "h264" or "h264lo"
}

// unixMillis is t in Unix milliseconds, to the microsecond.
func unixMillis(t time.Time) float64 { return float64(t.UnixMicro()) / 1000 }

// viewMessage is one message from a viewing browser: a control message
// (choice set), a clock probe or a keyframe request. Messages of a type
// this gateway does not know, and probes and requests it cannot read, are
// ignored (ignore), so that a newer page works with an older gateway.
type viewMessage struct {
	choice *choice // a control message's
	ping   bool
	t0     float64
	// key is a keyframe request's participant and layer, checked names.
	key      bool
	keyName  string
	keyLayer protocol.Layer
	ignore   bool
	badKey   bool // an ignored keyframe request: bad names or layer
}

// parseViewMessage decodes one text message of a viewing socket. A
// message without "type" is a control message (parseControl, whose
// errors it returns); {"type":"ping","t0":N} is a clock probe;
// {"type":"key","name":P,"layer":"h264"} a keyframe request.
func parseViewMessage(b []byte) (viewMessage, error) {
	var head struct {
		Type json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.Type == nil {
		c, err := parseControl(b)
		if err != nil {
			return viewMessage{}, err
		}
		return viewMessage{choice: &c}, nil
	}
	var typ string
	if err := json.Unmarshal(head.Type, &typ); err != nil {
		return viewMessage{ignore: true}, nil
	}
	switch typ {
	case "ping":
		var p struct {
			T0 *float64 `json:"t0"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.T0 == nil || math.IsInf(*p.T0, 0) || math.IsNaN(*p.T0) {
			return viewMessage{ignore: true}, nil
		}
		return viewMessage{ping: true, t0: *p.T0}, nil
	case "key":
		var k keyRequest
		if err := json.Unmarshal(b, &k); err != nil || protocol.ValidParticipant(k.Name) != nil {
			return viewMessage{ignore: true, badKey: true}, nil
		}
		l, err := protocol.ParseLayer(k.Layer)
		if err != nil || l.Codec() != protocol.CodecH264 {
			return viewMessage{ignore: true, badKey: true}, nil
		}
		return viewMessage{key: true, keyName: k.Name, keyLayer: l}, nil
	}
	return viewMessage{ignore: true}, nil
}

// answerPing queues the answer to a probe that came at t1, unless probes
// come faster than pingGap.
func (v *viewer) answerPing(t0 float64, t1 time.Time) {
	v.mu.Lock()
	if t1.Sub(v.lastPing) < pingGap {
		v.mu.Unlock()
		return
	}
	v.lastPing = t1
	v.pong = &pong{Type: "pong", T0: t0, T1: unixMillis(t1)}
	v.mu.Unlock()
	v.poke()
}

// askKey relays a browser's keyframe request for participant's layer l,
// if the socket takes that participant on that layer, the participant
// publishes in the socket's room, and neither this socket's pace
// (keyLimit) nor the gateway's for that publisher and layer is exceeded.
// Anything else is dropped and counted: a browser names no subject.
func (v *viewer) askKey(participant string, l protocol.Layer, now time.Time) {
	v.mu.Lock()
	want, ok := v.layerForLocked(participant)
	v.mu.Unlock()
	switch {
	case v.rp != nil:
		// A recording has no publisher to ask: the replay serves the
		// run since the last keyframe itself when the page takes a
		// publisher anew.
		v.g.m.keyRequest("replay")
	case !v.keyLimit.AllowN(now, 1):
		v.g.m.keyRequest("socket_limited")
	case !ok || want != l || !v.g.dir.has(v.room, participant, protocol.RolePublisher):
		v.g.m.keyRequest("not_watched")
	default:
		v.g.keys.ask(v.room, participant, l, now)
	}
}

// parseControl decodes and checks one control message. Every error wraps
// ErrBadMessage and says what a good message looks like.
func parseControl(b []byte) (choice, error) {
	var c control
	if err := json.Unmarshal(b, &c); err != nil {
		return choice{}, fmt.Errorf("%w: bad control message: want JSON like {\"hi\":[\"alice\"],\"h264\":[\"alice\"]}", ErrBadMessage)
	}
	if len(c.Hi) > maxHi {
		return choice{}, fmt.Errorf("%w: %d participants in hi, limit %d", ErrBadMessage, len(c.Hi), maxHi)
	}
	if len(c.H264) > maxH264 {
		return choice{}, fmt.Errorf("%w: %d participants in h264, limit %d", ErrBadMessage, len(c.H264), maxH264)
	}
	out := choice{hi: make(map[string]bool, len(c.Hi)), h264: make(map[string]bool, len(c.H264)), jpeg: c.JPEG == nil || *c.JPEG}
	for _, set := range []struct {
		names []string
		m     map[string]bool
	}{{c.Hi, out.hi}, {c.H264, out.h264}} {
		for _, n := range set.names {
			if err := protocol.ValidParticipant(n); err != nil {
				return choice{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
			}
			set.m[n] = true
		}
	}
	return out, nil
}

// setChoice applies a checked choice (from parseControl) and moves the
// viewer between feeds.
func (v *viewer) setChoice(c choice) error {
	v.mu.Lock()
	v.hi, v.h264, v.jpeg = c.hi, c.h264, c.jpeg
	for p := range v.chains {
		if !v.h264[p] {
			delete(v.chains, p)
		}
	}
	for p := range v.slots {
		if _, ok := v.layerForLocked(p); !ok {
			delete(v.slots, p)
		}
	}
	old, now := v.feeds, v.layersLocked()
	v.feeds = now
	v.mu.Unlock()
	if v.rp != nil {
		// Replaying: nothing live to move between, but what the page
		// takes anew needs the run since its last keyframe.
		v.rp.choiceChanged()
		return nil
	}
	if v.name == "" && !slices.Equal(old, now) {
		v.g.showsChanged() // the gateway announces what it shows
	}
	for _, l := range now {
		if !slices.Contains(old, l) {
			if err := v.g.hub.attach(v, l); err != nil {
				return err
			}
		}
	}
	for _, l := range old {
		if !slices.Contains(now, l) {
			v.g.hub.detach(v, l)
		}
	}
	return nil
}

// detachAll leaves every feed, when the socket ends.
func (v *viewer) detachAll() {
	if v.rp != nil {
		return
	}
	v.mu.Lock()
	fs := v.feeds
	v.feeds = nil
	v.mu.Unlock()
	for _, l := range fs {
		v.g.hub.detach(v, l)
	}
}

// presence returns the viewer's presence, or false when it announces
// none (anymore): the JPEG layers it takes in views, the H.264 ones in
// watches.
func (v *viewer) presence(leaving bool) (protocol.Address, protocol.Presence, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.name == "" || v.closed {
		return protocol.Address{}, protocol.Presence{}, false
	}
	if leaving {
		v.closed = true
	}
	p := protocol.ViewerPresence(v.start, v.layersLocked(), leaving)
	a, err := protocol.NewAddress(v.room, v.name)
	return a, p, err == nil
}

// viewHello is the first message on a viewing socket.
type viewHello struct {
	Type    string `json:"type"` // "hello"
	Room    string `json:"room"`
	Viewer  string `json:"viewer,omitempty"`
	Self    string `json:"self,omitempty"`
	Now     int64  `json:"now"` // gateway clock, Unix milliseconds
	Version int    `json:"version"`
	// Replay is set on a socket that replays a recording.
	Replay *replayHello `json:"replay,omitempty"`
}

// replayHello says what a replaying socket shows: the recording of its
// room from From (Unix milliseconds), Speed times as fast as it was
// recorded.
type replayHello struct {
	From  int64   `json:"from"`
	Speed float64 `json:"speed"`
}

// roomState tells browsers who is in the room, every beat and on change.
type roomState struct {
	Type       string            `json:"type"` // "room"
	Room       string            `json:"room"`
	Publishers []protocol.Member `json:"publishers"`
	Viewers    []string          `json:"viewers"`
	Now        int64             `json:"now"`
}

func encodeRoomState(ri protocol.RoomInfo, now time.Time) []byte {
	st := roomState{Type: "room", Room: ri.Room, Publishers: []protocol.Member{}, Viewers: []string{}, Now: now.UnixMilli()}
	for _, m := range ri.Members {
		if m.Role == protocol.RolePublisher {
			st.Publishers = append(st.Publishers, m)
		} else {
			st.Viewers = append(st.Viewers, m.Name)
		}
	}
	b, _ := json.Marshal(st)
	return b
}

// serveView upgrades GET /ws/view/{room} to a viewing socket.
//
// Query: fps=N caps frames per participant (thumbnails), presence=0
// announces no viewer of its own, self=N marks the browser's own
// publishing name (no viewer presence of its own either). The viewer's
// name is the gateway's choice, web-<8 hex digits>: name=N is refused,
// so that no socket announces, or leaves, as someone else. from=T (RFC
// 3339, or a negative duration back from now such as -30s) replays the
// room's recording from T instead, speed=N times as fast (above 0, at
// most MaxReplaySpeed; 1 by default): it needs the replay right, and
// announces nothing. What the sockets that announce nothing
// take, the gateway announces in its own name (Gateway.shows), so that a
// publisher encoding only watched layers still sends them.
func (g *Gateway) serveView(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if err := protocol.ValidRoom(room); err != nil {
		g.badRequest(w, err)
		return
	}
	q := r.URL.Query()
	rq, err := parseReplay(q, time.Now())
	if err != nil {
		g.badRequest(w, err)
		return
	}
	gr, ok := g.allow(w, r, room, func(c webtoken.Claims) error {
		if err := c.CanView(room); err != nil || !rq.on {
			return err
		}
		return canReplay(c, room)
	})
	if !ok {
		return
	}
	var minGap time.Duration
	if s := q.Get("fps"); s != "" {
		fps, err := strconv.ParseFloat(s, 64)
		if err != nil || !(fps > 0 && fps <= 240) {
			g.badRequest(w, fmt.Errorf("%w: fps %q: use a number above 0, at most 240", ErrBadRequest, s))
			return
		}
		minGap = time.Duration(float64(time.Second) / fps * 0.9) // tolerate jitter
	}
	if q.Has("name") {
		// A socket announcing a name of its choosing could speak, and
		// leave, for someone else in the room: the gateway names viewers.
		g.badRequest(w, fmt.Errorf("%w: name= is not taken: the gateway names each viewer itself (web-<8 hex digits>); drop the parameter", ErrBadRequest))
		return
	}
	self, name := q.Get("self"), ""
	if self != "" {
		if err := protocol.ValidParticipant(self); err != nil {
			g.badRequest(w, err)
			return
		}
	}
	if self == "" && q.Get("presence") != "0" && !rq.on {
		// A replaying browser is no one in the room: it announces nothing.
		name = protocol.RandomName("web")
	}
	release, ok := g.admit(w, r, gr.tok)
	if !ok {
		return
	}
	defer release()
	var rp *replay
	if rq.on {
		if rp, ok = g.openReplay(w, r, room, rq); !ok {
			return
		}
	}
	conn, err := websocket.Accept(w, r, g.acceptOptions())
	if err != nil {
		g.refuse("upgrade", "refused a viewing socket", "room", room, "err", err)
		if rp != nil {
			rp.rd.Close()
		}
		return
	}
	conn.SetReadLimit(viewReadLimit)
	v := &viewer{
		g: g, conn: conn, out: conn, room: room, name: name, self: self, minGap: minGap, start: time.Now(),
		log: g.log.With("socket", "view", "room", room, "remote", r.RemoteAddr),
		hi:  map[string]bool{}, h264: map[string]bool{}, jpeg: true,
		slots: map[string][]byte{}, accepted: map[string]time.Time{}, chains: map[string]*chain{},
		keyLimit: rate.NewLimiter(keyRequestRate, keyRequestBurst),
		wake:     make(chan struct{}, 1),
		dropLog:  rate.Sometimes{Interval: logEvery},
	}
	if rp != nil {
		v.rp, rp.v = rp, v
		v.flushed = make(chan struct{}, 1)
		v.log = v.log.With("replay_from", rq.from.UTC().Format(time.RFC3339Nano), "speed", rq.speed)
		g.m.replaysNow.Add(1)
		defer g.m.replaysNow.Add(-1)
	}
	v.stall = time.AfterFunc(time.Hour, func() {
		v.stalled.Store(true)
		_ = conn.CloseNow()
	})
	v.stall.Stop()
	defer v.stall.Stop()
	g.m.socketsNow[0].Add(1)
	defer g.m.socketsNow[0].Add(-1)
	g.runSocket(conn, v.log, g.expiry(gr.c), func(ctx context.Context) error { return g.runViewer(ctx, v) })
}

// runViewer runs a viewing socket until it ends.
func (g *Gateway) runViewer(ctx context.Context, v *viewer) error {
	h := viewHello{Type: "hello", Room: v.room, Viewer: v.name, Self: v.self, Now: time.Now().UnixMilli(), Version: WireVersion}
	if v.rp != nil {
		h.Replay = &replayHello{From: v.rp.from.UnixMilli(), Speed: v.rp.speed}
	}
	hello, _ := json.Marshal(h)
	v.sendText(hello)
	if v.rp == nil {
		v.setState(encodeRoomState(g.dir.room(v.room), time.Now()))
		g.addViewer(v)
		defer g.removeViewer(v)
	} else {
		// The room as the recording has it comes with the replay's
		// presence; the live room is not this socket's business.
		v.setState(encodeRoomState(protocol.RoomInfo{Room: v.room}, v.rp.from))
	}
	// Until the page says otherwise, everyone comes in JPEG lo.
	defer v.detachAll()
	if err := v.setChoice(choice{jpeg: true}); err != nil {
		return err
	}
	g.beatViewer(v, false)
	defer g.beatViewer(v, true)
	v.log.Info("browser watching", "viewer", v.name)

	// Whichever side ends first ends the other, and its error is the
	// socket's: the cause tells them apart once both are done. A writer
	// that fails after the reader ended only saw the socket closing.
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	var werr, perr error
	wg.Go(func() {
		werr = v.write(ctx)
		cancel(errWriterEnded)
	})
	if v.rp != nil {
		wg.Go(func() {
			perr = v.rp.run(ctx)
			cancel(errReplayEnded)
		})
	}
	rerr := v.read(ctx)
	cancel(errReaderEnded)
	wg.Wait()
	v.log.Info("browser left", "viewer", v.name, "sent", v.sent.Load(), "dropped", v.dropped.Load())
	switch {
	case v.stalled.Load():
		// The stall timer closed the socket; the reader may have noticed
		// before the blocked writer did.
		return v.stallError()
	case werr != nil && context.Cause(ctx) == errWriterEnded:
		return werr
	case context.Cause(ctx) == errReplayEnded:
		return perr
	}
	return rerr
}

// Causes of a viewing socket's end, for runViewer.
var (
	errWriterEnded = errors.New("viewing socket's writer ended")
	errReaderEnded = errors.New("viewing socket's reader ended")
	errReplayEnded = errors.New("viewing socket's replay ended")
)

// read takes control messages until the socket ends.
func (v *viewer) read(ctx context.Context) error {
	for {
		typ, b, err := v.conn.Read(ctx)
		if err != nil {
			return err
		}
		t1 := time.Now()
		if typ != websocket.MessageText {
			return closeWith("bad_control", websocket.StatusUnsupportedData, "a viewing socket takes only JSON text messages like {\"hi\":[\"alice\"]}")
		}
		m, err := parseViewMessage(b)
		switch {
		case err != nil:
			return closeWith("bad_control", websocket.StatusPolicyViolation, err.Error())
		case m.ignore:
			if m.badKey {
				v.g.m.keyRequest("bad")
			}
		case m.ping:
			v.answerPing(m.t0, t1)
		case m.key:
			v.askKey(m.keyName, m.keyLayer, t1)
		default:
			if err := v.setChoice(*m.choice); err != nil {
				return err
			}
		}
	}
}
