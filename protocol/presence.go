package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// Codec is the layer's codec string as WebCodecs takes it (RFC 6381),
	// e.g. "avc1.42E01F"; set on Streams (protocol v2).
	Codec string `json:"codec,omitempty"`
	// Bitrate is the layer's target bitrate in bits per second, if it has
	// one (H.264).
	Bitrate int `json:"bitrate,omitempty"`
}

// Presence is the document a participant beats on its presence subject.
//
// Protocol v2 adds Streams and Watches, for the H.264 layers. They are
// fields of their own, and "v" stays 1, so that a v1 client, which
// accepts only JPEG layers in Layers and Views, reads a v2 document as the
// v1 document it contains. A v2 reader skips entries of Streams and
// Watches whose layer it does not know: later codecs stay additive.
type Presence struct {
	Version int         `json:"v"`
	Role    Role        `json:"role"`
	Layers  []LayerInfo `json:"layers,omitempty"`  // the JPEG layers a publisher sends
	Streams []LayerInfo `json:"streams,omitempty"` // the H.264 layers a publisher sends (v2)
	Views   []Layer     `json:"views,omitempty"`   // the JPEG layers a viewer (or a chatting publisher) takes
	Watches []Layer     `json:"watches,omitempty"` // the H.264 layers it takes (v2)
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
		if l.Layer != Hi && l.Layer != Lo {
			return Presence{}, fmt.Errorf("%w: layers lists %q, which is not a JPEG layer (use hi or lo; H.264 layers go in streams)", ErrBadPresence, l.Layer)
		}
		if err := l.check(); err != nil {
			return Presence{}, err
		}
	}
	for _, l := range p.Views {
		if l != Hi && l != Lo {
			return Presence{}, fmt.Errorf("%w: views lists %q, which is not a JPEG layer (use hi or lo; H.264 layers go in watches)", ErrBadPresence, l)
		}
	}
	streams := p.Streams[:0:0]
	for _, l := range p.Streams {
		if l.Layer.Codec() != CodecH264 {
			continue // a later codec's layer, or a v1 one in the wrong place
		}
		if err := l.check(); err != nil {
			return Presence{}, err
		}
		if len(l.Codec) > 64 || !strings.HasPrefix(l.Codec, "avc1.") {
			return Presence{}, fmt.Errorf("%w: layer %s: codec %q is not an H.264 codec string (avc1.PPCCLL)", ErrBadPresence, l.Layer, l.Codec)
		}
		streams = append(streams, l)
	}
	p.Streams = nil
	if len(streams) > 0 {
		p.Streams = streams
	}
	watches := p.Watches[:0:0]
	for _, l := range p.Watches {
		if l.Codec() == CodecH264 {
			watches = append(watches, l)
		}
	}
	p.Watches = nil
	if len(watches) > 0 {
		p.Watches = watches
	}
	return p, nil
}

func (l LayerInfo) check() error {
	if l.Width < 0 || l.Height < 0 || l.Width > MaxDimension || l.Height > MaxDimension || l.FPS < 0 || l.FPS > 1000 || l.Bitrate < 0 {
		return fmt.Errorf("%w: layer %s: size %dx%d at %g fps, %d bit/s is out of range", ErrBadPresence, l.Layer, l.Width, l.Height, l.FPS, l.Bitrate)
	}
	return nil
}

// AllLayers lists every layer the presence announces: Layers, then
// Streams.
func (p Presence) AllLayers() []LayerInfo {
	if len(p.Streams) == 0 {
		return p.Layers
	}
	return append(slices.Clip(p.Layers), p.Streams...)
}

// AllViews lists every layer the participant takes: Views, then Watches.
func (p Presence) AllViews() []Layer {
	if len(p.Watches) == 0 {
		return p.Views
	}
	return append(slices.Clip(p.Views), p.Watches...)
}

// Sends reports whether the presence announces layer l.
func (p Presence) Sends(l Layer) bool {
	_, ok := p.Layer(l)
	return ok
}

// Layer returns what the presence says of layer l, if it announces it.
func (p Presence) Layer(l Layer) (LayerInfo, bool) {
	for _, li := range p.AllLayers() {
		if li.Layer == l {
			return li, true
		}
	}
	return LayerInfo{}, false
}

// ViewerPresence is a viewer's beat: the layers it takes, since started,
// or that it leaves.
func ViewerPresence(started time.Time, views []Layer, leaving bool) Presence {
	p := Presence{Role: RoleViewer, Started: started, Leaving: leaving}
	p.SetViews(views)
	return p
}

// SetViews sets Views and Watches from ls, each layer where its codec
// belongs.
func (p *Presence) SetViews(ls []Layer) {
	p.Views, p.Watches = nil, nil
	for _, l := range ls {
		if l.Codec() == CodecJPEG {
			p.Views = append(p.Views, l)
		} else {
			p.Watches = append(p.Watches, l)
		}
	}
}

// SetLayers sets Layers and Streams from ls, each where its codec belongs.
func (p *Presence) SetLayers(ls []LayerInfo) {
	p.Layers, p.Streams = nil, nil
	for _, l := range ls {
		if l.Layer.Codec() == CodecJPEG {
			p.Layers = append(p.Layers, l)
		} else {
			p.Streams = append(p.Streams, l)
		}
	}
}

// Member is one participant of a room as its presence describes it: an
// entry of "vidhub rooms --json" and of a web gateway's /api/rooms.
type Member struct {
	Name    string      `json:"name"`              // participant name
	Role    Role        `json:"role"`              // publisher or viewer
	Layers  []LayerInfo `json:"layers,omitempty"`  // the JPEG layers a publisher sends
	Streams []LayerInfo `json:"streams,omitempty"` // its H.264 layers
	Views   []Layer     `json:"views,omitempty"`   // the JPEG layers it takes
	Watches []Layer     `json:"watches,omitempty"` // the H.264 layers it takes
	Started time.Time   `json:"started"`           // when it joined
	// Unverified marks a publisher known from its presence alone: the
	// lister could not read frames to check that it publishes (see
	// subscriber.ListRooms). Presence alone proves nothing: a user who
	// may only view can announce itself as a publisher.
	Unverified bool `json:"unverified,omitempty"`
}

// Member is the room member that participant name, beating p, is.
func (p Presence) Member(name string) Member {
	return Member{Name: name, Role: p.Role, Layers: p.Layers, Streams: p.Streams, Views: p.Views, Watches: p.Watches, Started: p.Started}
}

// RoomInfo is one room and who is in it, members sorted by name.
type RoomInfo struct {
	Room    string   `json:"room"`         // the room's name
	Members []Member `json:"participants"` // who is in it
}
