package web

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestPresenceFlood: mallory, who may view every room and so announce
// herself in any of them, beats a publisher's presence in 2,000 rooms.
// Neither /api/rooms nor "vidhub rooms" lists a room of hers or lists
// her as a publisher; the directory keeps at most maxUnprovenPerName of
// her rooms and counts what it drops; the real publisher stays listed.
func TestPresenceFlood(t *testing.T) {
	f, err := access.Parse([]byte(`
users:
  - {name: alice, password: a, view: [lobby], publish: [lobby]}
  - {name: mallory, password: m, view: ["*"]}
  - {name: gateway, password: g, view: ["*"], publish: [lobby], any_name: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := hubtest.Broker(t, broker.Config{Access: f})
	url := b.ClientURL()
	g, err := New(Config{Conn: hubtest.Connect(t, url, nats.UserInfo("gateway", "g")), Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	hubtest.Publish(t, hubtest.Connect(t, url, nats.UserInfo("alice", "a")), hubtest.Pattern("lobby", "alice"))
	hubtest.Eventually(t, 15*time.Second, func() bool { return listsOnly(t, g.URL(), "lobby", "alice") == "" },
		"/api/rooms: %v", hubtest.Lazy(func() any { return listsOnly(t, g.URL(), "lobby", "alice") }))

	const rooms = 2000
	mallory := hubtest.Connect(t, url, nats.UserInfo("mallory", "m"))
	pub, _ := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(),
		Layers: []protocol.LayerInfo{{Layer: protocol.Hi, Width: 1280, Height: 720, FPS: 30}}}.Encode()
	view, _ := protocol.Presence{Role: protocol.RoleViewer, Started: time.Now(), Views: []protocol.Layer{protocol.Lo}}.Encode()
	flood := func() {
		for i := range rooms {
			_ = mallory.Publish(protocol.ParticipantPresence(protocolRoom(i), "mallory"), pub)
		}
		_ = mallory.Publish(protocol.ParticipantPresence("lobby", "mallory"), pub)
	}
	flood()
	// Her last word, a viewer in lobby, comes after the flood on the
	// same connection and subscription: once the directory has it, it
	// has seen the flood.
	_ = mallory.Publish(protocol.ParticipantPresence("lobby", "mallory"), view)
	hubtest.Eventually(t, 15*time.Second, func() bool { return g.dir.has("lobby", "mallory", protocol.RoleViewer) },
		"the directory never saw mallory's flood end")
	if err := mallory.LastError(); err != nil {
		t.Fatalf("the broker refused mallory's presence: %v", err)
	}
	if n := g.dir.tracked(); n > 1+maxUnprovenPerName {
		t.Errorf("the directory keeps %d rooms; want at most %d", n, 1+maxUnprovenPerName)
	}
	if n := g.dir.dropped.Load(); n < rooms-maxUnprovenPerName {
		t.Errorf("%d presence beats dropped; want at least %d", n, rooms-maxUnprovenPerName)
	}
	if why := listsOnly(t, g.URL(), "lobby", "alice"); why != "" {
		t.Errorf("/api/rooms after the flood: %s", why)
	}

	// "vidhub rooms" while she floods, once a beat, as a user that can
	// see frames (mallory herself).
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		tick := time.NewTicker(protocol.Beat / 2)
		defer tick.Stop()
		for range 60 { // bounded: 30 s
			flood()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	p := hubtest.Run(t, 60*time.Second, nil, hubtest.VidhubStatic(t), "rooms", "--json", "--nats", url, "--user", "mallory", "--password", "m")
	close(stop)
	<-flooded
	var listed []protocol.RoomInfo
	if err := json.Unmarshal([]byte(p.Stdout.String()), &listed); p.Code() != 0 || err != nil {
		t.Fatalf("vidhub rooms: exit %d, %v\n%s", p.Code(), err, p.Output())
	}
	if why := only(listed, "lobby", "alice"); why != "" {
		t.Errorf("vidhub rooms during the flood: %s", why)
	}
}

func protocolRoom(i int) string { return "fake-" + strconv.Itoa(i) }

// listsOnly fetches /api/rooms and says how it differs from room with
// publisher as its one publisher, or "".
func listsOnly(t *testing.T, base, room, publisher string) string {
	t.Helper()
	code, body := get(t, base+"/api/rooms")
	var rooms []protocol.RoomInfo
	if err := json.Unmarshal([]byte(body), &rooms); code != 200 || err != nil {
		return "status " + strconv.Itoa(code) + ": " + body
	}
	return only(rooms, room, publisher)
}

// only says how rooms differ from room with publisher as its one
// publisher, or "".
func only(rooms []protocol.RoomInfo, room, publisher string) string {
	if len(rooms) != 1 || rooms[0].Room != room {
		if len(rooms) > 3 {
			rooms = rooms[:3]
		}
		b, _ := json.Marshal(rooms)
		return "want " + room + " alone, got (first 3) " + string(b)
	}
	for _, m := range rooms[0].Members {
		if m.Role == protocol.RolePublisher && (m.Name != publisher || m.Unverified) {
			return m.Name + " listed as a publisher"
		}
	}
	for _, m := range rooms[0].Members {
		if m.Name == publisher && m.Role == protocol.RolePublisher {
			return ""
		}
	}
	return publisher + " not listed as a publisher"
}
