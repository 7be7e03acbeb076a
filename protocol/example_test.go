package protocol_test

import (
	"errors"
	"fmt"

	"github.com/vidhub/vidhub/protocol"
)

// Subjects are built from checked names, never by hand: a name with a
// dot, '*' or '>' is refused, which makes subject injection impossible.
func Example() {
	a, err := protocol.NewAddress("lobby", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.FrameSubject(protocol.Hi))
	fmt.Println(a.FrameSubject(protocol.Lo))
	fmt.Println(a.PresenceSubject())
	fmt.Println(protocol.RoomFrames("lobby", protocol.Lo)) // every publisher's thumbnails
	fmt.Println(protocol.AllPresence)                      // every room's presence: the directory

	_, err = protocol.NewAddress("lobby.>", "alice")
	fmt.Println(errors.Is(err, protocol.ErrBadName))
	// Output:
	// vidhub.lobby.alice.hi
	// vidhub.lobby.alice.lo
	// vidhub.lobby.alice.presence
	// vidhub.lobby.*.lo
	// vidhub.*.*.presence
	// true
}

// ParseSubject tells frames from presence and names the room, the
// participant and the layer.
func ExampleParseSubject() {
	s, err := protocol.ParseSubject("vidhub.lobby.alice.lo")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Room(), s.Participant(), s.Layer, s.Presence)
	// Output: lobby alice lo false
}

// A presence document is checked as it is decoded.
func ExampleDecodePresence() {
	p, err := protocol.DecodePresence([]byte(`{"v":1,"role":"viewer","views":["lo"],"started":"2025-01-02T03:04:05Z"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Role, p.Views)
	_, err = protocol.DecodePresence([]byte(`{"v":1,"role":"admin"}`))
	fmt.Println(errors.Is(err, protocol.ErrBadPresence))
	// Output:
	// viewer [lo]
	// true
}
