// Package access turns vidhub's access file (users, and the rooms each may
// view, publish into, replay and record) into NATS permissions on the
// protocol's subjects and on JetStream's API: for the embedded broker
// directly, and as a stock nats-server configuration for external brokers.
//
// Viewing room R is subscribing to vidhub.R.> (and beating the viewer's own
// presence); publishing into R as user U is publishing on vidhub.R.U.>, so
// a user can never publish under another participant's name. Replaying R
// (replay, export, snapshot) and recording R (start, update, stop) are
// rights of their own, on the JetStream API subjects of R's recording,
// the stream VIDHUB_R: watching R live gives neither.
package access

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/vidhub/vidhub/protocol"
)

// AnyRoom in a view, publish, replay or record list means every room.
const AnyRoom = protocol.AnyRoom

// ErrBadFile is returned (wrapped) for an access file that cannot be used.
var ErrBadFile = errors.New("bad access file")

// File is the access file.
type File struct {
	Users []User `yaml:"users"`
}

// User is one user of the hub. Its NATS username is Name, and as a
// publisher it may only appear as participant Name, unless AnyName.
type User struct {
	Name string `yaml:"name"`
	// Password is plain text or a bcrypt hash ("$2a$..."); NKey is a
	// public user NKey ("U..."). Exactly one is set.
	Password string `yaml:"password,omitempty"`
	NKey     string `yaml:"nkey,omitempty"`
	// View and Publish list room names, or "*" for every room.
	View    []string `yaml:"view,omitempty"`
	Publish []string `yaml:"publish,omitempty"`
	// Replay lists the rooms whose recordings the user may read: replay
	// (vidhub view --from), export and snapshot. Record lists the rooms
	// the user may start, update and stop recording; it also lets the
	// user list every recording. "*" is every room, as for View.
	Replay []string `yaml:"replay,omitempty"`
	Record []string `yaml:"record,omitempty"`
	// AnyName lets the user publish, and announce viewers, under any
	// participant name in its rooms. It is for a web gateway, which
	// publishes for browsers under the names they choose and checks those
	// itself (room tokens name the participant); give it to no person.
	AnyName bool `yaml:"any_name,omitempty"`
}

// Load reads and checks an access file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse parses and checks an access file's contents.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	return &f, f.Check()
}

// Check reports the first problem of the file, naming the user.
func (f *File) Check() error {
	if len(f.Users) == 0 {
		return fmt.Errorf("%w: no users; list them under the users key", ErrBadFile)
	}
	seen := map[string]bool{}
	for i, u := range f.Users {
		if err := protocol.ValidateName("user", u.Name); err != nil {
			return fmt.Errorf("%w: user %d: %w", ErrBadFile, i+1, err)
		}
		if seen[u.Name] {
			return fmt.Errorf("%w: user %s is listed twice", ErrBadFile, u.Name)
		}
		seen[u.Name] = true
		switch {
		case u.Password == "" && u.NKey == "":
			return fmt.Errorf("%w: user %s has neither password nor nkey", ErrBadFile, u.Name)
		case u.Password != "" && u.NKey != "":
			return fmt.Errorf("%w: user %s has both password and nkey; keep one", ErrBadFile, u.Name)
		case u.NKey != "" && !nkeys.IsValidPublicUserKey(u.NKey):
			return fmt.Errorf("%w: user %s: nkey is not a public user key (U...); make one with \"nk -gen user -pubout\"", ErrBadFile, u.Name)
		}
		for _, r := range slices.Concat(u.View, u.Publish, u.Replay, u.Record) {
			if r == AnyRoom {
				continue
			}
			if err := protocol.ValidRoom(r); err != nil {
				return fmt.Errorf("%w: user %s: %w (or %q for every room)", ErrBadFile, u.Name, err, AnyRoom)
			}
		}
		if len(u.View) == 0 && len(u.Publish) == 0 && len(u.Replay) == 0 && len(u.Record) == 0 {
			return fmt.Errorf("%w: user %s may neither view, publish, replay nor record; give it view:, publish:, replay: or record: rooms", ErrBadFile, u.Name)
		}
	}
	return nil
}

// subjects returns what u may publish and subscribe to.
func (u User) subjects() (pub, sub []string) {
	add := func(list []string, s string) []string {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
		return list
	}
	as := u.Name
	if u.AnyName {
		as = protocol.AnyParticipant
	}
	for _, r := range u.View {
		sub = add(sub, protocol.RoomAll(r))
		// A viewer announces itself, under its own name only.
		pub = add(pub, protocol.ParticipantPresence(r, as))
		// It asks any publisher for a keyframe: not media, no name taken.
		pub = add(pub, protocol.ParticipantKey(r, protocol.AnyParticipant))
		// It reports to any publisher what it receives: not media either,
		// and under its own name only, so that it has one voice.
		pub = add(pub, protocol.ParticipantReport(r, protocol.AnyParticipant, as))
	}
	for _, r := range u.Publish {
		pub = add(pub, protocol.ParticipantAll(r, as))
		// A publisher hears who watches its room, to know which layers to
		// encode, and viewers' keyframe requests to it.
		sub = add(sub, protocol.RoomPresence(r))
		sub = add(sub, protocol.ParticipantKey(r, as))
		// ... and its viewers' receiver reports, to adapt its bitrate.
		sub = add(sub, protocol.ParticipantReport(r, as, protocol.AnyParticipant))
	}
	for _, r := range u.Publish {
		// A publisher asks which of its layers its room's recording keeps.
		pub = add(pub, jsAPI("STREAM.INFO", r))
	}
	for _, r := range u.Replay {
		for _, s := range replaySubjects(r) {
			pub = add(pub, s)
		}
	}
	for _, r := range u.Record {
		for _, s := range recordSubjects(r) {
			pub = add(pub, s)
		}
	}
	if len(u.Record) > 0 {
		// Listing is not per room: JetStream has no room-scoped list.
		pub = add(pub, JSAPIPrefix+"STREAM.LIST")
	}
	// Replies to the client's own requests, JetStream's among them (API
	// responses, and the messages a replay's consumer delivers).
	sub = add(sub, "_INBOX.>")
	return pub, sub
}

// JSAPIPrefix starts every JetStream API subject.
const JSAPIPrefix = protocol.JSAPIPrefix

// StreamPrefix starts the name of every room's recording (the stream
// VIDHUB_<room>).
const StreamPrefix = protocol.RecordingPrefix

// streamToken is the stream name token of room's JetStream API subjects:
// its recording's name, or, for AnyRoom, a wildcard for every stream. A
// NATS wildcard stands for a whole token, so "*" matches every stream
// of the account, vidhub's or not: run vidhub in an account of its own.
func streamToken(room string) string {
	if room == AnyRoom {
		return "*"
	}
	return protocol.RecordingStream(room)
}

// jsAPI is the JetStream API subject of op (such as "STREAM.INFO") on
// room's recording.
func jsAPI(op, room string) string { return JSAPIPrefix + op + "." + streamToken(room) }

// replaySubjects are what reading room's recording publishes to, found
// by running replay, export and snapshot as a user with only these: the
// recording's info (which layers it keeps), and an ordered consumer,
// which creates an ephemeral consumer ("CONSUMER.CREATE.<stream>.<name>",
// or with ".<filter subject>" when it takes one participant's layer),
// pulls from it, and deletes it when it starts over.
func replaySubjects(room string) []string {
	return []string{
		jsAPI("STREAM.INFO", room),
		jsAPI("CONSUMER.CREATE", room) + ".>",
		jsAPI("CONSUMER.MSG.NEXT", room) + ".*",
		jsAPI("CONSUMER.DELETE", room) + ".*",
	}
}

// recordSubjects are what starting, updating and stopping room's
// recording publishes to: CreateOrUpdateStream tries an update first and
// creates the stream when there is none.
func recordSubjects(room string) []string {
	return []string{
		jsAPI("STREAM.CREATE", room),
		jsAPI("STREAM.UPDATE", room),
		jsAPI("STREAM.DELETE", room),
		jsAPI("STREAM.INFO", room),
	}
}

// A publisher answers a keyframe request it cannot serve with a fresh
// keyframe (a camera passed through) by one GOP reply to the request's
// reply subject: NATS's allow_responses, one message, soon.
const (
	replyMax     = 1
	replyExpires = 5 * time.Second
)

// Permissions returns u's NATS permissions: only what is listed is allowed.
func (u User) Permissions() *server.Permissions {
	pub, sub := u.subjects()
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
	if len(u.Publish) > 0 {
		p.Response = &server.ResponsePermission{MaxMsgs: replyMax, Expires: replyExpires}
	}
	return p
}

// ServerUsers returns the users for nats-server's options (Users and
// Nkeys).
func (f *File) ServerUsers() ([]*server.User, []*server.NkeyUser) {
	var users []*server.User
	var nkeyUsers []*server.NkeyUser
	for _, u := range f.Users {
		if u.NKey != "" {
			nkeyUsers = append(nkeyUsers, &server.NkeyUser{Nkey: u.NKey, Permissions: u.Permissions()})
			continue
		}
		users = append(users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions()})
	}
	return users, nkeyUsers
}

// NATSConfig returns the equivalent authorization block for a stock
// nats-server configuration file. It holds the passwords: keep it as
// private as the access file.
func (f *File) NATSConfig() string {
	var b strings.Builder
	b.WriteString("# vidhub access control: include this in a nats-server configuration.\n")
	b.WriteString("# It holds the users' passwords: keep it as private as the access file.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range f.Users {
		pub, sub := u.subjects()
		b.WriteString("    {\n")
		if u.NKey != "" {
			fmt.Fprintf(&b, "      # %s\n      nkey: %s\n", u.Name, strconv.Quote(u.NKey))
		} else {
			fmt.Fprintf(&b, "      user: %s\n      password: %s\n", strconv.Quote(u.Name), strconv.Quote(u.Password))
		}
		fmt.Fprintf(&b, "      permissions: {\n        publish: { allow: %s }\n        subscribe: { allow: %s }\n", quoteList(pub), quoteList(sub))
		if len(u.Publish) > 0 {
			fmt.Fprintf(&b, "        allow_responses: { max: %d, expires: %q }\n", replyMax, replyExpires.String())
		}
		b.WriteString("      }\n")
		b.WriteString("    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
