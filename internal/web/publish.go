package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

// maxClockSkew is how far a browser's capture time may be from the
// gateway's clock; beyond it the gateway stamps its own time.
const maxClockSkew = 10 * time.Second

// pubSocket is one browser publishing into a room under one name.
type pubSocket struct {
	g       *Gateway
	log     *slog.Logger
	conn    *websocket.Conn
	addr    protocol.Address
	fps     float64 // announced in presence
	started time.Time
	limit   int // largest JPEG

	hdr  [2]*protocol.FrameHeader
	subj [2]string
	seq  [2]uint64
	pace [2]*rate.Limiter // frames per second, by layer

	mu sync.Mutex
	// confirmed: a frame went through the broker (published and
	// flushed, with no permission violation): only then does the socket
	// announce a publisher. The read loop sets it.
	confirmed bool
	layers    [2]protocol.LayerInfo // zero until a frame of the layer came
	closed    bool
	shown     bool                    // a publisher beat went out
	stop      context.CancelCauseFunc // ends the socket with a cause (a refusal)
}

// endedPub is one of this gateway's ended publishing sockets under a
// name: its beats may still echo, and must not keep the name taken.
type endedPub struct {
	started, at time.Time
}

// publishHello is the first message on a publishing socket: the limits
// the browser must keep.
type publishHello struct {
	Type     string  `json:"type"` // "hello"
	Room     string  `json:"room"`
	Name     string  `json:"name"`
	MaxFPS   float64 `json:"maxFps"`   // per layer
	MaxBytes int     `json:"maxBytes"` // per JPEG
	Now      int64   `json:"now"`      // gateway clock, Unix milliseconds
	Version  int     `json:"version"`
}

// servePublish upgrades GET /ws/publish/{room}/{name} to a publishing
// socket. Query: fps=N, the rate announced in presence (at most the
// gateway's limit; default the limit).
func (g *Gateway) servePublish(w http.ResponseWriter, r *http.Request) {
	addr, err := protocol.NewAddress(r.PathValue("room"), r.PathValue("name"))
	if err != nil {
		g.badRequest(w, err)
		return
	}
	gr, ok := g.allow(w, r, addr.Room(), func(c webtoken.Claims) error { return c.CanPublish(addr.Room(), addr.Participant()) })
	if !ok {
		return
	}
	fps := g.cfg.MaxPublishFPS
	if s := r.URL.Query().Get("fps"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f > 0 && f <= g.cfg.MaxPublishFPS) {
			g.badRequest(w, fmt.Errorf("%w: fps %q: use a number above 0, at most %g", ErrBadRequest, s, g.cfg.MaxPublishFPS))
			return
		}
		fps = f
	}
	maxPayload := g.nc.MaxPayload()
	if !g.nc.IsConnected() || maxPayload <= headerRoom {
		http.Error(w, "the gateway cannot reach the NATS broker; try again shortly", http.StatusServiceUnavailable)
		return
	}
	limit := int(maxPayload) - headerRoom
	p := &pubSocket{
		g: g, addr: addr, fps: fps, started: time.Now(), limit: limit,
		log: g.log.With("socket", "publish", "room", addr.Room(), "name", addr.Participant(), "remote", r.RemoteAddr),
	}
	if !g.claim(p) {
		g.m.refuse("name_taken")
		http.Error(w, fmt.Sprintf("%s is in room %s already (heard in the last %v): pick another name, or wait until it has left",
			addr.Participant(), addr.Room(), heardWindow), http.StatusConflict)
		return
	}
	defer g.unclaim(p)
	release, ok := g.admit(w, r, gr.tok)
	if !ok {
		return
	}
	defer release()
	conn, err := websocket.Accept(w, r, g.acceptOptions())
	if err != nil {
		g.refuse("upgrade", "refused a publishing socket", "room", addr.Room(), "name", addr.Participant(), "err", err)
		return
	}
	conn.SetReadLimit(int64(limit + MaxWireHeader))
	p.conn = conn
	for i, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
		p.hdr[i] = protocol.NewFrameHeader()
		p.subj[i] = addr.FrameSubject(l)
		p.pace[i] = frameLimiter(g.cfg.MaxPublishFPS)
	}
	g.m.socketsNow[1].Add(1)
	defer g.m.socketsNow[1].Add(-1)
	g.runSocket(conn, p.log, g.expiry(gr.c), func(ctx context.Context) error { return g.runPublisher(ctx, p) })
}

// claim makes p the one socket of this gateway publishing under its
// address, unless the name is taken: by another socket of this gateway
// (publishing, or a viewer announcing it), by the gateway's own name, or
// by anyone else heard in presence lately (heardNames), whatever the
// directory says. Beats of this gateway's own ended sockets under the
// name do not count, so a page that reconnects gets its name back at once.
func (g *Gateway) claim(p *pubSocket) bool {
	a := p.addr
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.pubs[a]; ok || a.Participant() == g.self {
		return false
	}
	for v := range g.viewers {
		if v.room == a.Room() && v.name == a.Participant() {
			return false
		}
	}
	ended := g.ended[a]
	own := func(started time.Time) bool {
		for _, e := range ended {
			if e.started.Equal(started) {
				return true
			}
		}
		return false
	}
	if g.heard.takenBy(a, time.Now(), own) {
		return false
	}
	g.pubs[a] = p
	return true
}

// unclaim lets go of p's name; its start is kept a while, to tell the
// echo of its beats from someone else's.
func (g *Gateway) unclaim(p *pubSocket) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pubs[p.addr] == p {
		delete(g.pubs, p.addr)
	}
	g.ended[p.addr] = append(g.ended[p.addr], endedPub{started: p.started, at: time.Now()})
}

// pruneEnded forgets ended sockets whose presence is long gone.
func (g *Gateway) pruneEnded(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for a, es := range g.ended {
		kept := es[:0]
		for _, e := range es {
			if now.Sub(e.at) <= 2*heardWindow {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(g.ended, a)
		} else {
			g.ended[a] = kept
		}
	}
}

// onAsyncError is the NATS connection's error handler while the gateway
// runs: a publish the broker refused (its user may not publish there)
// ends the publishing socket it came from, with the reason; every error
// then goes to the handler the connection had before.
func (g *Gateway) onAsyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		if s, perr := protocol.ParseSubject(publishRefusal(err)); perr == nil {
			if a, aerr := protocol.NewAddress(s.Room(), s.Participant()); aerr == nil {
				g.mu.Lock()
				p := g.pubs[a]
				g.mu.Unlock()
				if p != nil {
					p.refused()
				}
			}
		}
	}
	if g.prevErrs != nil {
		g.prevErrs(nc, sub, err)
	}
}

// refusedError is how a socket ends when the broker refuses the
// gateway's publishing into its room.
func (p *pubSocket) refusedError() error {
	return closeWith("not_allowed", websocket.StatusPolicyViolation,
		fmt.Sprintf("the hub does not let this gateway publish into room %s: ask its admin to add the room to the gateway user's publish list", p.addr.Room()))
}

// refused ends the socket: the broker refused its frames.
func (p *pubSocket) refused() {
	p.mu.Lock()
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop(p.refusedError())
	}
}

func (g *Gateway) runPublisher(ctx context.Context, p *pubSocket) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	p.mu.Lock()
	p.stop = stop
	p.mu.Unlock()
	hello, _ := json.Marshal(publishHello{
		Type: "hello", Room: p.addr.Room(), Name: p.addr.Participant(),
		MaxFPS: g.cfg.MaxPublishFPS, MaxBytes: p.limit, Now: time.Now().UnixMilli(), Version: WireVersion,
	})
	wctx, cancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
	err := p.conn.Write(wctx, websocket.MessageText, hello)
	cancel()
	if err != nil {
		return err
	}
	// The publisher is announced with its first frame that the broker
	// took (publish): a socket the broker refuses leaves no ghost.
	defer g.beatPublisher(p, true)
	p.log.Info("browser publishing", "fps", p.fps)
	err = p.read(ctx)
	// A refusal ends the socket one of two ways: confirm sees it on the
	// first frame (read returns it), or the connection's error handler
	// reports it later (the context's cause). Either is logged once.
	var ce closeError
	if cause := context.Cause(ctx); errors.As(cause, &ce) && ce.kind == "not_allowed" {
		err = cause
	}
	if errors.As(err, &ce) && ce.kind == "not_allowed" {
		p.log.Warn("the broker refuses the gateway's frames in this room: closed the socket; give the gateway's NATS user publish rights in the room",
			"room", p.addr.Room())
	}
	p.log.Info("browser stopped publishing", "hi", p.seq[0], "lo", p.seq[1])
	return err
}

// read publishes what the browser sends until the socket ends or the
// browser breaks a rule.
func (p *pubSocket) read(ctx context.Context) error {
	for {
		typ, b, err := p.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				p.g.m.refuse("too_big")
			}
			return err
		}
		if typ != websocket.MessageBinary {
			return closeWith("bad_frame", websocket.StatusUnsupportedData, "a publishing socket takes only binary frames (see docs/browser.md)")
		}
		f, err := ParseWire(b)
		if err != nil {
			return closeWith("bad_frame", websocket.StatusPolicyViolation, err.Error())
		}
		if f.Layer.Codec() != protocol.CodecJPEG {
			return closeWith("bad_frame", websocket.StatusPolicyViolation, "a publishing socket takes JPEG frames only (see docs/browser.md)")
		}
		if f.Participant != "" && f.Participant != p.addr.Participant() {
			return closeWith("bad_frame", websocket.StatusPolicyViolation,
				fmt.Sprintf("frame names %q but this socket publishes as %q", f.Participant, p.addr.Participant()))
		}
		if len(f.Body) > p.limit {
			return closeWith("too_big", websocket.StatusMessageTooBig,
				fmt.Sprintf("frame of %d bytes is over the limit of %d: lower the size or quality", len(f.Body), p.limit))
		}
		now := time.Now()
		i := layerIndex(f.Layer)
		if !p.pace[i].AllowN(now, 1) {
			return closeWith("over_rate", websocket.StatusPolicyViolation,
				fmt.Sprintf("over rate: at most %g frames per second per layer", p.g.cfg.MaxPublishFPS))
		}
		if err := p.publish(i, f, now); err != nil {
			return err
		}
	}
}

// publish sends one checked frame with protocol v1's headers.
func (p *pubSocket) publish(i int, f WireFrame, now time.Time) error {
	t := f.Meta.Time
	if d := now.Sub(time.Unix(0, t)); t <= 0 || d > maxClockSkew || d < -maxClockSkew {
		t = now.UnixNano()
	}
	p.seq[i]++
	meta := protocol.FrameMeta{Seq: p.seq[i], Time: t, Width: f.Meta.Width, Height: f.Meta.Height}
	msg := nats.Msg{Subject: p.subj[i], Header: p.hdr[i].Set(meta), Data: f.Body}
	// Until the broker took a first frame, note the connection's last
	// error so that confirm can tell a refusal of this one; after that,
	// refusals come through onAsyncError and the hot path skips the lock.
	var before error
	if !p.confirmed {
		before = p.g.nc.LastError()
	}
	err := p.g.nc.PublishMsg(&msg)
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return closeWith("too_big", websocket.StatusMessageTooBig, "frame is over the broker's max payload: lower the size or quality")
	case err != nil:
		// The broker is away: drop the frame, as publishers do.
		p.log.Debug("frame not published", "err", err)
		return nil
	}
	p.g.m.pubFrames[i].Add(1)
	p.g.m.pubBytes.Add(uint64(len(f.Body)))
	p.mu.Lock()
	p.layers[i] = protocol.LayerInfo{Layer: f.Layer, Width: f.Meta.Width, Height: f.Meta.Height, FPS: p.fps}
	p.mu.Unlock()
	if !p.confirmed {
		return p.confirm(before)
	}
	return nil
}

// confirm waits for the broker to have taken the socket's first frame
// (a flush: a refusal comes back before the flush's answer) and then
// announces the publisher. A refused frame ends the socket, with the
// reason; a broker away leaves it unconfirmed until the next frame.
// before is the connection's last error before the frame went out.
func (p *pubSocket) confirm(before error) error {
	if err := p.g.nc.FlushTimeout(p.g.cfg.WriteTimeout); err != nil {
		p.log.Debug("first frame not confirmed", "err", err)
		return nil
	}
	if after := p.g.nc.LastError(); after != nil && after != before && errors.Is(after, nats.ErrPermissionViolation) {
		if s := publishRefusal(after); s == p.subj[0] || s == p.subj[1] {
			return p.refusedError()
		}
	}
	p.mu.Lock()
	p.confirmed = true
	p.mu.Unlock()
	p.g.beatPublisher(p, false)
	return nil
}

func (g *Gateway) beatPublisher(p *pubSocket, leaving bool) {
	p.mu.Lock()
	if p.closed || (leaving && !p.shown) || (!leaving && !p.confirmed) {
		p.closed = p.closed || leaving
		p.mu.Unlock()
		return
	}
	p.closed = leaving
	p.shown = true
	pr := protocol.Presence{Role: protocol.RolePublisher, Started: p.started, Leaving: leaving}
	for _, l := range p.layers {
		if l.Layer != "" {
			pr.Layers = append(pr.Layers, l)
		}
	}
	p.mu.Unlock()
	g.publishPresence(p.addr, pr)
}

// frameLimiter limits a publishing browser's layer to fps frames per
// second, with a burst of one second's worth (at least one frame).
func frameLimiter(fps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(fps), max(1, int(fps)))
}
