package web

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/protocol"
)

// Bounds on what presence may make the directory keep. Presence is cheap
// to send, and a user allowed to view every room may beat it in every
// room, so what presence alone adds is bounded; the excess is dropped,
// counted (vidhub_web_presence_dropped_total) and logged now and then.
const (
	// maxMembers bounds the participants of one room.
	maxMembers = 1024
	// maxUnproven bounds the participants kept in rooms where no one
	// has been seen publishing (yet), over all rooms...
	maxUnproven = 1024
	// ... and maxUnprovenPerName the rooms of that kind one name may be
	// kept in. A NATS user announces itself only under its own name (the
	// access file), so this bounds each user; a gateway's names are one
	// per socket.
	maxUnprovenPerName = 8
	// maxRooms bounds the rooms kept at all.
	maxRooms = 4096
)

// directory keeps every room's participants from their presence, for as
// long as the gateway runs: the live form of subscriber.ListRooms. A
// participant is gone after protocol.MissedBeats silent beats or a
// leaving beat.
//
// Presence alone does not make a publisher: a user who may only view can
// beat a publisher's presence on its own subject. A participant whose
// presence says publisher is listed as one only once one of its frames
// has arrived: the directory listens for its first frame (a subscription
// to that participant alone, ended at the first frame), and a room is
// listed only while someone in it has proven so that it publishes.
type directory struct {
	nc  *nats.Conn // nil: no frames are awaited, so no one is proven
	log *slog.Logger

	mu       sync.Mutex
	rooms    map[string]map[string]*entry
	unproven map[string]int // per name: rooms without a proven publisher it is kept in
	nUnprov  int            // participants kept in such rooms
	changed  chan struct{}  // a participant came or went
	bad      uint64

	dropped atomic.Uint64 // presence beats dropped by the bounds above
	dropLog rate.Sometimes
}

type entry struct {
	p    protocol.Presence
	seen time.Time
	// live: a frame of it arrived, so it may publish; probe awaits the
	// first one.
	live  bool
	probe *nats.Subscription
}

func newDirectory(nc *nats.Conn, log *slog.Logger) *directory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &directory{
		nc: nc, log: log,
		rooms: map[string]map[string]*entry{}, unproven: map[string]int{},
		changed: make(chan struct{}, 1), dropLog: rate.Sometimes{Interval: logEvery},
	}
}

// onPresence is the NATS callback on protocol.AllPresence.
func (d *directory) onPresence(m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil || !s.Presence {
		d.countBad()
		return
	}
	p, err := protocol.DecodePresence(m.Data)
	if err != nil {
		d.countBad()
		return
	}
	d.update(s.Room(), s.Participant(), p, time.Now())
}

func (d *directory) countBad() {
	d.mu.Lock()
	d.bad++
	d.mu.Unlock()
}

func (d *directory) update(room, name string, p protocol.Presence, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	members := d.rooms[room]
	if p.Leaving {
		if e, ok := members[name]; ok {
			d.remove(room, name, e)
			d.signal()
		}
		return
	}
	e, ok := members[name]
	if !ok {
		if why := d.full(room, name, members); why != "" {
			d.dropped.Add(1)
			d.dropLog.Do(func() {
				d.log.Warn("presence dropped", "why", why, "room", room, "participant", name, "dropped", d.dropped.Load())
			})
			return
		}
		if members == nil {
			members = map[string]*entry{}
			d.rooms[room] = members
		}
		if !hasLive(members) {
			d.unproven[name]++
			d.nUnprov++
		}
		e = &entry{}
		members[name] = e
	}
	if !ok || e.p.Role != p.Role || !slices.Equal(e.p.Views, p.Views) {
		// Who is in the room, or what JPEG layers a participant views
		// (what a publishing browser encodes), changed.
		d.signal()
	}
	e.p, e.seen = p, now
	if p.Role == protocol.RolePublisher && !e.live && e.probe == nil && d.nc != nil {
		// Its first frame proves it may publish.
		e.probe, _ = d.nc.Subscribe(protocol.ParticipantAll(room, name), func(m *nats.Msg) { d.onProbe(room, name, m) })
	}
}

// full says why a new participant cannot be kept, or "". d.mu is held.
func (d *directory) full(room, name string, members map[string]*entry) string {
	switch {
	case members == nil && len(d.rooms) >= maxRooms:
		return "too many rooms"
	case len(members) >= maxMembers:
		return "too many participants in the room"
	case hasLive(members):
		return ""
	case d.nUnprov >= maxUnproven:
		return "too many participants in rooms where no one publishes"
	case d.unproven[name] >= maxUnprovenPerName:
		return "participant in too many rooms where no one publishes"
	}
	return ""
}

// onProbe marks a participant live at its first frame.
func (d *directory) onProbe(room, name string, m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil || s.Presence {
		return
	}
	if _, err := protocol.ParseFrame(m.Header, m.Data); err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.rooms[room][name]
	if e == nil || e.live || e.probe != m.Sub {
		return
	}
	e.live = true
	endProbe(e)
	d.recount()
	d.signal()
}

// sawFrame marks a participant live: one of its frames was seen. It is
// how a directory without a connection (a replay's, fed from a
// recording) learns who publishes.
func (d *directory) sawFrame(room, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.rooms[room][name]
	if e == nil || e.live {
		return
	}
	e.live = true
	endProbe(e)
	d.recount()
	d.signal()
}

func endProbe(e *entry) {
	if e.probe != nil {
		_ = e.probe.Unsubscribe()
		e.probe = nil
	}
}

// remove forgets a participant. d.mu is held.
func (d *directory) remove(room, name string, e *entry) {
	endProbe(e)
	members := d.rooms[room]
	delete(members, name)
	if len(members) == 0 {
		delete(d.rooms, room)
	}
	d.recount()
}

// recount counts the participants of rooms without a live publisher.
// d.mu is held. It walks those rooms only, which the bounds keep small.
func (d *directory) recount() {
	clear(d.unproven)
	d.nUnprov = 0
	for _, members := range d.rooms {
		if hasLive(members) {
			continue
		}
		for name := range members {
			d.unproven[name]++
			d.nUnprov++
		}
	}
}

// hasLive reports whether a publisher of members has shown a frame.
func hasLive(members map[string]*entry) bool {
	for _, e := range members {
		if e.live && e.p.Role == protocol.RolePublisher {
			return true
		}
	}
	return false
}

// sweep forgets participants silent for protocol.MissedBeats beats.
func (d *directory) sweep(now time.Time) {
	limit := time.Duration(protocol.MissedBeats) * protocol.Beat
	d.mu.Lock()
	defer d.mu.Unlock()
	for room, members := range d.rooms {
		for name, e := range members {
			if now.Sub(e.seen) > limit {
				endProbe(e)
				delete(members, name)
				d.signal()
			}
		}
		if len(members) == 0 {
			delete(d.rooms, room)
		}
	}
	d.recount()
}

// close ends every probe, for a gateway that stops while its connection
// lives on.
func (d *directory) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, members := range d.rooms {
		for _, e := range members {
			endProbe(e)
		}
	}
	d.nc = nil
}

// maxProbeShown bounds the rooms where the gateway announces itself as a
// viewer of lo for the sake of probes (see probing).
const maxProbeShown = 64

// probing returns, sorted, up to maxProbeShown rooms where a publisher's
// first frame is awaited. A publisher that encodes only watched layers
// (--encode watched) sends no frame until someone's presence asks for
// one, so the gateway asks: it announces itself as a viewer of lo there
// (Gateway.shows), the way it announces what its pages show.
func (d *directory) probing() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for room, members := range d.rooms {
		for _, e := range members {
			if e.probe != nil {
				out = append(out, room)
				break
			}
		}
	}
	slices.Sort(out)
	return out[:min(len(out), maxProbeShown)]
}

// tracked is how many rooms the directory keeps, listed or not.
func (d *directory) tracked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.rooms)
}

// signal notes a change. d.mu is held.
func (d *directory) signal() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// list returns every room where someone publishes, and its members,
// sorted; the same shape as "vidhub rooms --json".
func (d *directory) list() []protocol.RoomInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]protocol.RoomInfo, 0, len(d.rooms))
	for name, members := range d.rooms {
		if hasLive(members) {
			out = append(out, roomInfo(name, members))
		}
	}
	slices.SortFunc(out, func(a, b protocol.RoomInfo) int { return strings.Compare(a.Room, b.Room) })
	return out
}

// room returns one room's members; an unknown room has none.
func (d *directory) room(name string) protocol.RoomInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return roomInfo(name, d.rooms[name])
}

// roomInfo lists the viewers of members and the publishers whose frames
// have arrived; one that only says it publishes is left out (joining).
func roomInfo(name string, members map[string]*entry) protocol.RoomInfo {
	ri := protocol.RoomInfo{Room: name, Members: make([]protocol.Member, 0, len(members))}
	for n, e := range members {
		if e.p.Role == protocol.RolePublisher && !e.live {
			continue
		}
		ri.Members = append(ri.Members, e.p.Member(n))
	}
	slices.SortFunc(ri.Members, func(a, b protocol.Member) int { return strings.Compare(a.Name, b.Name) })
	return ri
}

// has reports whether name is present in room with role, as its presence
// says (proven by frames or not: a name that is taken is taken).
func (d *directory) has(room, name string, role protocol.Role) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.rooms[room][name]
	return ok && e.p.Role == role
}
