package broker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestLeafTiming: an edge pings every LeafPing, and both ends of a leaf
// link cut a write blocked for LeafWriteDeadline, so a link that died in
// silence is dialled again within seconds; a config file's own
// ping_interval and leafnodes write_deadline win. (nats-server's varz
// reports the cluster's write deadline as the leaf one, so this reads
// the options.)
func TestLeafTiming(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "edge.conf")
	if err := os.WriteFile(conf, []byte("ping_interval: \"20s\"\nleafnodes { write_deadline: \"7s\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	own, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		cfg      Config
		opts     *server.Options
		ping     time.Duration
		deadline time.Duration
		policy   server.WriteTimeoutPolicy
	}{
		{"no leaf", Config{}, &server.Options{}, 0, 0, server.WriteTimeoutPolicyDefault},
		{"hub", Config{LeafListen: "127.0.0.1:7422"}, &server.Options{}, 0, LeafWriteDeadline, server.WriteTimeoutPolicyClose},
		{"edge", Config{Leaf: []string{"nats://hub.example.com:7422"}}, &server.Options{}, LeafPing, LeafWriteDeadline, server.WriteTimeoutPolicyClose},
		{"edge, config file", Config{Leaf: []string{"nats://hub.example.com:7422"}}, own, 20 * time.Second, 7 * time.Second, server.WriteTimeoutPolicyDefault},
	} {
		if err := c.cfg.leafOptions(c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.opts.PingInterval != c.ping || c.opts.LeafNode.WriteDeadline != c.deadline || c.opts.LeafNode.WriteTimeout != c.policy {
			t.Errorf("%s: ping every %v, leaf write deadline %v (%v); want %v, %v (%v)", c.name,
				c.opts.PingInterval, c.opts.LeafNode.WriteDeadline, c.opts.LeafNode.WriteTimeout, c.ping, c.deadline, c.policy)
		}
	}
}
