package natsconn

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A list of brokers (--nats a,b,c) is meant to be one cluster. A publisher
// and a viewer that connect to different brokers of the list see each
// other only when those brokers pass each other's messages on. If they
// do not (one started without its cluster settings, or two brokers each
// on its own), the hub is split, and nothing fails. Rooms just look empty
// or half full, depending on which broker each client happened to get.
// watchCluster finds such a split and says so in the log.

// Cluster checks: the first as soon as the connection is up (and after
// every reconnect), then again after growing pauses. The list's brokers
// may still be starting when a client connects (a compose stack starts
// them all at once), and may be restarted with other settings later.
const (
	clusterCheckFirst = 10 * time.Second
	clusterCheckMax   = 10 * time.Minute
	clusterProbeWait  = 2 * time.Second
)

// brokerInfo is what one broker of a list says about itself when a client
// connects.
type brokerInfo struct {
	url     string // redacted
	name    string // server name; the server ID when it has none
	id      string
	cluster string // "" when the broker is in no cluster
}

// island says which brokers pass messages to each other: those of one
// cluster, and a broker in no cluster only to itself. Two clusters that
// share a name (and are linked by no route) look like one: names are
// all a client is told.
func (b brokerInfo) island() string {
	if b.cluster != "" {
		return "cluster " + b.cluster
	}
	return "broker " + b.name + ", in no cluster"
}

// probeBrokers connects to each of urls in turn of its own, briefly, with
// opts (authentication and TLS only), and returns what each broker that
// answers says about itself. Brokers that do not answer are left out: a
// list may name brokers that run only in some deployments.
func probeBrokers(urls []string, opts []nats.Option) []brokerInfo {
	found := make([]*brokerInfo, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			o := append(slices.Clip(opts), nats.Name("vidhub cluster check"), nats.Timeout(clusterProbeWait), nats.NoReconnect())
			nc, err := nats.Connect(u, o...)
			if err != nil {
				return
			}
			defer nc.Close()
			b := &brokerInfo{url: Redact(u), name: nc.ConnectedServerName(), id: nc.ConnectedServerId(), cluster: nc.ConnectedClusterName()}
			if b.name == "" {
				b.name = b.id
			}
			found[i] = b
		})
	}
	wg.Wait()
	var out []brokerInfo
	for _, b := range found {
		if b != nil {
			out = append(out, *b)
		}
	}
	return out
}

// splitOf describes how brokers are split into islands that do not pass
// each other's messages on, as "URLs (island); URLs (island)", or returns
// "" when they are one (or fewer than two answered).
func splitOf(brokers []brokerInfo) string {
	var order []string
	urls := map[string][]string{}
	seen := map[string]bool{} // server IDs: two URLs of one broker are one
	for _, b := range brokers {
		if seen[b.id] {
			continue
		}
		seen[b.id] = true
		k := b.island()
		if _, ok := urls[k]; !ok {
			order = append(order, k)
		}
		urls[k] = append(urls[k], b.url)
	}
	if len(order) < 2 {
		return ""
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = strings.Join(urls[k], ", ") + " (" + k + ")"
	}
	return strings.Join(parts, "; ")
}

// brokerURLs splits a comma-separated list of broker URLs, without
// repeats.
func brokerURLs(list string) []string {
	var out []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// watchCluster checks, while nc is open, that the brokers of cfg.URL are
// one cluster (see the top of this file), and logs a warning when they
// are not, and again when that changes. kick asks for a check at once (a
// connection or reconnection). Lists of one broker are not checked.
func watchCluster(nc *nats.Conn, cfg Config, opts []nats.Option, kick <-chan struct{}) {
	urls := brokerURLs(cfg.URL)
	if len(urls) < 2 {
		return
	}
	closed := nc.StatusChanged(nats.CLOSED)
	go func() {
		defer nc.RemoveStatusListener(closed)
		log := cfg.logger()
		last := ""
		wait := clusterCheckFirst
		var next <-chan time.Time // nil until the first check, which a kick starts
		for {
			select {
			case <-closed:
				return
			case <-kick:
				wait = clusterCheckFirst
			case <-next:
				wait = min(3*wait, clusterCheckMax)
			}
			brokers := probeBrokers(urls, opts)
			split := splitOf(brokers)
			switch {
			case split != "" && split != last:
				log.Warn("the brokers given are not one cluster: clients connected to different ones do not see each other's rooms; give every client the brokers of one cluster, or join them into one (routes: docs/deployment.md#scaling-out-a-nats-cluster)",
					"brokers", split)
			case split == "" && last != "":
				log.Info("the brokers given are one cluster again", "answered", len(brokers))
			default:
				log.Debug("checked that the brokers given are one cluster", "answered", len(brokers), "split", split != "")
			}
			last = split
			next = time.After(wait)
		}
	}()
}
