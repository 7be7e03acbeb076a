package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version carried in presence.
const Version = 1

// Beat is how often a participant announces its presence.
const Beat = time.Second

// MissedBeats is how many beats may pass in silence before a participant
// counts as gone.
const MissedBeats = 3

// MaxPresenceSize bounds a presence document; anything larger is refused
// before it is parsed.
const MaxPresenceSize = 4096

// Role is what a participant does in a room.
type Role string

// The roles of protocol v1.
const (
	RolePublisher Role = "publisher" // sends video (and may view, as in a chat)
	RoleViewer    Role = "viewer"    // only watches
)

// ErrBadPresence is returned (wrapped) for a presence document that breaks
// the protocol.
var ErrBadPresence = errors.New("bad presence")

// LayerInfo describes one layer a publisher sends.
type LayerInfo struct {
	Layer  Layer   `json:"layer"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	FPS    float64 `json:"fps"`
}

// Presence is the document a participant beats on its presence subject.
type Presence struct {
	Version int         `json:"v"`
	Role    Role        `json:"role"`
	Layers  []LayerInfo `json:"layers,omitempty"` // what a publisher sends
	Views   []Layer     `json:"views,omitempty"`  // what a viewer (or a chatting publisher) takes
	Started time.Time   `json:"started"`
	Leaving bool        `json:"leaving,omitempty"`
}

// Encode marshals p, filling in the version.
func (p Presence) Encode() ([]byte, error) {
	p.Version = Version
	return json.Marshal(p)
}

// DecodePresence parses and checks a presence document.
func DecodePresence(b []byte) (Presence, error) {
	if len(b) > MaxPresenceSize {
		return Presence{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadPresence, len(b), MaxPresenceSize)
	}
	var p Presence
	if err := json.Unmarshal(b, &p); err != nil {
		return Presence{}, fmt.Errorf("%w: %w", ErrBadPresence, err)
	}
	if p.Version != Version {
		return Presence{}, fmt.Errorf("%w: version %d, want %d", ErrBadPresence, p.Version, Version)
	}
	if p.Role != RolePublisher && p.Role != RoleViewer {
		return Presence{}, fmt.Errorf("%w: role %q, want %q or %q", ErrBadPresence, p.Role, RolePublisher, RoleViewer)
	}
	for _, l := range p.Layers {
		if _, err := ParseLayer(string(l.Layer)); err != nil {
			return Presence{}, fmt.Errorf("%w: %w", ErrBadPresence, err)
		}
		if l.Width < 0 || l.Height < 0 || l.Width > MaxDimension || l.Height > MaxDimension || l.FPS < 0 || l.FPS > 1000 {
			return Presence{}, fmt.Errorf("%w: layer %s: size %dx%d at %g fps is out of range", ErrBadPresence, l.Layer, l.Width, l.Height, l.FPS)
		}
	}
	for _, l := range p.Views {
		if _, err := ParseLayer(string(l)); err != nil {
			return Presence{}, fmt.Errorf("%w: %w", ErrBadPresence, err)
		}
	}
	return p, nil
}

// Sends reports whether the presence announces layer l.
func (p Presence) Sends(l Layer) bool {
	for _, li := range p.Layers {
		if li.Layer == l {
			return true
		}
	}
	return false
}

// Member is one participant of a room as its presence describes it: an
// entry of "vidhub rooms --json" and of a web gateway's /api/rooms.
type Member struct {
	Name    string      `json:"name"`             // participant name
	Role    Role        `json:"role"`             // publisher or viewer
	Layers  []LayerInfo `json:"layers,omitempty"` // what a publisher sends
	Views   []Layer     `json:"views,omitempty"`  // what it takes
	Started time.Time   `json:"started"`          // when it joined
	// Unverified marks a publisher known from its presence alone: the
	// lister could not read frames to check that it publishes (see
	// subscriber.ListRooms). Presence alone proves nothing: a user who
	// may only view can announce itself as a publisher.
	Unverified bool `json:"unverified,omitempty"`
}

// Member is the room member that participant name, beating p, is.
func (p Presence) Member(name string) Member {
	return Member{Name: name, Role: p.Role, Layers: p.Layers, Views: p.Views, Started: p.Started}
}

// RoomInfo is one room and who is in it, members sorted by name.
type RoomInfo struct {
	Room    string   `json:"room"`         // the room's name
	Members []Member `json:"participants"` // who is in it
}
