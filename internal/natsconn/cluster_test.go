package natsconn_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
)

// connectLogged connects to the brokers of urls, logging at debug level
// into the returned buffer.
func connectLogged(t *testing.T, urls ...string) *hubtest.Buffer {
	t.Helper()
	logs := &hubtest.Buffer{}
	nc, err := natsconn.Connect(natsconn.Config{
		URL: strings.Join(urls, ","), Name: "cluster check test",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { natsconn.Close(nc) })
	return logs
}

// Two brokers that are not one cluster, given to a client as one list:
// the client says so, naming each.
func TestClusterSplitIsWarned(t *testing.T) {
	a := hubtest.Broker(t, broker.Config{ServerName: "alone-a"})
	b := hubtest.Broker(t, broker.Config{ServerName: "alone-b"})
	logs := connectLogged(t, a.ClientURL(), b.ClientURL())
	hubtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "not one cluster") },
		"no warning of the split in the log:\n%v", hubtest.Lazy(func() any { return logs.String() }))
	for _, want := range []string{a.ClientURL() + " (broker alone-a, in no cluster)", b.ClientURL() + " (broker alone-b, in no cluster)"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the warning does not name %q:\n%s", want, logs)
		}
	}
}

// A list of one cluster's brokers, one of them down and one given twice
// under another name: no warning.
func TestClusterOneIsQuiet(t *testing.T) {
	ports := hubtest.FreePorts(t, 3)
	route := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", ports[i]) }
	cfg := func(name string, i int) broker.Config {
		return broker.Config{ServerName: name, ClusterName: "vidhub-test",
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: []string{route(0), route(1)}}
	}
	a := hubtest.Broker(t, cfg("member-a", 0))
	b := hubtest.Broker(t, cfg("member-b", 1))
	down := fmt.Sprintf("nats://127.0.0.1:%d", ports[2]) // nothing listens: skipped
	again := strings.Replace(a.ClientURL(), "127.0.0.1", "localhost", 1)
	logs := connectLogged(t, a.ClientURL(), down, b.ClientURL(), again)
	hubtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "checked that the brokers given are one cluster") },
		"no cluster check in the log:\n%v", hubtest.Lazy(func() any { return logs.String() }))
	if l := logs.String(); strings.Contains(l, "not one cluster") || !strings.Contains(l, "answered=3") {
		t.Errorf("want a check of 3 brokers that answered, and no warning:\n%s", l)
	}
}
