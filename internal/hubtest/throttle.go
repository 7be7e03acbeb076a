package hubtest

import (
	"testing"

	"github.com/vidhub/vidhub/internal/netproxy"
)

// Throttle is a TCP proxy that paces the bytes it carries, in each
// direction, to a rate that a test sets and changes (SetRate): a slow
// link between a client (or an edge broker's leaf link) and a broker,
// without network namespaces. See netproxy.
type Throttle = netproxy.Proxy

// StartThrottle listens on a free loopback port and forwards to target
// (host:port, or a nats:// URL) at no limit until SetRate; it stops at
// the end of the test.
func StartThrottle(t testing.TB, target string) *Throttle {
	t.Helper()
	p, err := netproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
