package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// natsServer runs a stock nats-server with conf, its monitoring moved to
// a free port so tests do not collide, with env (each "KEY=value") for
// the file's $VARIABLES.
func natsServer(t *testing.T, env []string, conf string, args ...string) *hubtest.NatsServer {
	t.Helper()
	return hubtest.StartNatsServerEnv(t, env, 0, append([]string{"-c", conf, "-m", strconv.Itoa(hubtest.FreePort(t))}, args...)...)
}

// TestNatsConfSingle: deploy/nats/vidhub.conf runs a stock server that
// takes frames far over NATS's default 1MB, and vidhub publishes, views
// and lists rooms through it.
func TestNatsConfSingle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	s := natsServer(t, nil, "nats/vidhub.conf")
	nc := hubtest.Connect(t, s.URL)
	if got, want := nc.MaxPayload(), int64(8<<20); got != want {
		t.Errorf("max payload %d, want %d (8MB, room for 4K JPEG frames)", got, want)
	}
	big := make([]byte, 3<<20)
	sub, err := nc.SubscribeSync("vidhub.big.cam.hi")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("vidhub.big.cam.hi", big); err != nil {
		t.Fatalf("publishing a 3MB message: %v", err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || len(m.Data) != len(big) {
		t.Fatalf("a 3MB message did not come back whole: %v", err)
	}

	pc, err := natsconn.Connect(natsconn.Config{URL: s.URL, Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	hubtest.Publish(t, pc, hubtest.Pattern("lobby", "cam"))
	v := mustJoin(t, s.URL, "lobby")
	hubtest.Eventually(t, 10*time.Second, func() bool { n, _ := v.frames("cam"); return n >= 5 },
		"no frames through nats-server -c vidhub.conf")
	if _, bad := v.frames("cam"); bad != 0 {
		t.Errorf("%d bad frames", bad)
	}
	rooms, err := subscriber.ListRooms(context.Background(), nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !hasMember(rooms, "lobby", "cam") {
		t.Errorf("rooms %+v: want lobby with cam", rooms)
	}
}

func hasMember(rooms []protocol.RoomInfo, room, name string) bool {
	for _, r := range rooms {
		for _, m := range r.Members {
			if r.Room == room && m.Name == name {
				return true
			}
		}
	}
	return false
}

// TestNatsConfCluster runs deploy/nats/cluster.conf on three stock
// nats-server processes (its host names and ports moved to loopback), a
// publisher on node 1 and viewers on nodes 2 and 3; killing node 2
// (SIGKILL) moves its viewer to another node within 3 seconds.
func TestNatsConfCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	orig, err := os.ReadFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	routePorts := hubtest.FreePorts(t, 3)
	dir := t.TempDir()
	var servers []*hubtest.NatsServer
	for i := range 3 {
		conf := string(orig)
		for j, p := range routePorts {
			old := fmt.Sprintf("nats://nats-%d:6222", j+1)
			if !strings.Contains(conf, old) {
				t.Fatalf("cluster.conf has no route %s: update this test with the file", old)
			}
			conf = strings.ReplaceAll(conf, old, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
		if strings.Count(conf, "listen: 0.0.0.0:6222") != 1 {
			t.Fatal("cluster.conf has no cluster listen 0.0.0.0:6222: update this test with the file")
		}
		conf = strings.Replace(conf, "listen: 0.0.0.0:6222", "listen: 127.0.0.1:"+strconv.Itoa(routePorts[i]), 1)
		path := filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// The file names each node from the environment.
		servers = append(servers, natsServer(t, []string{fmt.Sprintf("NATS_SERVER_NAME=nats-%d", i+1)}, path))
	}
	// Every node reaches every other: a message from each node arrives at
	// a subscriber on each other node.
	for i, from := range servers {
		for j, to := range servers {
			if i == j {
				continue
			}
			checkRoute(t, from.URL, to.URL)
		}
	}

	pc, err := natsconn.Connect(natsconn.Config{URL: servers[0].URL, Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	hubtest.Publish(t, pc, hubtest.Pattern("lobby", "cam"))
	on2 := mustJoin(t, servers[1].URL+","+servers[2].URL, "lobby", nats.DontRandomize())
	on3 := mustJoin(t, servers[2].URL+","+servers[1].URL, "lobby", nats.DontRandomize())
	for _, v := range []*viewer{on2, on3} {
		hubtest.Eventually(t, 10*time.Second, func() bool { n, _ := v.frames("cam"); return n >= 5 },
			"frames from node 1 did not reach a viewer on %s", v.nc.ConnectedUrl())
	}

	start := time.Now()
	servers[1].Kill()
	seen, _ := on2.frames("cam")
	hubtest.Eventually(t, 15*time.Second, func() bool {
		n, _ := on2.frames("cam")
		return n > seen+2 && on2.nc.ConnectedUrl() == servers[2].URL
	}, "the viewer on the killed node 2 did not resume on node 3")
	t.Logf("node 2 killed; its viewer resumed on node 3 after %v", time.Since(start))
}

// checkRoute waits until a message published on from reaches a
// subscriber on to.
func checkRoute(t *testing.T, from, to string) {
	t.Helper()
	sub := hubtest.Connect(t, to)
	s, err := sub.SubscribeSync("vidhub.route.check.presence")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := hubtest.Connect(t, from)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		_ = pub.Publish("vidhub.route.check.presence", []byte("{}"))
		_, err := s.NextMsg(50 * time.Millisecond)
		return err == nil
	}, "nothing published on %s reached %s", from, to)
}

// TestNatsConfAuth: deploy/nats/auth.conf lets each user do what its
// comment says and nothing more.
func TestNatsConfAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	pw := map[string]string{"cam1": "cam-pw", "alice": "alice-pw", "web": "web-pw", "directory": "dir-pw"}
	var env []string
	for user, p := range pw {
		env = append(env, "VIDHUB_"+strings.ToUpper(user)+"_PASSWORD="+p)
	}
	s := natsServer(t, env, "nats/auth.conf")
	as := func(user string) string {
		return "nats://" + user + ":" + pw[user] + "@127.0.0.1:" + strconv.Itoa(s.Port)
	}

	if nc, err := nats.Connect(s.URL); err == nil {
		nc.Close()
		t.Error("connected without a user")
	}
	if nc, err := nats.Connect("nats://cam1:wrong@127.0.0.1:" + strconv.Itoa(s.Port)); err == nil {
		nc.Close()
		t.Error("connected with a wrong password")
	}

	// cam1 publishes into lobby; alice (a chat in lobby) and web see it.
	cam, err := natsconn.Connect(natsconn.Config{URL: as("cam1"), Name: "cam1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	hubtest.Publish(t, cam, hubtest.Pattern("lobby", "cam1"))
	alice, err := join(t, as("alice"), "lobby", "alice")
	if err != nil {
		t.Fatalf("alice joining lobby: %v", err)
	}
	web, err := join(t, as("web"), "lobby", "gateway")
	if err != nil {
		t.Fatalf("web joining lobby: %v", err)
	}
	for _, v := range []*viewer{alice, web} {
		hubtest.Eventually(t, 10*time.Second, func() bool { n, _ := v.frames("cam1"); return n >= 3 },
			"no frames of cam1 for a permitted viewer")
	}

	// The directory user lists rooms, and can do nothing else.
	dir := hubtest.Connect(t, as("directory"))
	rooms, err := subscriber.ListRooms(context.Background(), dir, 0)
	if err != nil {
		t.Fatalf("directory listing rooms: %v", err)
	}
	if !hasMember(rooms, "lobby", "cam1") || !hasMember(rooms, "lobby", "alice") {
		t.Errorf("rooms %+v: want lobby with cam1 and alice", rooms)
	}

	// Refusals: alice may not watch another room, nor cam1 watch at all.
	if _, err := join(t, as("alice"), "secret", "alice"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permission") {
		t.Errorf("alice joining room secret: %v; want a permissions violation", err)
	}
	if _, err := join(t, as("cam1"), "lobby", "cam1"); err == nil {
		t.Error("cam1 could subscribe to lobby; a camera only publishes")
	}

	// cam1 cannot pose as someone else: its frames under another name
	// never arrive, and the server says why.
	errs := make(chan error, 10)
	spoof := hubtest.Connect(t, as("cam1"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	sub, err := web.nc.SubscribeSync("vidhub.lobby.bob.hi")
	if err != nil {
		t.Fatal(err)
	}
	if err := web.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := spoof.Publish("vidhub.lobby.bob.hi", []byte("not a frame")); err != nil {
		t.Fatal(err)
	}
	_ = spoof.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("publishing as bob: %v; want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("publishing as bob drew no permissions violation")
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("web received %q published by cam1 as bob", m.Data)
	}
}
