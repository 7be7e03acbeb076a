package web

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// directory keeps every room's participants from their presence, for as
// long as the gateway runs: the live form of subscriber.ListRooms. A
// participant is gone after protocol.MissedBeats silent beats or a
// leaving beat.
type directory struct {
	mu      sync.Mutex
	rooms   map[string]map[string]*entry
	changed chan struct{} // a participant came or went
	bad     uint64
}

type entry struct {
	p    protocol.Presence
	seen time.Time
}

func newDirectory() *directory {
	return &directory{rooms: map[string]map[string]*entry{}, changed: make(chan struct{}, 1)}
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
		if _, ok := members[name]; ok {
			delete(members, name)
			if len(members) == 0 {
				delete(d.rooms, room)
			}
			d.signal()
		}
		return
	}
	if members == nil {
		members = map[string]*entry{}
		d.rooms[room] = members
	}
	e, ok := members[name]
	if !ok || e.p.Role != p.Role {
		d.signal()
	}
	if !ok {
		e = &entry{}
		members[name] = e
	}
	e.p, e.seen = p, now
}

// sweep forgets participants silent for protocol.MissedBeats beats.
func (d *directory) sweep(now time.Time) {
	limit := time.Duration(protocol.MissedBeats) * protocol.Beat
	d.mu.Lock()
	defer d.mu.Unlock()
	for room, members := range d.rooms {
		for name, e := range members {
			if now.Sub(e.seen) > limit {
				delete(members, name)
				d.signal()
			}
		}
		if len(members) == 0 {
			delete(d.rooms, room)
		}
	}
}

// signal notes a change. d.mu is held.
func (d *directory) signal() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// rooms returns every room and its members, sorted; the same shape as
// "vidhub rooms --json".
func (d *directory) list() []protocol.RoomInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]protocol.RoomInfo, 0, len(d.rooms))
	for name, members := range d.rooms {
		out = append(out, roomInfo(name, members))
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

func roomInfo(name string, members map[string]*entry) protocol.RoomInfo {
	ri := protocol.RoomInfo{Room: name, Members: make([]protocol.Member, 0, len(members))}
	for n, e := range members {
		ri.Members = append(ri.Members, e.p.Member(n))
	}
	slices.SortFunc(ri.Members, func(a, b protocol.Member) int { return strings.Compare(a.Name, b.Name) })
	return ri
}

// has reports whether name is present in room with role.
func (d *directory) has(room, name string, role protocol.Role) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.rooms[room][name]
	return ok && e.p.Role == role
}
