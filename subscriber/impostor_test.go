package subscriber_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// impostorAccess: alice publishes into lobby; bob may only view lobby
// and hall; wall views every room.
const impostorAccess = `
users:
  - {name: alice, password: a, view: [lobby], publish: [lobby]}
  - {name: bob, password: b, view: [lobby, hall]}
  - {name: wall, password: w, view: ["*"]}
`

// beatAsPublisher beats a publisher's presence for name in each room on
// nc, as a view-only user may (on its own presence subject), every 200
// ms until the test ends.
func beatAsPublisher(t *testing.T, nc *nats.Conn, name string, rooms ...string) {
	t.Helper()
	p := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(),
		Layers: []protocol.LayerInfo{{Layer: protocol.Hi, Width: 1280, Height: 720, FPS: 30}, {Layer: protocol.Lo, Width: 320, Height: 180, FPS: 30}}}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, room := range rooms {
				_ = nc.Publish(protocol.ParticipantPresence(room, name), b)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// TestViewerPosingAsPublisher: a user with view rights only beats a
// publisher's presence. The broker lets it (a viewer announces itself),
// but it gets no tile, does not move an auto viewer off hi, and is not
// listed as a publisher; a room where only it "publishes" is not listed.
func TestViewerPosingAsPublisher(t *testing.T) {
	f, err := access.Parse([]byte(impostorAccess))
	if err != nil {
		t.Fatal(err)
	}
	url := hubtest.Broker(t, broker.Config{Access: f}).ClientURL()
	as := func(user, password string) *nats.Conn { return hubtest.Connect(t, url, nats.UserInfo(user, password)) }
	hubtest.Publish(t, as("alice", "a"), hubtest.Pattern("lobby", "alice"))

	wall := as("wall", "w")
	stats := make(chan []subscriber.TileStats, 64)
	r, err := subscriber.Join(wall, subscriber.Config{Room: "lobby", Name: "wall", StatsEvery: 250 * time.Millisecond,
		OnStats: func(s []subscriber.TileStats) {
			select {
			case stats <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(r, 5, "alice") }, "no frames from alice")
	if l := r.Layer(); l != protocol.Hi {
		t.Fatalf("one publisher, layer %s; want hi", l)
	}

	bob := as("bob", "b")
	beatAsPublisher(t, bob, "bob", "lobby", "hall")
	hubtest.Eventually(t, 10*time.Second, func() bool {
		j := r.Joining()
		return len(j) == 1 && j[0] == "bob"
	}, "bob's presence never reached the viewer: joining %v", hubtest.Lazy(func() any { return r.Joining() }))
	// For the next stats intervals (each after a layer check), bob has
	// no tile and the viewer stays on hi.
	for range len(stats) {
		<-stats
	}
	for i := range 6 {
		var s []subscriber.TileStats
		select {
		case s = <-stats:
		case <-time.After(10 * time.Second):
			t.Fatal("no stats for 10 s")
		}
		if len(s) != 1 || s[0].Participant != "alice" {
			t.Fatalf("interval %d: tiles %+v; want alice alone", i, s)
		}
		if l := r.Layer(); l != protocol.Hi {
			t.Fatalf("interval %d: layer %s with bob posing as a publisher; want hi", i, l)
		}
	}
	if err := bob.LastError(); err != nil {
		t.Errorf("the broker refused bob's presence (a viewer announces itself): %v", err)
	}

	// Listing: lobby has alice as its publisher, bob nowhere as one; hall,
	// where only bob "publishes", is no room.
	rooms, err := subscriber.ListRooms(context.Background(), wall, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Room != "lobby" {
		t.Fatalf("rooms %+v; want lobby alone", rooms)
	}
	for _, m := range rooms[0].Members {
		if m.Role == protocol.RolePublisher && m.Name != "alice" {
			t.Errorf("lobby lists %s as a publisher", m.Name)
		}
	}
	if !hasPublisher(rooms[0], "alice") {
		t.Errorf("lobby %+v: alice is not listed as its publisher", rooms[0])
	}
}

func hasPublisher(ri protocol.RoomInfo, name string) bool {
	for _, m := range ri.Members {
		if m.Name == name && m.Role == protocol.RolePublisher && !m.Unverified {
			return true
		}
	}
	return false
}
