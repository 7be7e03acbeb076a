package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
)

// routePeers asks a broker's monitoring how many other servers it has
// routes to (a pair of servers may keep a pool of routes).
func routePeers(monitor string) int {
	resp, err := http.Get(monitor + "/routez")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Routes []struct {
			RemoteID string `json:"remote_id"`
		} `json:"routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return -1
	}
	peers := map[string]bool{}
	for _, rt := range r.Routes {
		peers[rt.RemoteID] = true
	}
	return len(peers)
}

// TestBrokerCommandCluster runs three "vidhub broker" processes that form
// a cluster three ways: flags, the environment, and a config file's
// cluster block. A publisher on one and a viewer on another see each
// other, and the viewer fails over when its broker is stopped.
func TestBrokerCommandCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vidhub processes")
	}
	bin := vidhubBin(t)
	type node struct {
		client, route, monitor int
	}
	var nodes []node
	ports := hubtest.FreePorts(t, 9)
	for i := range 3 {
		nodes = append(nodes, node{ports[3*i], ports[3*i+1], ports[3*i+2]})
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	routes := fmt.Sprintf("nats://%s,nats://%s,nats://%s", addr(nodes[0].route), addr(nodes[1].route), addr(nodes[2].route))

	// Node 1: flags.
	p1 := hubtest.Start(t, bin, "broker", "--listen", addr(nodes[0].client), "--http", addr(nodes[0].monitor),
		"--server-name", "n1", "--cluster-name", "clitest", "--cluster-listen", addr(nodes[0].route), "--routes", routes)
	// Node 2: the environment.
	p2 := hubtest.StartProc(t, hubtest.ProcConfig{Env: []string{
		"VIDHUB_NATS_LISTEN=" + addr(nodes[1].client), "VIDHUB_MONITOR_LISTEN=" + addr(nodes[1].monitor),
		"VIDHUB_SERVER_NAME=n2", "VIDHUB_CLUSTER_NAME=clitest", "VIDHUB_CLUSTER_LISTEN=" + addr(nodes[1].route), "VIDHUB_ROUTES=" + routes,
	}}, bin, "broker")
	// Node 3: a stock config file with a cluster block; flags override
	// its client address.
	conf := filepath.Join(t.TempDir(), "n3.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
server_name: n3
http: %q
cluster {
  name: clitest
  listen: %q
  routes: [%s]
}
`, addr(nodes[2].monitor), addr(nodes[2].route), routes)), 0o644); err != nil {
		t.Fatal(err)
	}
	p3 := hubtest.Start(t, bin, "broker", "--config", conf, "--listen", addr(nodes[2].client))
	procs := []*hubtest.Proc{p1, p2, p3}

	for i, n := range nodes {
		hubtest.Eventually(t, 15*time.Second, func() bool { return routePeers("http://"+addr(n.monitor)) == 2 },
			"broker %d does not have routes to the two others", i+1)
	}
	// The routes can form a moment before the command prints its summary.
	p1.WaitFor(10*time.Second, func() bool { return strings.Contains(p1.Output(), "cluster clitest") },
		"vidhub broker did not report its cluster")

	url := func(i int) string { return "nats://" + addr(nodes[i].client) }
	pc, err := natsconn.Connect(natsconn.Config{URL: url(0), Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	hubtest.Publish(t, pc, hubtest.Pattern("lobby", "cam"))
	v := mustJoin(t, url(1)+","+url(2), "lobby")
	hubtest.Eventually(t, 10*time.Second, func() bool { n, _ := v.frames("cam"); return n >= 3 },
		"no frames from broker 1 at a viewer of the cluster")

	// Stop (SIGTERM) whichever broker the viewer is on.
	connected := v.nc.ConnectedUrl()
	start := time.Now()
	for i := range nodes {
		if url(i) == connected {
			procs[i].StopWith(syscall.SIGTERM, hubtest.StopWait)
		}
	}
	seen, _ := v.frames("cam")
	hubtest.Eventually(t, 15*time.Second, func() bool { n, _ := v.frames("cam"); return n > seen+2 && v.nc.ConnectedUrl() != connected },
		"the viewer did not fail over after its broker (%s) stopped", connected)
	t.Logf("broker %s stopped (SIGTERM); the viewer resumed on %s after %v", connected, v.nc.ConnectedUrl(), time.Since(start))
}

// TestBrokerCommandClusterErrors: cluster flags that cannot work are
// usage errors that say what to do.
func TestBrokerCommandClusterErrors(t *testing.T) {
	bin := vidhubBin(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--routes", "nats://b2:6222"}, "need --cluster-listen"},
		{[]string{"--cluster-name", "x"}, "need --cluster-listen"},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--routes", "b2:6222"}, "nats://"},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--routes", "nats://b2"}, "has no port"},
	} {
		_, errOut, code := runCmd(t, 30*time.Second, nil, bin, append([]string{"broker", "--listen", "127.0.0.1:0"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("vidhub broker %v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestHealthCommand: "vidhub health" passes for a working broker,
// monitoring endpoint and publisher, and fails (exit 1, with the reason)
// for each that is missing.
func TestHealthCommand(t *testing.T) {
	bin := vidhubBin(t)
	b := hubtest.Broker(t, broker.Config{HTTP: "127.0.0.1:0"})
	pc, err := natsconn.Connect(natsconn.Config{URL: b.ClientURL(), Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	hubtest.Publish(t, pc, hubtest.Pattern("lobby", "cam"))
	dead := "127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"nats", nil, []string{"--nats", b.ClientURL()}, 0, "broker nats://"},
		{"nats from NATS_URL", []string{"NATS_URL=" + b.ClientURL()}, nil, 0, "answers"},
		{"monitoring", nil, []string{"--url", b.MonitorURL() + "/healthz"}, 0, "200 OK"},
		{"presence", []string{"VIDHUB_NATS=" + b.ClientURL()}, []string{"--presence", "lobby/cam"}, 0, "lobby/cam is present as publisher"},
		{"everything", nil, []string{"--nats", b.ClientURL(), "--url", b.MonitorURL() + "/healthz," + b.MonitorURL() + "/varz", "--presence", "lobby/cam"}, 0, "present"},
		{"no broker", nil, []string{"--nats", "nats://" + dead}, 1, "cannot reach the NATS broker"},
		{"no http", nil, []string{"--url", "http://" + dead + "/healthz"}, 1, "does not answer"},
		{"http 404", nil, []string{"--url", b.MonitorURL() + "/nope"}, 1, "404"},
		{"absent publisher", nil, []string{"--nats", b.ClientURL(), "--presence", "lobby/ghost", "--timeout", "1500ms"}, 1, "no presence from ghost"},
		{"bad url", nil, []string{"--url", "ftp://x"}, 2, "http://"},
		{"bad presence", nil, []string{"--presence", "lobby"}, 2, "ROOM/NAME"},
		{"bad name", nil, []string{"--presence", "lobby/a.b"}, 2, "A-Z a-z 0-9"},
		{"bad timeout", nil, []string{"--timeout", "0s"}, 2, "positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"NATS_URL=", "VIDHUB_NATS="}, tc.env...)
			out, errOut, code := runCmd(t, 30*time.Second, env, bin, append([]string{"health"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("vidhub health %v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", tc.args, code, tc.code, out, errOut, tc.want)
			}
		})
	}
}
