package access_test

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestNameBoundToUser: a NATS user without any_name announces, publishes
// and leaves only as itself. bob, who may publish into lobby, can send
// neither a presence beat, nor a leaving beat, nor a frame as alice: the
// broker refuses each (a permissions violation) and nothing reaches a
// viewer. A view-only user may publish its own presence and nothing else.
func TestNameBoundToUser(t *testing.T) {
	f, err := access.Parse([]byte(`
users:
  - {name: alice, password: a, view: [lobby], publish: [lobby]}
  - {name: bob, password: b, view: [lobby], publish: [lobby]}
  - {name: carol, password: c, view: ["*"]}
  - {name: gateway, password: g, view: ["*"], publish: [lobby], any_name: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	// What each may publish, as the broker is told.
	for _, tc := range []struct {
		user string
		pub  []string
	}{
		{"bob", []string{"vidhub.lobby.bob.presence", "vidhub.lobby.*.key", "vidhub.lobby.*.rr.bob", "vidhub.lobby.bob.>", "$JS.API.STREAM.INFO.VIDHUB_lobby"}},
		{"carol", []string{"vidhub.*.carol.presence", "vidhub.*.*.key", "vidhub.*.*.rr.carol"}},
		{"gateway", []string{"vidhub.*.*.presence", "vidhub.*.*.key", "vidhub.*.*.rr.*", "vidhub.lobby.*.>", "$JS.API.STREAM.INFO.VIDHUB_lobby"}},
	} {
		i := slices.IndexFunc(f.Users, func(u access.User) bool { return u.Name == tc.user })
		if got := f.Users[i].Permissions().Publish.Allow; !slices.Equal(got, tc.pub) {
			t.Errorf("%s may publish %q; want %q", tc.user, got, tc.pub)
		}
	}

	url := hubtest.Broker(t, broker.Config{Access: f}).ClientURL()
	// A viewer of lobby counts what arrives under alice's name.
	var got atomic.Int64
	spy := hubtest.Connect(t, url, nats.UserInfo("alice", "a"))
	if _, err := spy.Subscribe(protocol.ParticipantAll("lobby", "alice"), func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	alice, _ := protocol.NewAddress("lobby", "alice")
	beat := func(leaving bool) []byte {
		b, _ := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(), Leaving: leaving}.Encode()
		return b
	}
	for _, user := range []struct{ name, password string }{{"bob", "b"}, {"carol", "c"}} {
		for _, tc := range []struct {
			what string
			msg  *nats.Msg
		}{
			{"presence", &nats.Msg{Subject: alice.PresenceSubject(), Data: beat(false)}},
			{"leaving beat", &nats.Msg{Subject: alice.PresenceSubject(), Data: beat(true)}},
			{"frame", &nats.Msg{Subject: alice.FrameSubject(protocol.Lo), Header: nats.Header{"Content-Type": {"image/jpeg"}}, Data: []byte{0xff, 0xd8, 0xff, 0xd9}}},
			// The right to ask for keyframes is no right to send H.264.
			{"H.264 frame", &nats.Msg{Subject: alice.FrameSubject(protocol.H264), Header: nats.Header{"Content-Type": {"video/h264"}}, Data: []byte{0, 0, 1, 0x65, 0x88}}},
			// A viewer reports under its own name only: one voice each.
			{"receiver report", &nats.Msg{Subject: protocol.ParticipantReport("lobby", "cam", "alice"), Data: []byte(`{"l":"h264","ms":500,"n":10,"miss":5}`)}},
		} {
			refused := make(chan error, 4)
			nc := hubtest.Connect(t, url, nats.UserInfo(user.name, user.password), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				refused <- err
			}))
			if err := nc.PublishMsg(tc.msg); err != nil {
				t.Fatal(err)
			}
			_ = nc.Flush()
			select {
			case err := <-refused:
				if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), tc.msg.Subject) {
					t.Errorf("%s sending a %s as alice: %v; want a permissions violation", user.name, tc.what, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s sent a %s as alice: not refused", user.name, tc.what)
			}
			nc.Close()
		}
	}
	// The spy's own round trip comes after every refusal above.
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := got.Load(); n != 0 {
		t.Errorf("%d messages reached a viewer under alice's name", n)
	}

	// Under its own name a viewer's report passes, and says who sent it.
	gw := hubtest.Connect(t, url, nats.UserInfo("gateway", "g"))
	reports, err := gw.SubscribeSync(protocol.ParticipantReport("lobby", "cam", protocol.AnyParticipant))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}
	carol := hubtest.Connect(t, url, nats.UserInfo("carol", "c"))
	if err := carol.Publish(protocol.ParticipantReport("lobby", "cam", "carol"), []byte(`{"l":"h264","ms":500,"n":10}`)); err != nil {
		t.Fatal(err)
	}
	m, err := reports.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("carol's own report did not arrive: %v (%v)", err, carol.LastError())
	}
	if r, err := protocol.ParseReport(m.Subject, m.Data); err != nil || r.From != "carol" || r.Frames != 10 {
		t.Errorf("carol's report arrived as %+v, %v", r, err)
	}
}
