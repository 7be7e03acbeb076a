package broker_test

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/subscriber"
)

// TestLeafAccessTLS: on a hub with an access file and TLS, an edge links
// over tls:// as a user of the access file (password in the URL, or an
// NKey seed in LeafCreds) with the hub's CA in LeafCA, and its camera
// reaches a hub viewer. An edge with a wrong password never links, yet
// serves its own clients.
func TestLeafAccessTLS(t *testing.T) {
	certs := hubtest.MakeCerts(t)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "edge2.nk")
	writeFile(t, seedFile, string(seed))
	f, err := access.Parse([]byte(`
users:
  - name: edge1
    password: edge-secret
    publish: [lobby]
  - name: edge2
    nkey: ` + pub + `
    publish: [hall]
  - name: wall
    password: wall-secret
    view: ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	hub := hubBroker(t, broker.Config{Access: f, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	if !strings.HasPrefix(hub.LeafURL(), "tls://") {
		t.Fatalf("hub leaf URL %s: want tls:// with client TLS on", hub.LeafURL())
	}
	hostPort := strings.TrimPrefix(hub.LeafURL(), "tls://")

	edge1 := hubtest.Broker(t, broker.Config{Leaf: []string{"tls://edge1:edge-secret@" + hostPort}, LeafCA: certs.CA})
	edge2 := hubtest.Broker(t, broker.Config{Leaf: []string{"tls://" + hostPort}, LeafCreds: seedFile, LeafCA: certs.CA})
	hubtest.Eventually(t, 10*time.Second, func() bool {
		return hub.Server().NumLeafNodes() == 2 && edge1.Server().NumLeafNodes() == 1 && edge2.Server().NumLeafNodes() == 1
	}, "the edges did not link to the hub as users of its access file")
	wrong := hubtest.Broker(t, broker.Config{Leaf: []string{"tls://edge1:wrong@" + hostPort}, LeafCA: certs.CA})

	// The camera publishes as its edge's user: that is what the hub lets
	// the link carry in.
	for _, c := range []struct {
		edge       *broker.Broker
		room, name string
	}{{edge1, "lobby", "edge1"}, {edge2, "hall", "edge2"}} {
		hubtest.PublishPattern(t, c.edge.ClientURL(), c.room, c.name)
		nc, err := natsconn.Connect(natsconn.Config{URL: hub.ClientURL(), User: "wall", Password: "wall-secret", TLSCA: certs.CA, Name: "wall"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		room, err := subscriber.Join(nc, subscriber.Config{Room: c.room, Layer: subscriber.LayerHi})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(room.Close)
		hubtest.Eventually(t, 10*time.Second, func() bool {
			for _, s := range room.Stats() {
				if s.Participant == c.name && s.Frames >= 5 {
					return true
				}
			}
			return false
		}, "frames of %s on its edge did not reach the hub's viewer in %s", c.name, c.room)
	}

	// The refused edge: no link, but local clients work.
	w := viewer(t, wrong.ClientURL(), subscriber.LayerHi)
	hubtest.PublishPattern(t, wrong.ClientURL(), "lobby", "cam")
	hubtest.Eventually(t, 10*time.Second, func() bool { return w.frames() >= 5 },
		"an edge the hub refuses does not serve its own clients")
	if n := wrong.Server().NumLeafNodes(); n != 0 {
		t.Errorf("an edge with a wrong password has %d leaf links", n)
	}
}

// TestLeafFromConfigFile: a config file's leafnodes block makes the
// broker a hub or an edge, and the fields override it: LeafListen its
// listen address, Leaf its remotes.
func TestLeafFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	hubConf := filepath.Join(dir, "hub.conf")
	writeFile(t, hubConf, "listen: \"127.0.0.1:-1\"\nleafnodes {\n  listen: \"127.0.0.1:-1\"\n}\n")
	hub := hubtest.Broker(t, broker.Config{ConfigFile: hubConf})
	if hub.LeafURL() == "" {
		t.Fatal("the config file's leafnodes block did not make the broker accept leaf nodes")
	}
	// LeafListen overrides the file's address.
	port := hubtest.FreePort(t)
	moved := hubtest.Broker(t, broker.Config{ConfigFile: hubConf, LeafListen: net.JoinHostPort("127.0.0.1", itoa(port))})
	if want := "nats://127.0.0.1:" + itoa(port); moved.LeafURL() != want {
		t.Errorf("leaf URL %s, want the field's %s", moved.LeafURL(), want)
	}

	edgeConf := filepath.Join(dir, "edge.conf")
	writeFile(t, edgeConf, "listen: \"127.0.0.1:-1\"\nleafnodes {\n  remotes: [ { url: \""+hub.LeafURL()+"\" } ]\n}\n")
	edge := hubtest.Broker(t, broker.Config{ConfigFile: edgeConf})
	waitLinked(t, hub, edge, 10*time.Second)

	// Leaf replaces the file's remotes: this edge links to moved only.
	hubtest.Broker(t, broker.Config{ConfigFile: edgeConf, Leaf: []string{moved.LeafURL()}})
	hubtest.Eventually(t, 10*time.Second, func() bool { return moved.Server().NumLeafNodes() == 1 },
		"the edge did not link to the hub named by Leaf")
	if n := hub.Server().NumLeafNodes(); n != 1 {
		t.Errorf("the file's hub has %d leaf links; Leaf must replace the file's remotes", n)
	}
}

func TestLeafConfigErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	writeFile(t, junk, "not a key\n")
	port := itoa(hubtest.FreePort(t))
	for _, tc := range []struct {
		name string
		cfg  broker.Config
		want string
	}{
		{"no scheme", broker.Config{Leaf: []string{"hub:7422"}}, "nats:// or tls://"},
		{"http", broker.Config{Leaf: []string{"http://hub:7422"}}, "scheme"},
		{"not a URL", broker.Config{Leaf: []string{"nats://a b:7422"}}, "not a URL"},
		{"no port", broker.Config{Leaf: []string{"nats://hub"}}, "has no port"},
		{"bad port", broker.Config{Leaf: []string{"nats://hub:99999"}}, "1 to 65535"},
		{"path", broker.Config{Leaf: []string{"nats://hub:7422/x"}}, "no path"},
		{"own leaf port", broker.Config{LeafListen: "127.0.0.1:" + port, Leaf: []string{"nats://localhost:" + port}}, "own leaf address"},
		{"own client port", broker.Config{Listen: "127.0.0.1:" + port, Leaf: []string{"nats://127.0.0.1:" + port}}, "own client address"},
		{"creds without leaf", broker.Config{LeafCreds: junk}, "go with hub URLs"},
		{"CA without leaf", broker.Config{LeafCA: junk}, "go with hub URLs"},
		{"creds missing", broker.Config{Leaf: []string{"nats://hub:7422"}, LeafCreds: filepath.Join(dir, "none")}, "leaf credentials"},
		{"creds junk", broker.Config{Leaf: []string{"nats://hub:7422"}, LeafCreds: junk}, "neither a credentials file"},
		{"CA junk", broker.Config{Leaf: []string{"tls://hub:7422"}, LeafCA: junk}, "no PEM certificate"},
		{"bad leaf listen", broker.Config{LeafListen: "7422"}, "leaf listen address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := broker.Start(tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("started; want an error")
			}
			if !errors.Is(err, broker.ErrStart) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrStart mentioning %q", err, tc.want)
			}
		})
	}
	// A password in a bad URL is not repeated in the error.
	_, err := broker.Start(broker.Config{Leaf: []string{"ftp://edge:hunter2@hub:7422"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v: want one without the password", err)
	}
}

func TestLeafPortTaken(t *testing.T) {
	hub := hubBroker(t, broker.Config{})
	b, err := broker.Start(broker.Config{LeafListen: strings.TrimPrefix(hub.LeafURL(), "nats://")})
	if err == nil {
		b.Close()
		t.Fatal("a second broker took a leaf port in use")
	}
	if !errors.Is(err, broker.ErrListen) || !strings.Contains(err.Error(), "leaf node connections") {
		t.Errorf("error %q does not say the leaf port is taken", err)
	}
}

// TestLeafHubUnreachable: an edge whose hub does not answer starts at
// once and serves its clients.
func TestLeafHubUnreachable(t *testing.T) {
	start := time.Now()
	edge := hubtest.Broker(t, broker.Config{Leaf: []string{"nats://127.0.0.1:" + itoa(hubtest.FreePort(t))}})
	t.Logf("edge with an unreachable hub ready in %v", time.Since(start).Round(time.Millisecond))
	w := viewer(t, edge.ClientURL(), subscriber.LayerHi)
	hubtest.PublishPattern(t, edge.ClientURL(), "lobby", "cam")
	hubtest.Eventually(t, 10*time.Second, func() bool { return w.frames() >= 5 },
		"an edge without its hub does not serve its own clients")
}

func itoa(n int) string { return strconv.Itoa(n) }
