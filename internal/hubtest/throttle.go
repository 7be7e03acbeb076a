package hubtest

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// Throttle is a TCP proxy that paces the bytes it carries, in each
// direction, to a rate that a test sets and changes: a slow link between
// a client (or an edge broker's leaf link) and a broker, without network
// namespaces. What the rate cannot carry waits in the sender's buffers
// and the sockets', as it would in front of a slow WAN link.
type Throttle struct {
	ln                 net.Listener
	target             string
	up                 *rate.Limiter // from the dialer to the target
	down               *rate.Limiter // back
	upBytes, downBytes atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// throttleChunk is the most a Throttle reads and passes on at once.
const throttleChunk = 4 << 10

// StartThrottle listens on a free loopback port and forwards to target
// (host:port, or a nats:// URL) at no limit until SetRate; it stops at
// the end of the test.
func StartThrottle(t testing.TB, target string) *Throttle {
	t.Helper()
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("throttle: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Throttle{ln: ln, target: target, ctx: ctx, cancel: cancel,
		up: rate.NewLimiter(rate.Inf, throttleChunk), down: rate.NewLimiter(rate.Inf, throttleChunk)}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Throttle) Addr() string { return p.ln.Addr().String() }

// Bytes returns the bytes carried so far from the dialer to the target
// (up) and back (down).
func (p *Throttle) Bytes() (up, down uint64) { return p.upBytes.Load(), p.downBytes.Load() }

// SetRate paces both directions to bps bits per second from now on; 0
// lifts the limit.
func (p *Throttle) SetRate(bps int) {
	l := rate.Inf
	if bps > 0 {
		l = rate.Limit(bps / 8)
	}
	p.up.SetLimit(l)
	p.down.SetLimit(l)
}

func (p *Throttle) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ctx.Err() != nil {
			p.mu.Unlock()
			c.Close()
			b.Close()
			return
		}
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(b, c, p.up, &p.upBytes) })
		p.wg.Go(func() { p.pipe(c, b, p.down, &p.downBytes) })
	}
}

// pipe copies from src to dst at lim's pace.
func (p *Throttle) pipe(dst, src net.Conn, lim *rate.Limiter, count *atomic.Uint64) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, throttleChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if lim.WaitN(p.ctx, n) != nil {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			count.Add(uint64(n))
		}
		if err != nil {
			return
		}
	}
}

// Close stops the proxy and its connections; it is safe to call twice.
func (p *Throttle) Close() {
	p.cancel()
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
