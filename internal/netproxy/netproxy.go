// Package netproxy forwards TCP connections to a target and shapes what
// it carries, as a slow link or a stopped process would: paced to a rate
// (what the rate cannot carry waits in the sender's buffers and the
// sockets', as in front of a slow WAN link), or held, reading nothing, so
// the sender's writes queue up behind it. Tests and the bench put it
// between a client (or an edge broker's leaf link) and a broker.
package netproxy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Proxy forwards the connections it accepts to its target.
type Proxy struct {
	ln                 net.Listener
	target             string
	up                 *rate.Limiter // from the dialer to the target
	down               *rate.Limiter // back
	upBytes, downBytes atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	held   *sync.Cond // signalled when held or ctx changes
	hold   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

// chunk is the most a Proxy reads and passes on at once (and the rate
// limiters' burst).
const chunk = 4 << 10

// Start listens on a free loopback port and forwards to target (host:port,
// or a URL such as nats://host:port) at no limit, until Close.
func Start(target string) (*Proxy, error) {
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("proxy: target %q: want host:port or nats://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, ctx: ctx, cancel: cancel,
		up: rate.NewLimiter(rate.Inf, chunk), down: rate.NewLimiter(rate.Inf, chunk)}
	p.held = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address as a NATS URL.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// Bytes returns the bytes carried so far from the dialer to the target
// (up) and back (down): each chunk counts as it is handed on, so what an
// end has received is always counted.
func (p *Proxy) Bytes() (up, down uint64) { return p.upBytes.Load(), p.downBytes.Load() }

// SetRate paces both directions to bps bits per second from now on; 0
// lifts the limit.
func (p *Proxy) SetRate(bps int) {
	l := rate.Inf
	if bps > 0 {
		l = rate.Limit(bps / 8)
	}
	p.up.SetLimit(l)
	p.down.SetLimit(l)
}

// Pause stops carrying anything, both ways, until Resume: nothing is
// read, as from the socket of a stopped process.
func (p *Proxy) Pause() { p.setHold(true) }

// Resume carries on after Pause.
func (p *Proxy) Resume() { p.setHold(false) }

func (p *Proxy) setHold(h bool) {
	p.mu.Lock()
	p.hold = h
	p.held.Broadcast()
	p.mu.Unlock()
}

func (p *Proxy) accept() {
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

// pipe copies from src to dst at lim's pace, holding while paused.
func (p *Proxy) pipe(dst, src net.Conn, lim *rate.Limiter, count *atomic.Uint64) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, chunk)
	for {
		if !p.wait() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() || lim.WaitN(p.ctx, n) != nil {
				return
			}
			// Counted before the write: once the other end has the
			// bytes, Bytes says so (a connection that fails mid-write
			// counts its last chunk all the same).
			count.Add(uint64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the other side is closed by the defers
		}
	}
}

// wait waits while the proxy is paused; false once it is closed.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.hold && p.ctx.Err() == nil {
		p.held.Wait()
	}
	return p.ctx.Err() == nil
}

// Close stops the proxy and its connections; it is safe to call twice.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.cancel()
	p.held.Broadcast()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
