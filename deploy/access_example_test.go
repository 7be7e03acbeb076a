package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// The passwords of deploy/access.example.yaml, as its comments give them.
var examplePasswords = map[string]string{
	"alice":     "change-me-alice",
	"wall":      "change-me-wall", // stored as a bcrypt hash
	"gateway":   "change-me-gateway",
	"archivist": "change-me-archivist",
}

// TestAccessExample: deploy/access.example.yaml parses, every key in it is
// explained in its comments, and it works: on the embedded broker
// (--access) and on a stock nats-server running the configuration that
// "vidhub access nats-config" prints, its users get exactly their rights.
func TestAccessExample(t *testing.T) {
	const path = "access.example.yaml"
	f, err := access.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]access.User{}
	for _, u := range f.Users {
		byName[u.Name] = u
	}
	for _, name := range []string{"alice", "wall", "cam1", "gateway", "archivist"} {
		if _, ok := byName[name]; !ok {
			t.Fatalf("the example has no user %s (the test relies on it)", name)
		}
	}
	if !strings.HasPrefix(byName["wall"].Password, "$2a$") || byName["cam1"].NKey == "" || !byName["gateway"].AnyName ||
		!slices.Contains(byName["gateway"].Replay, access.AnyRoom) || len(byName["archivist"].Record) == 0 {
		t.Errorf("the example no longer shows a bcrypt password, an nkey and any_name: %+v", f.Users)
	}
	// Every key the format has is explained.
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"users", "name", "password", "nkey", "view", "publish", "replay", "record", "any_name"} {
		if !strings.Contains(string(text), "#   "+key+" ") && !strings.Contains(string(text), "# "+key+" ") {
			t.Errorf("the example's comments do not explain the key %s", key)
		}
	}

	t.Run("embedded", func(t *testing.T) {
		b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Access: f, StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		checkExampleRights(t, b.ClientURL(), false)
	})
	t.Run("nats-server", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "auth.conf")
		if err := os.WriteFile(conf, []byte(f.NATSConfig()), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server does not take the configuration: %v\n%s", err, f.NATSConfig())
		}
		opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
		// The server pings a new client after 2 s, and nats.go's handshake
		// takes a PING for a failure: the bcrypt check can take longer than
		// that under the race detector.
		opts.DisableShortFirstPing = true
		opts.JetStream, opts.StoreDir = true, t.TempDir()
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		checkExampleRights(t, s.ClientURL(), true)
	})
}

// connectTimeout bounds a connection, bcrypt check included: a cost-11
// bcrypt comparison takes seconds under the race detector on a loaded
// 2-core machine.
const connectTimeout = 30 * time.Second

// checkExampleRights connects as the example's users and checks what gets
// through: each publishes a subject it may use and, before it, one it may
// not; a spy that may watch every room must see the first and never the
// second (a connection's messages arrive in order). With withBcrypt it
// also logs in as the user whose password is a bcrypt hash (slow under the
// race detector, so once is enough: both brokers share nats-server's check).
func checkExampleRights(t *testing.T, url string, withBcrypt bool) {
	t.Helper()
	connect := func(user string) (*nats.Conn, <-chan error) {
		errs := make(chan error, 16)
		nc, err := nats.Connect(url, nats.UserInfo(user, examplePasswords[user]), nats.NoReconnect(), nats.Timeout(connectTimeout),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case errs <- err:
				default:
				}
			}))
		if err != nil {
			t.Fatalf("%s cannot connect: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc, errs
	}
	spy, _ := connect("gateway") // it may view every room
	got := make(chan string, 64)
	if _, err := spy.Subscribe("vidhub.*.>", func(m *nats.Msg) { got <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	frame := func(room, name string) string {
		a, err := protocol.NewAddress(room, name)
		if err != nil {
			t.Fatal(err)
		}
		return a.FrameSubject(protocol.Hi)
	}
	for _, tc := range []struct {
		user             string
		allowed, refused string
	}{
		{"alice", frame("lobby", "alice"), frame("lobby", "bob")},  // only under her own name
		{"alice", frame("lobby", "alice"), frame("hall", "alice")}, // hall: view only
		{"gateway", frame("lobby", "ann"), frame("hall", "ann")},   // any name, in lobby only
	} {
		nc, _ := connect(tc.user)
		if err := nc.Publish(tc.refused, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(tc.allowed, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != tc.allowed {
				t.Errorf("%s: %s got through (want only %s)", tc.user, s, tc.allowed)
				<-got
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: %s did not get through", tc.user, tc.allowed)
		}
	}

	// Alice may watch hall but not another room; the refusal comes at once.
	nc, errs := connect("alice")
	if _, err := nc.Subscribe("vidhub.hall.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("vidhub.secret.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "vidhub.secret.>") {
			t.Errorf("alice subscribing to another room: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("alice may subscribe to a room she may not view")
	}

	checkExampleRecordingRights(t, connect)

	// Wrong passwords are refused, bcrypt or not; the bcrypt one's right
	// password is taken.
	users := []string{"alice"}
	if withBcrypt {
		connect("wall")
		users = append(users, "wall")
	}
	for _, user := range users {
		if nc, err := nats.Connect(url, nats.UserInfo(user, "wrong"), nats.NoReconnect(), nats.Timeout(connectTimeout)); err == nil {
			nc.Close()
			t.Errorf("%s admitted with a wrong password", user)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s with a wrong password: %v", user, err)
		}
	}
}

// checkExampleRecordingRights: the archivist records lobby but not another
// room, the gateway reads lobby's recording (its timeline), and alice,
// who watches hall live, may not read hall's.
func checkExampleRecordingRights(t *testing.T, connect func(string) (*nats.Conn, <-chan error)) {
	t.Helper()
	try := func(user, room string, right access.Right, do func(context.Context, *nats.Conn) error) error {
		nc, _ := connect(user)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		wctx, w := access.WatchJetStream(ctx, nc, right, room, user)
		defer w.Stop()
		return w.Err(do(wctx, nc))
	}
	start := func(room string) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error {
			_, err := record.Start(ctx, nc, record.Config{Room: room})
			return err
		}
	}
	get := func(room string) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error {
			_, err := record.Get(ctx, nc, room)
			return err
		}
	}
	if err := try("archivist", "lobby", access.RightRecord, start("lobby")); err != nil {
		t.Errorf("archivist recording lobby: %v", err)
	}
	if err := try("archivist", "secret", access.RightRecord, start("secret")); !errors.Is(err, access.ErrNoRight) {
		t.Errorf("archivist recording secret: %v, want not allowed", err)
	}
	if err := try("gateway", "lobby", access.RightReplay, get("lobby")); err != nil {
		t.Errorf("gateway reading lobby's recording: %v", err)
	}
	if err := try("alice", "hall", access.RightReplay, get("hall")); !errors.Is(err, access.ErrNoRight) {
		t.Errorf("alice reading hall's recording: %v, want not allowed", err)
	}
}
