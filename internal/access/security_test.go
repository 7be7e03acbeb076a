package access_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

func newAccessFile(t *testing.T) (*access.File, string) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "cam.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := access.Parse([]byte(`
users:
  - name: alice
    password: s3cret
    view: [lobby, hall]
    publish: [lobby]
  - name: wall
    password: other
    view: ["*"]
  - name: cam
    nkey: ` + pub + `
    publish: [lobby]
`))
	if err != nil {
		t.Fatal(err)
	}
	return f, seedFile
}

func connect(t *testing.T, cfg natsconn.Config) *nats.Conn {
	t.Helper()
	nc, err := natsconn.Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// runPublisher runs a small pattern publisher as room/name on nc until
// the test ends.
func runPublisher(t *testing.T, nc *nats.Conn, room, name string) *hubtest.Publisher {
	t.Helper()
	return hubtest.Publish(t, nc, publisher.Config{Room: room, Name: name, Source: "pattern", FPS: 15, Width: 160, Height: 90})
}

func TestAccessControl(t *testing.T) {
	f, seed := newAccessFile(t)
	for _, kind := range []string{"embedded", "nats-server"} {
		t.Run(kind, func(t *testing.T) {
			var url string
			if kind == "embedded" {
				url = hubtest.Broker(t, broker.Config{Access: f}).ClientURL()
			} else {
				// The stock server with the configuration vidhub prints.
				port := hubtest.FreePort(t)
				conf := filepath.Join(t.TempDir(), "nats.conf")
				body := "max_payload: 8MB\n" + f.NATSConfig()
				if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				url = hubtest.StartNatsServer(t, port, "-c", conf).URL
			}
			alice := natsconn.Config{URL: url, User: "alice", Password: "s3cret"}

			// Allowed: alice publishes into lobby as alice; wall watches.
			runPublisher(t, connect(t, alice), "lobby", "alice")
			wall := connect(t, natsconn.Config{URL: url, User: "wall", Password: "other"})
			room, err := subscriber.Join(wall, subscriber.Config{Room: "lobby", Name: "wall"})
			if err != nil {
				t.Fatalf("wall may view every room: %v", err)
			}
			defer room.Close()
			hubtest.Eventually(t, 10*time.Second, func() bool {
				ts := room.Tiles()
				return len(ts) == 1 && ts[0].Stats().Frames >= 5
			}, "wall sees no frames from alice")

			// The nkey user publishes too.
			runPublisher(t, connect(t, natsconn.Config{URL: url, NKeyFile: seed}), "lobby", "cam")
			hubtest.Eventually(t, 10*time.Second, func() bool { return len(room.Tiles()) == 2 }, "nkey user cam not publishing")

			// Viewing a room without rights fails at once, clearly.
			start := time.Now()
			_, err = subscriber.Join(connect(t, alice), subscriber.Config{Room: "secret", Name: "alice"})
			if !errors.Is(err, subscriber.ErrNotAllowed) || !strings.Contains(err.Error(), "secret") {
				t.Errorf("alice viewing secret: %v; want not allowed", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusal took %v", d)
			}
			// Viewing an allowed room works.
			if r, err := subscriber.Join(connect(t, alice), subscriber.Config{Room: "hall", Name: "alice"}); err != nil {
				t.Errorf("alice viewing hall: %v", err)
			} else {
				r.Close()
			}

			// Publishing into a room she may only view, or under another
			// name, is refused and the publisher stops with a clear error.
			for _, tc := range []struct{ room, name string }{{"hall", "alice"}, {"lobby", "bob"}} {
				var delivered atomic.Int64
				spy := connect(t, natsconn.Config{URL: url, User: "wall", Password: "other"})
				// Frames only: a viewer of hall may announce itself there.
				if _, err := spy.Subscribe("vidhub."+tc.room+"."+tc.name+".*", func(m *nats.Msg) {
					if !strings.HasSuffix(m.Subject, ".presence") {
						delivered.Add(1)
					}
				}); err != nil {
					t.Fatal(err)
				}
				_ = spy.Flush()
				p := runPublisher(t, connect(t, alice), tc.room, tc.name)
				select {
				case <-p.Done():
					if err := p.Err(); !errors.Is(err, publisher.ErrNotAllowed) || !strings.Contains(err.Error(), tc.room) {
						t.Errorf("alice publishing as %s in %s: %v", tc.name, tc.room, err)
					}
				case <-time.After(20 * time.Second):
					t.Errorf("alice publishing as %s in %s: not stopped", tc.name, tc.room)
				}
				if n := delivered.Load(); n != 0 {
					t.Errorf("%d messages got through as %s in %s", n, tc.name, tc.room)
				}
			}

			// Wrong passwords and unknown users are refused.
			for _, cfg := range []natsconn.Config{
				{URL: url, User: "alice", Password: "wrong"},
				{URL: url, User: "mallory", Password: "s3cret"},
				{URL: url},
			} {
				if nc, err := natsconn.Connect(cfg); err == nil {
					nc.Close()
					t.Errorf("user %q with password %q admitted", cfg.User, cfg.Password)
				} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
					t.Errorf("refusal does not say why: %v", err)
				}
			}
		})
	}
}

func TestTLS(t *testing.T) {
	c := hubtest.MakeCerts(t)
	port := hubtest.FreePort(t)
	b := hubtest.Broker(t, broker.Config{
		Listen: "127.0.0.1:" + strconv.Itoa(port), TLSCert: c.ServerCert, TLSKey: c.ServerKey, TLSCA: c.CA, TLSVerify: true,
	})
	if !strings.HasPrefix(b.ClientURL(), "tls://") {
		t.Errorf("ClientURL %s", b.ClientURL())
	}
	good := natsconn.Config{URL: b.ClientURL(), TLSCA: c.CA, TLSCert: c.ClientCert, TLSKey: c.ClientKey}
	runPublisher(t, connect(t, good), "secure", "cam")
	room, err := subscriber.Join(connect(t, good), subscriber.Config{Room: "secure"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.Close()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		ts := room.Tiles()
		return len(ts) == 1 && ts[0].Stats().Frames >= 5
	}, "no frames over TLS")

	for name, cfg := range map[string]natsconn.Config{
		"no client certificate": {URL: b.ClientURL(), TLSCA: c.CA},
		"untrusted server":      {URL: b.ClientURL(), TLSCA: c.OtherCA, TLSCert: c.ClientCert, TLSKey: c.ClientKey},
		"plain text":            {URL: "nats://127.0.0.1:" + strconv.Itoa(port)},
	} {
		if nc, err := natsconn.Connect(cfg); err == nil {
			// A refusal can come after the handshake: check the link works.
			err = nc.Flush()
			nc.Close()
			if err == nil {
				t.Errorf("%s: connected", name)
			}
		}
	}
}

func TestBrokerTLSConfigErrors(t *testing.T) {
	c := hubtest.MakeCerts(t)
	for _, cfg := range []broker.Config{
		{TLSCert: c.ServerCert},
		{TLSCert: "/no/cert.pem", TLSKey: "/no/key.pem"},
		{TLSCert: c.ServerCert, TLSKey: c.ServerKey, TLSVerify: true},
		{TLSCA: c.CA},
	} {
		if _, err := broker.Start(cfg); !errors.Is(err, broker.ErrStart) {
			t.Errorf("Start(%+v) = %v", cfg, err)
		}
	}
}
