package broker_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/subscriber"
)

// clusterBroker starts an embedded broker that listens for routes on a
// random loopback port.
func clusterBroker(t *testing.T, name string, routes ...string) *broker.Broker {
	t.Helper()
	return hubtest.Broker(t, broker.Config{
		ServerName: name, ClusterName: "vidhub-test",
		ClusterListen: "127.0.0.1:0", Routes: routes,
	})
}

// waitRoutes waits until every broker has a route to each of the others.
func waitRoutes(t *testing.T, bs ...*broker.Broker) {
	t.Helper()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, b := range bs {
			if b.Server().NumRoutes() < len(bs)-1 {
				return false
			}
		}
		return true
	}, "the %d brokers did not connect to each other", len(bs))
}

// watcher is a headless viewer of one room on its own connection.
type watcher struct {
	nc   *nats.Conn
	room *subscriber.Room
}

func watch(t *testing.T, urls ...string) *watcher {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{
		URL: strings.Join(urls, ","), Name: "viewer",
		// The first URL is the viewer's home node: no shuffling.
		Options: []nats.Option{nats.DontRandomize()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	room, err := subscriber.Join(nc, subscriber.Config{Room: "lobby", Layer: subscriber.LayerHi})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(room.Close)
	return &watcher{nc: nc, room: room}
}

// frames is how many frames of participant cam the viewer has received.
func (w *watcher) frames() uint64 {
	for _, s := range w.room.Stats() {
		if s.Participant == "cam" {
			return s.Frames
		}
	}
	return 0
}

// publish runs a pattern publisher into room lobby as cam until the test
// ends.
func publish(t *testing.T, url string) *hubtest.Publisher {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return hubtest.Publish(t, nc, hubtest.Pattern("lobby", "cam"))
}

// TestClusterFailover is the scale-out promise: a publisher on node A,
// viewers on B and C; when B goes away, B's viewers move to another node
// by themselves and frames flow again within 3 seconds, while C's viewer
// never notices.
func TestClusterFailover(t *testing.T) {
	a := clusterBroker(t, "a")
	b := clusterBroker(t, "b", a.ClusterURL())
	c := clusterBroker(t, "c", a.ClusterURL(), b.ClusterURL())
	waitRoutes(t, a, b, c)

	onB := []*watcher{watch(t, b.ClientURL(), c.ClientURL()), watch(t, b.ClientURL(), a.ClientURL(), c.ClientURL())}
	onC := watch(t, c.ClientURL(), b.ClientURL())
	publish(t, a.ClientURL())

	all := append([]*watcher{onC}, onB...)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, w := range all {
			if w.frames() < 5 {
				return false
			}
		}
		return true
	}, "frames published on A did not reach the viewers on B and C through the cluster")

	start := time.Now()
	b.Close()
	downAfter := time.Since(start)
	seen := make([]uint64, len(all))
	for i, w := range all {
		seen[i] = w.frames()
	}
	hubtest.Eventually(t, 3*time.Second, func() bool {
		for i, w := range all {
			if w.frames() <= seen[i]+2 || !w.nc.IsConnected() || w.nc.ConnectedUrl() == b.ClientURL() {
				return false
			}
		}
		return true
	}, "B's viewers did not fail over to another node and resume")
	t.Logf("broker B stopped in %v; its viewers resumed on %s and %s %v after the stop began",
		downAfter, onB[0].nc.ConnectedUrl(), onB[1].nc.ConnectedUrl(), time.Since(start))
	if got := onC.nc.Reconnects; got != 0 {
		t.Errorf("C's viewer reconnected %d times; losing B must not touch it", got)
	}
}

// TestClusterFromConfigFile: the cluster block of a stock nats-server
// config file clusters the embedded broker, and fields override it.
func TestClusterFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.conf")
	writeFile(t, first, `
server_name: first
listen: "127.0.0.1:-1"
cluster {
  name: filecluster
  listen: "127.0.0.1:-1"
}
`)
	a := hubtest.Broker(t, broker.Config{ConfigFile: first})
	if a.ClusterURL() == "" {
		t.Fatal("the config file's cluster block did not make the broker listen for routes")
	}
	if got := a.Server().ClusterName(); got != "filecluster" {
		t.Errorf("cluster name %q, want the file's filecluster", got)
	}
	second := filepath.Join(dir, "second.conf")
	writeFile(t, second, `
listen: "127.0.0.1:-1"
cluster {
  name: filecluster
  listen: "127.0.0.1:-1"
  routes: [`+strconv.Quote(a.ClusterURL())+`]
}
`)
	b := hubtest.Broker(t, broker.Config{ConfigFile: second, ServerName: "second-by-field"})
	waitRoutes(t, a, b)
	if got := b.Server().Name(); got != "second-by-field" {
		t.Errorf("server name %q, want the field's second-by-field", got)
	}

	// A message crosses the route both ways.
	for _, pair := range [][2]*broker.Broker{{a, b}, {b, a}} {
		sub := hubtest.Connect(t, pair[1].ClientURL())
		ch := make(chan *nats.Msg, 1)
		s, err := sub.ChanSubscribe("vidhub.x.y.presence", ch)
		if err != nil {
			t.Fatal(err)
		}
		pub := hubtest.Connect(t, pair[0].ClientURL())
		// Interest travels over the route on its own time: publish until
		// it arrives.
		hubtest.Eventually(t, 5*time.Second, func() bool {
			_ = pub.Publish("vidhub.x.y.presence", []byte("{}"))
			select {
			case <-ch:
				return true
			case <-time.After(50 * time.Millisecond):
				return false
			}
		}, "no message from %s to %s", pair[0].Server().Name(), pair[1].Server().Name())
		_ = s.Unsubscribe()
	}
}

// TestEmbeddedJoinsNatsServerCluster: the embedded broker routes to a
// stock nats-server process, so vidhub can join an existing cluster.
func TestEmbeddedJoinsNatsServerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server")
	}
	routePort := hubtest.FreePort(t)
	stock := hubtest.StartNatsServer(t, 0, "--server_name", "stock", "--cluster_name", "mixed",
		"--cluster", "nats://127.0.0.1:"+strconv.Itoa(routePort))
	emb := hubtest.Broker(t, broker.Config{ServerName: "embedded", ClusterName: "mixed",
		ClusterListen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:" + strconv.Itoa(routePort)}})
	hubtest.Eventually(t, 10*time.Second, func() bool { return emb.Server().NumRoutes() >= 1 },
		"the embedded broker did not route to the stock nats-server")

	onStock := watch(t, stock.URL)
	publish(t, emb.ClientURL())
	hubtest.Eventually(t, 10*time.Second, func() bool { return onStock.frames() >= 3 },
		"frames published on the embedded broker did not reach a viewer on the stock server")
}

func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  broker.Config
		want string
	}{
		{"routes without listen", broker.Config{Routes: []string{"nats://127.0.0.1:6222"}}, "need a cluster listen address"},
		{"name without listen", broker.Config{ClusterName: "x"}, "need a cluster listen address"},
		{"route without scheme", broker.Config{ClusterListen: "127.0.0.1:0", Routes: []string{"127.0.0.1:6222"}}, "nats://"},
		{"route without port", broker.Config{ClusterListen: "127.0.0.1:0", Routes: []string{"nats://b2"}}, "has no port"},
		{"route bad port", broker.Config{ClusterListen: "127.0.0.1:0", Routes: []string{"nats://b2:99999"}}, "1 to 65535"},
		{"route http", broker.Config{ClusterListen: "127.0.0.1:0", Routes: []string{"http://b2:6222"}}, "scheme"},
		{"bad listen", broker.Config{ClusterListen: "6222"}, "cluster listen address"},
		{"bad advertise", broker.Config{ClusterListen: "127.0.0.1:0", ClusterAdvertise: "b1"}, "advertise"},
		{"name with space", broker.Config{ClusterListen: "127.0.0.1:0", ClusterName: "my cluster"}, "spaces"},
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
}

func TestClusterPortTaken(t *testing.T) {
	a := clusterBroker(t, "a")
	_, port, _ := strings.Cut(strings.TrimPrefix(a.ClusterURL(), "nats://"), ":")
	b, err := broker.Start(broker.Config{ClusterListen: "127.0.0.1:" + port})
	if err == nil {
		b.Close()
		t.Fatal("a second broker took a cluster port in use")
	}
	if !strings.Contains(err.Error(), "cluster connections") {
		t.Errorf("error %q does not say the cluster port is taken", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
