package access

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const example = `
users:
  - name: alice
    password: s3cret
    view: [lobby, hall]
    publish: [lobby]
  - name: wall
    password: other
    view: ["*"]
  - name: cam
    nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4
    publish: ["*"]
`

func TestParseExample(t *testing.T) {
	f, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 3 {
		t.Fatalf("%d users", len(f.Users))
	}
	alice := f.Users[0].Permissions()
	wantPub := []string{"vidhub.lobby.alice.presence", "vidhub.lobby.*.key", "vidhub.lobby.*.rr.alice", "vidhub.hall.alice.presence", "vidhub.hall.*.key", "vidhub.hall.*.rr.alice", "vidhub.lobby.alice.>",
		"$JS.API.STREAM.INFO.VIDHUB_lobby"}
	if !slices.Equal(alice.Publish.Allow, wantPub) {
		t.Errorf("alice publish %v, want %v", alice.Publish.Allow, wantPub)
	}
	for _, s := range []string{"vidhub.lobby.>", "vidhub.hall.>"} {
		if !slices.Contains(alice.Subscribe.Allow, s) {
			t.Errorf("alice may not subscribe %s: %v", s, alice.Subscribe.Allow)
		}
	}
	for _, s := range alice.Subscribe.Allow {
		if strings.HasPrefix(s, "vidhub.*") || s == ">" {
			t.Errorf("alice may subscribe to every room: %s", s)
		}
	}
	wall := f.Users[1].Permissions()
	if !slices.Contains(wall.Subscribe.Allow, "vidhub.*.>") || !slices.Equal(wall.Publish.Allow, []string{"vidhub.*.wall.presence", "vidhub.*.*.key", "vidhub.*.*.rr.wall"}) {
		t.Errorf("wall %+v %+v", wall.Publish, wall.Subscribe)
	}
	// A publisher in every room publishes only under its own name there,
	// and hears every room's presence and the keyframe requests to it.
	cam := f.Users[2].Permissions()
	if !slices.Equal(cam.Publish.Allow, []string{"vidhub.*.cam.>", "$JS.API.STREAM.INFO.*"}) || !slices.Equal(cam.Subscribe.Allow, []string{"vidhub.*.*.presence", "vidhub.*.cam.key", "vidhub.*.cam.rr.*", "_INBOX.>"}) {
		t.Errorf("cam %+v %+v", cam.Publish, cam.Subscribe)
	}
	users, nkeyUsers := f.ServerUsers()
	if len(users) != 2 || len(nkeyUsers) != 1 || users[0].Username != "alice" || users[0].Password != "s3cret" {
		t.Errorf("server users %+v %+v", users, nkeyUsers)
	}
	conf := f.NATSConfig()
	for _, want := range []string{`user: "alice"`, `password: "s3cret"`, `nkey: "UDXU4`, `"vidhub.lobby.alice.>"`, `"vidhub.*.>"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats config lacks %s:\n%s", want, conf)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{``, "no users"},
		{`users: []`, "no users"},
		{"users:\n  - name: a.b\n    password: x\n    view: [r]", "user 1"},
		{"users:\n  - name: a\n    view: [r]", "neither password nor nkey"},
		{"users:\n  - name: a\n    password: x\n    nkey: UX\n    view: [r]", "both"},
		{"users:\n  - name: a\n    nkey: SUAAAA\n    view: [r]", "public user key"},
		{"users:\n  - name: a\n    password: x\n    view: [a.b]", "user a"},
		{"users:\n  - name: a\n    password: x\n    view: [\">\"]", "user a"},
		{"users:\n  - name: a\n    password: x", "neither view, publish, replay nor record"},
		{"users:\n  - name: a\n    password: x\n    replay: [a.b]", "user a"},
		{"users:\n  - name: a\n    password: x\n    record: [\">\"]", "user a"},
		{"users:\n  - name: a\n    password: x\n    replay: [\"VIDHUB_*\"]", "user a"},
		{"users:\n  - name: a\n    password: x\n    view: [r]\n  - name: a\n    password: y\n    view: [r]", "twice"},
		{"users:\n  - name: a\n    pasword: x\n    view: [r]", "pasword"},
		{"not: [yaml", ""},
	} {
		_, err := Parse([]byte(tc.file))
		if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want ErrBadFile mentioning %q", tc.file, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("users:\n  - name: x\n    password: y\n    view: ['*']"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever is accepted yields permissions only on vidhub subjects
		// (and inbox replies), and publish rights only under the user's
		// name, but for keyframe requests and receiver reports, which
		// are not media.
		for _, u := range file.Users {
			p := u.Permissions()
			for _, s := range p.Publish.Allow {
				if strings.HasPrefix(s, JSAPIPrefix) {
					checkJSSubject(t, u, s)
					continue
				}
				parts := strings.Split(s, ".")
				if len(parts) == 4 && parts[0] == "vidhub" && parts[2] == "*" && parts[3] == "key" {
					continue
				}
				if len(parts) == 5 && parts[0] == "vidhub" && parts[2] == "*" && parts[3] == "rr" && parts[4] == u.Name {
					continue // reports to anyone, under its own name
				}
				if len(parts) != 4 || parts[0] != "vidhub" || parts[2] != u.Name {
					t.Fatalf("user %q may publish %q", u.Name, s)
				}
			}
			for _, s := range p.Subscribe.Allow {
				if !strings.HasPrefix(s, "vidhub.") && s != "_INBOX.>" {
					t.Fatalf("user %q may subscribe %q", u.Name, s)
				}
			}
		}
	})
}

// checkJSSubject fails t unless s, a JetStream API subject u may publish
// to, is on the recording of one of u's rooms, of the kind its right
// allows; or the list of recordings, for a recorder.
func checkJSSubject(t *testing.T, u User, s string) {
	t.Helper()
	op, stream, ok := strings.Cut(strings.TrimPrefix(s, JSAPIPrefix), "."+StreamPrefix)
	if s == JSAPIPrefix+"STREAM.LIST" && len(u.Record) > 0 {
		return
	}
	var room string
	if ok {
		room, _, _ = strings.Cut(stream, ".")
	} else {
		// "*": every room, every stream.
		var tail string
		op, tail, _ = strings.Cut(strings.TrimPrefix(s, JSAPIPrefix), ".*")
		room = AnyRoom
		if tail != "" && tail != ".>" && tail != ".*" {
			t.Fatalf("user %q may publish %q", u.Name, s)
		}
	}
	var rooms []string
	switch op {
	case "STREAM.INFO":
		rooms = slices.Concat(u.Publish, u.Replay, u.Record)
	case "CONSUMER.CREATE", "CONSUMER.MSG.NEXT", "CONSUMER.DELETE":
		rooms = u.Replay
	case "STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE":
		rooms = u.Record
	}
	if !slices.Contains(rooms, room) {
		t.Fatalf("user %q may publish %q", u.Name, s)
	}
}

// TestAnyName: a gateway user may publish and announce presence under any
// participant name, but only in its own rooms.
func TestAnyName(t *testing.T) {
	f, err := Parse([]byte(`
users:
  - name: gateway
    password: x
    view: [lobby]
    publish: [lobby, hall]
    any_name: true
`))
	if err != nil {
		t.Fatal(err)
	}
	p := f.Users[0].Permissions()
	want := []string{"vidhub.lobby.*.presence", "vidhub.lobby.*.key", "vidhub.lobby.*.rr.*", "vidhub.lobby.*.>", "vidhub.hall.*.>",
		"$JS.API.STREAM.INFO.VIDHUB_lobby", "$JS.API.STREAM.INFO.VIDHUB_hall"}
	if !slices.Equal(p.Publish.Allow, want) {
		t.Errorf("publish %v, want %v", p.Publish.Allow, want)
	}
	if conf := f.NATSConfig(); !strings.Contains(conf, `"vidhub.hall.*.>"`) {
		t.Errorf("nats config lacks the any-name permission:\n%s", conf)
	}
}
