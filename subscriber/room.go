// Package subscriber joins vidhub rooms: it finds the participants of a
// room through their presence and frames, keeps the newest frame of each
// publisher in a tile, measures every tile (fps, latency, bitrate, drops,
// bad frames), and renders rooms in a desktop window.
//
// Flow control is latest-frame-wins: the NATS callback only checks a
// frame's headers, swaps a pointer in its tile and counts what it
// overwrote. Renderers take frames on their own clock, so a slow renderer
// skips to the newest frame and never plays a backlog.
package subscriber

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/protocol"
)

// LayerMode says which layer a viewer takes.
type LayerMode string

// Layer modes. Auto takes hi while a room has one publisher and lo for a
// grid of several.
const (
	LayerAuto LayerMode = "auto"
	LayerHi   LayerMode = LayerMode(protocol.Hi)
	LayerLo   LayerMode = LayerMode(protocol.Lo)
)

// ParseLayerMode parses auto, hi or lo.
func ParseLayerMode(s string) (LayerMode, error) {
	switch LayerMode(s) {
	case LayerAuto, LayerHi, LayerLo:
		return LayerMode(s), nil
	}
	return "", fmt.Errorf("unknown layer %q: use auto, hi or lo", s)
}

const (
	// maxSkew bounds how far a frame's capture time may be from now; a
	// frame outside it is stale or from a broken clock and is skipped.
	maxSkew = time.Minute
	// stallAfter is how long a live publisher may send no frame before its
	// tile shows it as stalled.
	stallAfter = 2 * time.Second
	// reportQuiet: a publisher silent for this long gets no more receiver
	// reports, until its frames come again.
	reportQuiet = 2 * time.Second
	// leftFor is how long frames still in flight from a participant that
	// said it was leaving are ignored.
	leftFor = 2 * time.Second
	// maxSamples bounds the latency samples kept per tile per interval.
	maxSamples = 4096
	// pendingMsgs is the per-subscription queue limit: small, so a stuck
	// callback sheds frames at once instead of hoarding stale ones.
	pendingMsgs  = 256
	pendingBytes = 64 << 20
	// maxParticipants bounds the viewers and joining publishers a room
	// keeps from presence: presence is cheap to send, and a user allowed
	// to announce itself under many names (a web gateway's) must not grow
	// a viewer's memory without end. The excess is dropped and counted.
	maxParticipants = 1024
)

// ErrNotAllowed is returned (wrapped) when the broker refuses to let this
// user view a room.
var ErrNotAllowed = errors.New("not allowed")

// Config says which room to join and how.
type Config struct {
	Room string
	// Name is this viewer's participant name in presence; empty picks
	// "viewer-" and a random suffix.
	Name string
	// Layer is the layer to take; empty means LayerAuto.
	Layer LayerMode
	// KeepFrames keeps the newest frame of each tile for a renderer to
	// Take. A headless viewer only measures.
	KeepFrames bool
	// NoPresence stops this viewer from announcing itself, for a publisher
	// in the same process that already does (a video chat).
	NoPresence bool
	// Self is this process's own publisher name, if any: its tile is
	// marked.
	Self string
	// Codec is protocol.CodecJPEG to take the JPEG layers only; empty
	// takes a publisher's H.264 layer where it sends one and this build
	// decodes H.264, else its JPEG layer.
	Codec protocol.Codec
	// StatsEvery is the stats interval; 0 means one second.
	StatsEvery time.Duration
	// OnStats, if set, receives every tile's stats once per interval, on
	// the room's own goroutine.
	OnStats func([]TileStats)
	// Logger receives the room's log; nil discards it.
	Logger *slog.Logger
	// From, if set, replays the room's recording (package record) from
	// this moment instead of watching it live, paced by the frames'
	// capture times; Speed scales the pace (0 means 1). A replay neither
	// announces itself nor asks publishers for keyframes: live viewers
	// and publishers never notice it.
	From  time.Time
	Speed float64
}

// Room is a joined room.
type Room struct {
	cfg   Config
	nc    *nats.Conn
	log   *slog.Logger
	self  protocol.Address // this viewer
	start time.Time

	mu      sync.RWMutex
	tiles   map[string]*Tile
	viewers map[string]time.Time // viewer name -> last beat
	// joining holds publishers whose presence says publisher but whose
	// frames have not arrived: they get a tile, and count for the layout,
	// only with their first frame. Presence alone proves nothing: a user
	// with view rights only may beat any role on its own presence subject.
	joining map[string]joining
	left    map[string]time.Time // participant -> when it said it was leaving
	layer   protocol.Layer
	frames  *nats.Subscription
	// h264 says the room takes H.264 layers: frames264 follows the H.264
	// layer of layer's size.
	h264      bool
	frames264 *nats.Subscription
	decodeLog rate.Sometimes
	// inbox takes GOP replies to this room's keyframe requests, on
	// inbox.<participant>.<layer>.
	inbox    string
	gopReply *nats.Subscription
	// loReason, once set, keeps an auto room on lo: the link is too slow.
	loReason string
	// the link check's state, on the room's goroutine
	baseReconnects uint64 // the connection's reconnects when the room was joined
	seenReconnects uint64 // ... when the room last looked
	server         string // the broker the room was on when it last looked
	lastCut        time.Time
	lateIntervals  int
	reconnects     atomic.Uint64 // since joining, as of the last stats interval

	presence *nats.Subscription
	bad      atomic.Uint64  // bad messages of no known tile
	dropped  atomic.Uint64  // presence dropped: maxParticipants reached
	badLog   rate.Sometimes // the first bad message, then one per 10 s
	changed  chan struct{}

	// replay, when set, feeds the room from its recording (Config.From).
	replay *replay
	// noReports: the broker refused a receiver report; on the room's
	// goroutine.
	noReports bool

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Join subscribes to a room and starts tracking it. Close leaves it.
func Join(nc *nats.Conn, cfg Config) (*Room, error) {
	if err := protocol.ValidRoom(cfg.Room); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = protocol.RandomName("viewer")
	}
	self, err := protocol.NewAddress(cfg.Room, cfg.Name)
	if err != nil {
		return nil, err
	}
	if cfg.Layer == "" {
		cfg.Layer = LayerAuto
	}
	if _, err := ParseLayerMode(string(cfg.Layer)); err != nil {
		return nil, err
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Room{
		cfg:       cfg,
		nc:        nc,
		log:       log.With("component", "room", "room", cfg.Room),
		self:      self,
		start:     time.Now(),
		tiles:     map[string]*Tile{},
		viewers:   map[string]time.Time{},
		joining:   map[string]joining{},
		left:      map[string]time.Time{},
		changed:   make(chan struct{}, 1),
		badLog:    rate.Sometimes{Interval: 10 * time.Second},
		decodeLog: rate.Sometimes{Interval: 10 * time.Second},
		h264:      cfg.Codec != protocol.CodecJPEG && decodeAvailable(),
	}
	if !cfg.From.IsZero() {
		if err := r.startReplay(); err != nil {
			return nil, err
		}
		return r, nil
	}
	r.presence, err = nc.Subscribe(protocol.RoomPresence(cfg.Room), r.onPresence)
	if err != nil {
		return nil, fmt.Errorf("joining room %s: %w", cfg.Room, err)
	}
	if r.h264 {
		r.inbox = nc.NewRespInbox()
		if r.gopReply, err = nc.Subscribe(r.inbox+".>", r.onGOP); err != nil {
			_ = r.presence.Unsubscribe()
			return nil, fmt.Errorf("joining room %s: %w", cfg.Room, err)
		}
		_ = r.gopReply.SetPendingLimits(pendingMsgs, pendingBytes)
	}
	_ = r.presence.SetPendingLimits(pendingMsgs, pendingBytes)
	r.mu.Lock()
	err = r.subscribeLayer(r.wantLayer())
	r.mu.Unlock()
	if err == nil {
		// A refusal (no permission) comes back before the flush returns.
		err = nc.FlushTimeout(5 * time.Second)
		if le := nc.LastError(); err == nil && errors.Is(le, nats.ErrPermissionViolation) &&
			strings.Contains(le.Error(), protocol.RoomPrefix(cfg.Room)) {
			err = fmt.Errorf("%w: the broker refused (%w); ask for view rights to room %s", ErrNotAllowed, le, cfg.Room)
		}
	}
	if err != nil {
		_ = r.presence.Unsubscribe()
		if r.gopReply != nil {
			_ = r.gopReply.Unsubscribe()
		}
		r.mu.Lock()
		r.unsubscribeFrames()
		r.mu.Unlock()
		return nil, fmt.Errorf("joining room %s: %w", cfg.Room, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.baseReconnects = nc.Stats().Reconnects
	r.seenReconnects, r.server = r.baseReconnects, nc.ConnectedServerId()
	r.wg.Go(func() { r.loop(ctx) })
	r.log.Info("joined room", "viewer", cfg.Name, "layer", r.Layer())
	return r, nil
}

// ViewerName is this viewer's participant name, as its presence announces it.
func (r *Room) ViewerName() string { return r.cfg.Name }

// Name is the room's name.
func (r *Room) Name() string { return r.cfg.Room }

// Layer is the layer currently taken.
func (r *Room) Layer() protocol.Layer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.layer
}

// Tiles returns the room's publishers, sorted by name: those whose
// frames have arrived (see Joining).
func (r *Room) Tiles() []*Tile {
	r.mu.RLock()
	ts := slices.Collect(maps.Values(r.tiles))
	r.mu.RUnlock()
	slices.SortFunc(ts, func(a, b *Tile) int { return strings.Compare(a.name, b.name) })
	return ts
}

// Viewers returns the names of the room's viewers seen through presence,
// sorted.
func (r *Room) Viewers() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.viewers))
}

// Joining returns, sorted, the names of participants whose presence says
// they publish but whose frames have not arrived (yet): a renderer may
// show them as joining. They have no tile and do not count for the
// layout, so a participant that may not publish cannot change it.
func (r *Room) Joining() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.joining))
}

// Dropped counts presence beats of new participants dropped because the
// room already tracked maxParticipants viewers and joining publishers.
func (r *Room) Dropped() uint64 { return r.dropped.Load() }

// Stats returns the latest stats of every tile.
func (r *Room) Stats() []TileStats {
	ts := r.Tiles()
	out := make([]TileStats, len(ts))
	for i, t := range ts {
		out[i] = t.Stats()
	}
	return out
}

// Reconnects counts the times the room's connection came back after a
// disconnect since the room was joined, as of the last stats interval.
func (r *Room) Reconnects() uint64 { return r.reconnects.Load() }

// Bad counts bad messages that belong to no tile.
func (r *Room) Bad() uint64 { return r.bad.Load() }

// Close leaves the room: it announces leaving, unsubscribes and stops its
// goroutine. It is safe to call more than once.
func (r *Room) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		if r.presence != nil {
			_ = r.presence.Unsubscribe()
		}
		if r.gopReply != nil {
			_ = r.gopReply.Unsubscribe()
		}
		r.mu.Lock()
		r.unsubscribeFrames()
		tiles := slices.Collect(maps.Values(r.tiles))
		r.mu.Unlock()
		for _, t := range tiles {
			t.stop()
		}
		r.beat(true)
		if r.nc.IsConnected() {
			_ = r.nc.FlushTimeout(time.Second)
		}
		r.log.Info("left room")
	})
}

// wantLayer is the layer the room should take now. r.mu is held.
func (r *Room) wantLayer() protocol.Layer {
	switch r.cfg.Layer {
	case LayerHi:
		return protocol.Hi
	case LayerLo:
		return protocol.Lo
	}
	if len(r.tiles) > 1 || r.loReason != "" {
		return protocol.Lo
	}
	return protocol.Hi
}

// Too slow for hi: with LayerAuto, a viewer that is cut off twice within
// slowWindow while taking hi, or whose hi frames arrive more than
// slowLatency late for slowIntervals stats intervals in a row, falls back
// to lo for good. Being cut off is told apart from a broker that restarts
// or fails over by noteReconnects.
const (
	slowWindow    = 30 * time.Second
	slowLatency   = time.Second
	slowIntervals = 3
)

// noteReconnects counts the reconnects since it last looked and reports
// whether they were a cut: the broker dropped this viewer and took it back,
// so it kept running all along. That is how a server-side slow consumer
// (pending bytes or write deadline exceeded) looks from here: nats-server
// closes the socket without sending an error first, so the disconnect
// error is a bare EOF, the same as for a broker that stops. What tells
// them apart is the server ID, which a broker draws afresh at every start:
// back on the same ID is a cut; on another one, a restart or a failover to
// another node of a cluster, which says nothing about this link. (A slow
// consumer that a cluster hands to another node is not counted either;
// its late frames still are, below.) It runs on the room's goroutine.
func (r *Room) noteReconnects() (cut bool) {
	id := r.nc.ConnectedServerId()
	if id == "" {
		return false // away: judge the reconnect once it is back
	}
	if rc := r.nc.Stats().Reconnects; rc > r.seenReconnects {
		cut = r.server != "" && id == r.server
		r.seenReconnects = rc
		r.reconnects.Store(rc - r.baseReconnects)
		r.log.Info("reconnected", "reconnects", rc-r.baseReconnects, "same_broker", cut)
	}
	r.server = id
	return cut
}

// checkLink falls back to lo when the link is too slow for hi; cut says
// the broker has just cut this viewer off. It runs on the room's
// goroutine.
func (r *Room) checkLink(now time.Time, cut bool, stats []TileStats) {
	if r.cfg.Layer != LayerAuto || r.Layer() != protocol.Hi {
		return
	}
	reason := ""
	if cut {
		if !r.lastCut.IsZero() && now.Sub(r.lastCut) < slowWindow {
			reason = fmt.Sprintf("cut off twice within %v while taking hi (a slow consumer)", now.Sub(r.lastCut).Round(time.Second))
		}
		r.lastCut = now
	}
	late := false
	for _, s := range stats {
		if s.Layer == protocol.Hi && s.LatencyP50 > float64(slowLatency.Milliseconds()) {
			late = true
		}
	}
	if late {
		r.lateIntervals++
	} else {
		r.lateIntervals = 0
	}
	if r.lateIntervals >= slowIntervals && reason == "" {
		reason = fmt.Sprintf("hi frames more than %v late for %d intervals", slowLatency, r.lateIntervals)
	}
	if reason == "" {
		return
	}
	r.mu.Lock()
	r.loReason = "link too slow for hi: " + reason
	r.mu.Unlock()
	r.log.Warn("falling back to the lo layer", "reason", r.loReason)
	r.pickLayer()
}

// LayerReason says why the room takes lo when hi was possible, or "".
func (r *Room) LayerReason() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.loReason
}

// subscribeLayer switches the frame subscriptions to l (and its H.264
// counterpart). Switching is a new subscription, nothing more. r.mu is
// held.
func (r *Room) subscribeLayer(l protocol.Layer) error {
	if r.replay != nil {
		r.layer = l // the replay offers every layer recorded; onFrame picks
		return nil
	}
	if l == r.layer && r.frames != nil {
		return nil
	}
	sub, err := r.nc.Subscribe(protocol.RoomFrames(r.cfg.Room, l), r.onFrame)
	if err != nil {
		return err
	}
	_ = sub.SetPendingLimits(pendingMsgs, pendingBytes)
	var sub264 *nats.Subscription
	if r.h264 {
		if sub264, err = r.nc.Subscribe(protocol.RoomFrames(r.cfg.Room, l.As(protocol.CodecH264)), r.onFrame); err != nil {
			_ = sub.Unsubscribe()
			return err
		}
		_ = sub264.SetPendingLimits(pendingMsgs, pendingBytes)
	}
	if r.frames != nil {
		r.log.Info("switched layer", "from", r.layer, "to", l, "publishers", len(r.tiles))
	}
	r.unsubscribeFrames()
	r.frames, r.frames264, r.layer = sub, sub264, l
	return nil
}

// unsubscribeFrames ends the frame subscriptions. r.mu is held.
func (r *Room) unsubscribeFrames() {
	for _, s := range []*nats.Subscription{r.frames, r.frames264} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	r.frames, r.frames264 = nil, nil
}

// askKey asks participant name for a keyframe on layer l.
func (r *Room) askKey(name string, l protocol.Layer) {
	if r.replay != nil || !r.nc.IsConnected() {
		return
	}
	err := r.nc.PublishRequest(protocol.ParticipantKey(r.cfg.Room, name), r.inbox+"."+name+"."+string(l), []byte(l))
	if err != nil {
		r.log.Debug("keyframe request not sent", "participant", name, "err", err)
	}
}

// onGOP is the NATS callback for GOP replies to keyframe requests.
func (r *Room) onGOP(m *nats.Msg) {
	now := time.Now()
	name, layer, _ := strings.Cut(strings.TrimPrefix(m.Subject, r.inbox+"."), ".")
	l, err := protocol.ParseLayer(layer)
	if err != nil || l.Codec() != protocol.CodecH264 || protocol.ValidParticipant(name) != nil {
		return
	}
	r.mu.RLock()
	t := r.tiles[name]
	r.mu.RUnlock()
	if t == nil {
		return
	}
	gop, err := parseGOP(name, l, m, now)
	if err != nil {
		r.countBad(t, err)
		return
	}
	t.mu.Lock()
	h := t.h264
	t.mu.Unlock()
	if h != nil {
		h.offerGOP(gop)
	}
}

// parseGOP checks a GOP reply and returns its access units as frames.
func parseGOP(name string, l protocol.Layer, m *nats.Msg, now time.Time) ([]*Frame, error) {
	gop, err := protocol.ParseGOP(m.Header, m.Data)
	if err != nil {
		return nil, err
	}
	out := make([]*Frame, len(gop))
	for i, g := range gop {
		out[i] = &Frame{Participant: name, Layer: l, Meta: g.Meta, AU: g.AU, Received: now}
	}
	return out, nil
}

// onFrame is the NATS callback for frames: check, swap, count. Nothing
// slow happens here.
func (r *Room) onFrame(m *nats.Msg) {
	now := time.Now()
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil {
		r.countBad(nil, err)
		return
	}
	if !s.Frame() {
		return // a keyframe request or a receiver report to a publisher of the room
	}
	meta, err := protocol.ParseLayerFrame(s.Layer, m.Header, m.Data)
	if err == nil && r.replay == nil {
		if skew := now.Sub(meta.CaptureTime()); skew > maxSkew || skew < -maxSkew {
			err = fmt.Errorf("%w: capture time %s is %v from now", protocol.ErrBadFrame,
				meta.CaptureTime().UTC().Format(time.RFC3339), skew.Round(time.Second))
		}
	}
	name := s.Participant()
	r.mu.RLock()
	t := r.tiles[name]
	layer := r.layer
	_, gone := r.left[name]
	r.mu.RUnlock()
	if err != nil {
		r.countBad(t, err)
		return
	}
	h264 := s.Layer.Codec() == protocol.CodecH264
	if (s.Layer != layer && (!h264 || s.Layer != layer.As(protocol.CodecH264))) || gone {
		return // in flight across a layer switch, or from one who left
	}
	if !h264 && r.h264 && t != nil && t.takesH264(layer) {
		return // JPEG for someone else: this tile takes the H.264 layer
	}
	if t == nil {
		if t = r.addTile(name, now); t == nil {
			return
		}
	}
	if !h264 {
		t.onFrame(s.Layer, meta, m.Data, now, r.cfg.KeepFrames)
		return
	}
	h, err := t.startH264(r.start, r.cfg.KeepFrames, func(l protocol.Layer) { r.askKey(name, l) })
	if err != nil {
		r.decodeLog.Do(func() { r.log.Warn("cannot decode H.264", "participant", name, "err", err) })
		return
	}
	t.onAU(h, &Frame{Participant: name, Layer: s.Layer, Meta: meta, AU: m.Data, Received: now}, now)
}

func (r *Room) countBad(t *Tile, err error) {
	if t != nil {
		t.bad.Add(1)
	} else {
		r.bad.Add(1)
	}
	// Every bad message is counted; a flood is logged now and then.
	r.badLog.Do(func() { r.log.Warn("skipping bad message", "err", err) })
}

// addTile adds a tile for a publisher seen for the first time.
func (r *Room) addTile(name string, now time.Time) *Tile {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, gone := r.left[name]; gone {
		return nil
	}
	t, ok := r.tiles[name]
	if !ok {
		t = newTile(r.cfg.Room, name, name == r.cfg.Self, now)
		t.joined = r.start
		if j, ok := r.joining[name]; ok {
			t.onPresence(j.p, j.seen)
			delete(r.joining, name)
		}
		r.tiles[name] = t
		r.log.Info("publisher joined", "participant", name)
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	return t
}

// onPresence is the NATS callback for presence.
func (r *Room) onPresence(m *nats.Msg) {
	now := time.Now()
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil {
		r.countBad(nil, err)
		return
	}
	name := s.Participant()
	p, err := protocol.DecodePresence(m.Data)
	if err != nil {
		r.mu.RLock()
		t := r.tiles[name]
		r.mu.RUnlock()
		r.countBad(t, err)
		return
	}
	if p.Leaving {
		r.mu.Lock()
		old, wasTile := r.tiles[name]
		delete(r.tiles, name)
		delete(r.viewers, name)
		delete(r.joining, name)
		r.left[name] = now
		r.mu.Unlock()
		if wasTile {
			old.stop()
			r.log.Info("publisher left", "participant", name)
			select {
			case r.changed <- struct{}{}:
			default:
			}
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.left, name) // back, or a new process under the same name
	if t := r.tiles[name]; t != nil && p.Role == protocol.RolePublisher {
		t.onPresence(p, now) // a publisher whose frames arrived
		return
	}
	_, isViewer := r.viewers[name]
	_, isJoining := r.joining[name]
	if !isViewer && !isJoining && len(r.viewers)+len(r.joining) >= maxParticipants {
		r.dropped.Add(1)
		r.badLog.Do(func() {
			r.log.Warn("dropping presence: too many participants", "limit", maxParticipants, "participant", name)
		})
		return
	}
	if p.Role == protocol.RoleViewer {
		delete(r.joining, name)
		r.viewers[name] = now
		return
	}
	// A publisher only by its word: joining until its frames arrive.
	delete(r.viewers, name)
	r.joining[name] = joining{p: p, seen: now}
}

// joining is a publisher by presence only, as of its last beat.
type joining struct {
	p    protocol.Presence
	seen time.Time
}

// loop rolls stats, sweeps the silent, beats presence and picks the layer.
func (r *Room) loop(ctx context.Context) {
	stats := time.NewTicker(r.cfg.StatsEvery)
	defer stats.Stop()
	beat := time.NewTicker(protocol.Beat)
	defer beat.Stop()
	report := time.NewTicker(protocol.ReportEvery)
	defer report.Stop()
	r.beat(false)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-report.C:
			r.report(now)
		case <-r.changed:
			r.pickLayer()
		case now := <-beat.C:
			r.beat(false)
			r.sweep(now)
			r.pickLayer()
		case now := <-stats.C:
			cut := r.noteReconnects()
			tiles := r.Tiles()
			out := make([]TileStats, len(tiles))
			for i, t := range tiles {
				out[i] = t.roll(now)
			}
			r.checkLink(now, cut, out)
			reason, reconnects := r.LayerReason(), r.Reconnects()
			for i, t := range tiles {
				t.setLink(reason, reconnects)
				out[i].LayerReason, out[i].Reconnects = reason, reconnects
			}
			if r.cfg.OnStats != nil {
				r.cfg.OnStats(out)
			}
		}
	}
}

func (r *Room) pickLayer() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := r.wantLayer(); want != r.layer {
		if err := r.subscribeLayer(want); err != nil {
			r.log.Warn("cannot switch layer", "to", want, "err", err)
		}
	}
}

// sweep removes participants silent for MissedBeats beats.
func (r *Room) sweep(now time.Time) {
	limit := time.Duration(protocol.MissedBeats) * protocol.Beat
	var gone []*Tile
	defer func() {
		for _, t := range gone {
			t.stop()
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, t := range r.tiles {
		if now.Sub(t.lastSeen()) > limit {
			delete(r.tiles, name)
			gone = append(gone, t)
			r.log.Info("publisher gone: missed beats", "participant", name)
		}
	}
	for name, at := range r.viewers {
		if now.Sub(at) > limit {
			delete(r.viewers, name)
		}
	}
	for name, j := range r.joining {
		if now.Sub(j.seen) > limit {
			delete(r.joining, name)
		}
	}
	for name, at := range r.left {
		if now.Sub(at) > leftFor {
			delete(r.left, name)
		}
	}
}

// report sends each H.264 publisher a receiver report on what this
// viewer received of it since the last (protocol.Report), so that it can
// adapt its bitrate to the path. A broker that refuses them (an access
// configuration older than receiver reports) stops them.
func (r *Room) report(now time.Time) {
	if r.replay != nil || r.noReports || !r.nc.IsConnected() {
		return
	}
	if le := r.nc.LastError(); protocol.RefusedReport(le) {
		r.noReports = true
		r.log.Warn("the broker refuses receiver reports: publishers cannot adapt to this viewer's path; give viewers publish rights to "+
			protocol.ParticipantReport(r.cfg.Room, protocol.AnyParticipant, r.cfg.Name), "err", le)
		return
	}
	for _, t := range r.Tiles() {
		rep, ok := t.takeReport(r.cfg.Name, now)
		if !ok {
			continue
		}
		b, err := rep.Encode()
		if err == nil {
			err = r.nc.Publish(protocol.ParticipantReport(r.cfg.Room, t.Name(), r.cfg.Name), b)
		}
		if err != nil {
			r.log.Debug("receiver report not sent", "participant", t.Name(), "err", err)
		}
	}
}

func (r *Room) beat(leaving bool) {
	if r.cfg.NoPresence || r.replay != nil || !r.nc.IsConnected() {
		return
	}
	b, err := protocol.ViewerPresence(r.start, r.views(), leaving).Encode()
	if err == nil {
		err = r.nc.Publish(r.self.PresenceSubject(), b)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.log.Debug("presence not sent", "err", err)
	}
}

// views is what the room takes: the H.264 layer where it decodes H.264,
// and the JPEG layer unless every publisher sends H.264 (so that a
// publisher encoding JPEG on demand spends nothing on this viewer).
func (r *Room) views() []protocol.Layer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l := r.layer
	if !r.h264 {
		return []protocol.Layer{l}
	}
	h := l.As(protocol.CodecH264)
	jpeg := false
	for _, t := range r.tiles {
		jpeg = jpeg || !t.takesH264(l)
	}
	for _, j := range r.joining {
		jpeg = jpeg || !j.p.Sends(h)
	}
	if jpeg {
		return []protocol.Layer{h, l}
	}
	return []protocol.Layer{h}
}

// String describes stats in one line, for terminals.
func (s TileStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s %s %dx%d %5.1f fps  latency p50 %5.1f ms p99 %5.1f ms  %6.0f kbit/s  frames %d drops %d bad %d",
		s.Room, s.Participant, s.Layer, s.Width, s.Height, s.FPS, s.LatencyP50, s.LatencyP99, s.Kbps, s.Frames, s.Drops, s.Bad)
	if s.Stalled {
		b.WriteString("  STALLED")
	}
	return b.String()
}
