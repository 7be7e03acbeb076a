package subscriber

import (
	"context"
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

// ListRooms listens to every room's presence for wait (ListenFor if 0)
// and returns the rooms it heard of, sorted by name, members sorted too.
// No central state is involved: presence is the directory.
func ListRooms(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]protocol.RoomInfo, error) {
	if wait <= 0 {
		wait = ListenFor
	}
	var mu sync.Mutex
	rooms := map[string]map[string]protocol.Member{}
	sub, err := nc.Subscribe(protocol.AllPresence, func(m *nats.Msg) {
		s, err := protocol.ParseSubject(m.Subject)
		if err != nil {
			return
		}
		p, err := protocol.DecodePresence(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		members := rooms[s.Room()]
		if members == nil {
			members = map[string]protocol.Member{}
			rooms[s.Room()] = members
		}
		if p.Leaving {
			delete(members, s.Participant())
			return
		}
		members[s.Participant()] = p.Member(s.Participant())
	})
	if err != nil {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return nil, fmt.Errorf("listening for presence: %w", err)
	}
	if err := nc.LastError(); err != nil {
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
	mu.Lock()
	defer mu.Unlock()
	out := make([]protocol.RoomInfo, 0, len(rooms))
	for name, members := range rooms {
		if len(members) == 0 {
			continue
		}
		ri := protocol.RoomInfo{Room: name}
		for _, m := range members {
			ri.Members = append(ri.Members, m)
		}
		slices.SortFunc(ri.Members, func(a, b protocol.Member) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, ri)
	}
	slices.SortFunc(out, func(a, b protocol.RoomInfo) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}
