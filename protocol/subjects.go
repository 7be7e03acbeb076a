package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the first token of every vidhub subject.
const Prefix = "vidhub"

// Layer is one encoding of a participant's video.
type Layer string

// The layers. Protocol v1 has the JPEG layers Hi and Lo; protocol v2
// adds the H.264 layers H264 and H264Lo on subjects of their own, so a v1
// client never meets them.
const (
	Hi     Layer = "hi"     // JPEG, full size
	Lo     Layer = "lo"     // JPEG thumbnail, about LoWidth pixels wide
	H264   Layer = "h264"   // H.264, full size
	H264Lo Layer = "h264lo" // H.264 thumbnail, the size of Lo
)

// Codec is how a layer's frames are coded.
type Codec string

// The codecs.
const (
	CodecJPEG Codec = "jpeg" // every frame one complete JPEG
	CodecH264 Codec = "h264" // one H.264 access unit per frame, Annex B
)

// Codec returns how l's frames are coded.
func (l Layer) Codec() Codec {
	if l == H264 || l == H264Lo {
		return CodecH264
	}
	return CodecJPEG
}

// Small reports whether l is a thumbnail layer (Lo or H264Lo).
func (l Layer) Small() bool { return l == Lo || l == H264Lo }

// As returns the layer of the same size as l coded with c.
func (l Layer) As(c Codec) Layer {
	switch {
	case c == CodecH264 && l.Small():
		return H264Lo
	case c == CodecH264:
		return H264
	case l.Small():
		return Lo
	}
	return Hi
}

// LoWidth is the nominal width of the lo layer in pixels.
const LoWidth = 320

// presenceToken is the last token of a presence subject.
const presenceToken = "presence"

// keyToken is the last token of a keyframe request subject.
const keyToken = "key"

// reportToken is the last token of a receiver report subject.
const reportToken = "rr"

// ErrBadSubject is returned (wrapped) for a subject that is not one of
// protocol v1's.
var ErrBadSubject = errors.New("not a vidhub subject")

// ParseLayer turns "hi", "lo", "h264" or "h264lo" into a Layer.
func ParseLayer(s string) (Layer, error) {
	switch Layer(s) {
	case Hi, Lo, H264, H264Lo:
		return Layer(s), nil
	}
	return "", fmt.Errorf("unknown layer %q: use hi, lo, h264 or h264lo", s)
}

// Address names one participant in one room. Its names are validated when
// it is made, so the subjects it builds are always well formed.
type Address struct {
	room, participant string
}

// NewAddress validates room and participant and returns their Address.
func NewAddress(room, participant string) (Address, error) {
	if err := ValidRoom(room); err != nil {
		return Address{}, err
	}
	if err := ValidParticipant(participant); err != nil {
		return Address{}, err
	}
	return Address{room: room, participant: participant}, nil
}

// Room returns the room name.
func (a Address) Room() string { return a.room }

// Participant returns the participant name.
func (a Address) Participant() string { return a.participant }

// FrameSubject is the subject a participant publishes layer l on.
func (a Address) FrameSubject(l Layer) string {
	return a.SubjectPrefix() + string(l)
}

// PresenceSubject is the subject a participant beats its presence on.
func (a Address) PresenceSubject() string {
	return ParticipantPresence(a.room, a.participant)
}

// KeySubject is the subject viewers ask the participant for a keyframe on.
func (a Address) KeySubject() string { return ParticipantKey(a.room, a.participant) }

// ReportSubject is the subject viewer from sends receiver reports about
// the participant's H.264 layers on (protocol v2); with from
// AnyParticipant it matches them all.
func (a Address) ReportSubject(from string) string {
	return ParticipantReport(a.room, a.participant, from)
}

// AllSubjects matches everything the participant may publish: the
// permission a publisher needs.
func (a Address) AllSubjects() string { return ParticipantAll(a.room, a.participant) }

// SubjectPrefix is what every subject of the participant starts with.
func (a Address) SubjectPrefix() string {
	return RoomPrefix(a.room) + a.participant + "."
}

// AnyRoom stands for every room in the wildcard subjects below: as the
// room of RoomAll, RoomPresence, ParticipantAll or ParticipantPresence it
// makes a subject (a permission) that holds in all rooms at once. It is
// never a valid room name, so it cannot be confused with one.
const AnyRoom = "*"

// AnyParticipant stands for every participant, as the participant of
// ParticipantAll or ParticipantPresence: the permission of a web gateway,
// which publishes for browsers under names it checks itself. Like AnyRoom
// it is never a valid name.
const AnyParticipant = "*"

// In the functions below, room must be a valid name (see ValidRoom) or
// AnyRoom, and participant a valid name (see ValidParticipant) or
// AnyParticipant: they do not check, so that permissions for every room
// and participant can be built too.

// RoomPrefix is what every subject of room starts with, the trailing dot
// included: "vidhub.<room>.".
func RoomPrefix(room string) string { return Prefix + "." + room + "." }

// RoomFrames matches layer l of every participant in room.
func RoomFrames(room string, l Layer) string {
	return RoomPrefix(room) + "*." + string(l)
}

// RoomPresence matches the presence of every participant in room: what a
// publisher subscribes to, to learn which layers its viewers take.
func RoomPresence(room string) string {
	return RoomPrefix(room) + "*." + presenceToken
}

// RoomAll matches everything in room: the permission a viewer needs.
func RoomAll(room string) string { return RoomPrefix(room) + ">" }

// ParticipantAll matches everything participant may publish in room
// (frames of every layer and presence): the publish permission of a
// publisher. It is Address.AllSubjects for a room that may be AnyRoom.
func ParticipantAll(room, participant string) string {
	return RoomPrefix(room) + participant + ".>"
}

// ParticipantPresence is participant's presence subject in room; with
// AnyRoom it matches that participant's presence in every room. It is the
// only publish permission a viewer needs, to announce itself under its
// own name.
func ParticipantPresence(room, participant string) string {
	return RoomPrefix(room) + participant + "." + presenceToken
}

// ParticipantKey is the subject on which viewers ask participant in room
// for a keyframe (protocol v2); with AnyParticipant it matches every
// participant's: the publish permission a viewer needs to ask. It is not
// media: the right to ask grants no right to publish frames.
func ParticipantKey(room, participant string) string {
	return RoomPrefix(room) + participant + "." + keyToken
}

// ParticipantReport is the subject on which viewer from sends
// participant in room receiver reports (protocol v2, see Report). The
// reporter's name is the subject's last token, so the broker can hold a
// viewer to its own (its permission: participant AnyParticipant), and
// one viewer cannot report under many names to outvote the others; with
// from AnyParticipant it matches every report about participant, which
// is what the participant subscribes to. Like ParticipantKey it is not
// media.
func ParticipantReport(room, participant, from string) string {
	return RoomPrefix(room) + participant + "." + reportToken + "." + from
}

// RetrySubject is where a publisher sends a frame of frameSubject again
// when the broker of a recording did not acknowledge it in time (for
// instance while a cluster elects the recording's leader). A recording
// stores it under frameSubject (package record); no viewer subscribes to
// it, so a late copy never reaches anyone watching live.
func RetrySubject(frameSubject string) string { return frameSubject + "." + retryToken }

// RoomRetries matches every retry subject in room.
func RoomRetries(room string) string { return RoomPrefix(room) + "*.*." + retryToken }

// retryToken ends a retry subject.
const retryToken = "retry"

// AllPresence matches the presence of every participant of every room.
// Listening on it for a little over one beat lists all rooms.
const AllPresence = Prefix + ".*.*." + presenceToken

// Subject is a parsed vidhub subject.
type Subject struct {
	Address
	// Presence is true for a presence subject, Key for a keyframe
	// request, Report for a receiver report (From is its sender);
	// otherwise Layer is set.
	Presence bool
	Key      bool
	Report   bool
	From     string
	Layer    Layer
}

// Frame reports whether s is a frame subject (Layer is set), not
// presence, a keyframe request or a receiver report.
func (s Subject) Frame() bool { return s.Layer != "" }

// String rebuilds the subject.
func (s Subject) String() string {
	switch {
	case s.Presence:
		return s.PresenceSubject()
	case s.Key:
		return s.KeySubject()
	case s.Report:
		return s.ReportSubject(s.From)
	}
	return s.FrameSubject(s.Layer)
}

// ParseSubject parses a frame, presence, keyframe request or receiver
// report subject. It rejects anything else, including wildcards and
// invalid names. No layer is named like the other last tokens, so a
// subject is always exactly one of them.
func ParseSubject(s string) (Subject, error) {
	rest, ok := strings.CutPrefix(s, Prefix+".")
	if !ok {
		return Subject{}, fmt.Errorf("%w: %q does not start with %q", ErrBadSubject, s, Prefix+".")
	}
	room, rest, ok1 := strings.Cut(rest, ".")
	participant, last, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return Subject{}, fmt.Errorf("%w: %q is not %s.<room>.<participant>.<layer|presence|key|rr.<from>>", ErrBadSubject, s, Prefix)
	}
	a, err := NewAddress(room, participant)
	if err != nil {
		return Subject{}, fmt.Errorf("%w: %q: %w", ErrBadSubject, s, err)
	}
	if last == presenceToken {
		return Subject{Address: a, Presence: true}, nil
	}
	if last == keyToken {
		return Subject{Address: a, Key: true}, nil
	}
	if from, ok := strings.CutPrefix(last, reportToken+"."); ok {
		if err := ValidParticipant(from); err != nil {
			return Subject{}, fmt.Errorf("%w: %q: the reporter: %w", ErrBadSubject, s, err)
		}
		return Subject{Address: a, Report: true, From: from}, nil
	}
	l, err := ParseLayer(last)
	if err != nil {
		return Subject{}, fmt.Errorf("%w: %q: %w", ErrBadSubject, s, err)
	}
	return Subject{Address: a, Layer: l}, nil
}
