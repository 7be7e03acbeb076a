package subscriber

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// ListenFor is how long ListRooms listens: a little over one beat.
const ListenFor = protocol.Beat + 500*time.Millisecond

// MaxAsked bounds the rooms where ListRooms announces itself as a viewer
// to get a frame from publishers that encode only watched layers.
const MaxAsked = 64

// MaxListed bounds the participants ListRooms keeps while it listens:
// presence is cheap to send, so a flood of it must not grow the lister's
// memory without end. The excess is dropped.
const MaxListed = 4096

// ListRooms listens to every room's presence for wait (ListenFor if 0)
// and returns the rooms it heard of, sorted by name, members sorted too.
// No central state is involved: presence is the directory.
//
// Presence alone does not make a publisher: a user allowed only to view
// may still announce itself as one. A participant whose presence says
// publisher is listed only once one of its frames has arrived (ListRooms
// listens for them, one participant at a time, and waits up to a beat
// more for the last ones), and a room is listed only while someone
// publishes in it; viewers are listed in those rooms. A connection that
// may read presence but not frames (a directory user) cannot tell: it
// lists rooms as their presence describes them, each publisher marked
// Unverified.
//
// A publisher that encodes only watched layers (--encode watched) sends
// no frame while nobody watches, so ListRooms asks, as the web gateway's
// directory does: where it awaits a publisher's first frame (in up to
// MaxAsked rooms), it announces itself as a viewer of lo, named
// rooms-<8 hex>, and leaves when it is done. Only on a broker that asks
// for no login: where one does (an access file), a user announces
// presence under its own name only, which a listing must not take over
// from the user's own viewer; such a publisher is listed once someone
// watches it.
func ListRooms(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]protocol.RoomInfo, error) {
	if wait <= 0 {
		wait = ListenFor
	}
	canSee, probeRoom, err := mayReadFrames(nc)
	if err != nil {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	l := &lister{nc: nc, canSee: canSee, mayAsk: canSee && !nc.AuthRequired(), self: protocol.RandomName("rooms"), since: time.Now(), rooms: map[string]map[string]*listed{},
		asked: map[string]bool{}, probed: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(protocol.AllPresence, l.onPresence)
	if err != nil {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	defer l.stop()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	if err := nc.LastError(); err != nil && !strings.Contains(err.Error(), probeRoom) {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	_ = sub.Unsubscribe()
	// Publishers heard late get up to a beat more to show a frame.
	late := time.NewTimer(protocol.Beat)
	defer late.Stop()
	for l.probing() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-late.C:
		case <-l.probed:
			continue
		}
		break
	}
	return l.result(), nil
}

// mayReadFrames reports whether the broker lets nc subscribe to frames:
// a subscription to a room nobody uses (named room), refused or not.
func mayReadFrames(nc *nats.Conn) (ok bool, room string, err error) {
	room = protocol.RandomName("probe")
	sub, err := nc.SubscribeSync(protocol.RoomFrames(room, protocol.Lo))
	if err != nil {
		return false, room, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return false, room, err
	}
	le := nc.LastError()
	return !(errors.Is(le, nats.ErrPermissionViolation) && strings.Contains(le.Error(), room)), room, nil
}

// lister is ListRooms' state while it listens.
type lister struct {
	nc     *nats.Conn
	canSee bool      // the broker lets nc read frames
	mayAsk bool      // it announces itself where it awaits a frame
	self   string    // the name it announces itself under where it asks
	since  time.Time // when it began, for its presence

	mu     sync.Mutex
	rooms  map[string]map[string]*listed
	n      int // participants in rooms
	probes int // publishers whose first frame is awaited
	probed chan struct{}
	done   bool
	// asked holds the rooms where it announced itself as a viewer of lo.
	asked map[string]bool
}

type listed struct {
	m     protocol.Member
	live  bool // a frame of it arrived
	probe *nats.Subscription
}

func (l *lister) onPresence(m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil || !s.Presence {
		return
	}
	p, err := protocol.DecodePresence(m.Data)
	if err != nil {
		return
	}
	room, name := s.Room(), s.Participant()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || name == l.self {
		return
	}
	members := l.rooms[room]
	e := members[name]
	if p.Leaving {
		if e != nil {
			l.forget(room, name, e)
		}
		return
	}
	if e == nil {
		if l.n >= MaxListed {
			return
		}
		if members == nil {
			members = map[string]*listed{}
			l.rooms[room] = members
		}
		e = &listed{}
		members[name] = e
		l.n++
	}
	e.m = p.Member(name)
	if p.Role == protocol.RolePublisher && l.canSee && !e.live && e.probe == nil {
		e.probe, _ = l.nc.Subscribe(protocol.ParticipantAll(room, name), func(m *nats.Msg) { l.onProbe(room, name, m) })
		if e.probe != nil {
			l.probes++
			if l.mayAsk {
				l.ask(room)
			}
		}
	}
}

// ask announces the lister as a viewer of lo in room, once, so that a
// publisher there that encodes only watched layers sends a frame. l.mu
// is held.
func (l *lister) ask(room string) {
	if l.asked[room] || len(l.asked) >= MaxAsked {
		return
	}
	l.asked[room] = true
	l.announce(room, false)
}

// announce beats the lister's presence in room as a viewer of lo, or
// leaving it.
func (l *lister) announce(room string, leaving bool) {
	a, err := protocol.NewAddress(room, l.self)
	if err != nil {
		return
	}
	p := protocol.ViewerPresence(l.since, []protocol.Layer{protocol.Lo}, leaving)
	if b, err := p.Encode(); err == nil {
		_ = l.nc.Publish(a.PresenceSubject(), b)
	}
}

// onProbe marks a publisher live at its first frame.
func (l *lister) onProbe(room, name string, m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil || s.Presence {
		return
	}
	if _, err := protocol.ParseFrame(m.Header, m.Data); err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.rooms[room][name]
	if e == nil || e.live || e.probe == nil || l.done {
		return
	}
	e.live = true
	l.endProbe(e)
}

// endProbe stops e's probe. l.mu is held.
func (l *lister) endProbe(e *listed) {
	if e.probe == nil {
		return
	}
	_ = e.probe.Unsubscribe()
	e.probe = nil
	l.probes--
	select {
	case l.probed <- struct{}{}:
	default:
	}
}

// forget drops a participant that left. l.mu is held.
func (l *lister) forget(room, name string, e *listed) {
	l.endProbe(e)
	delete(l.rooms[room], name)
	l.n--
}

func (l *lister) probing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probes > 0
}

// stop ends every probe and leaves the rooms where it asked.
func (l *lister) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	for _, members := range l.rooms {
		for _, e := range members {
			l.endProbe(e)
		}
	}
	for room := range l.asked {
		l.announce(room, true)
	}
	if len(l.asked) > 0 {
		_ = l.nc.FlushTimeout(time.Second)
	}
}

// result is the rooms with a publisher, as ListRooms returns them.
func (l *lister) result() []protocol.RoomInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]protocol.RoomInfo, 0, len(l.rooms))
	for name, members := range l.rooms {
		ri := protocol.RoomInfo{Room: name}
		publishers := 0
		for _, e := range members {
			m := e.m
			if m.Role == protocol.RolePublisher {
				switch {
				case e.live:
				case !l.canSee:
					m.Unverified = true
				default:
					continue // joining, or a viewer posing as a publisher
				}
				publishers++
			}
			ri.Members = append(ri.Members, m)
		}
		if publishers == 0 {
			continue
		}
		slices.SortFunc(ri.Members, func(a, b protocol.Member) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, ri)
	}
	slices.SortFunc(out, func(a, b protocol.RoomInfo) int { return strings.Compare(a.Room, b.Room) })
	return out
}
