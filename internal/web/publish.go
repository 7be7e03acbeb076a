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

	mu     sync.Mutex
	layers [2]protocol.LayerInfo // zero until a frame of the layer came
	closed bool
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
	claims, ok := g.allow(w, r, func(c webtoken.Claims) error { return c.CanPublish(addr.Room(), addr.Participant()) })
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
	if g.nameTaken(addr) {
		g.m.refuse("name_taken")
		http.Error(w, fmt.Sprintf("%s is already publishing in room %s; pick another name", addr.Participant(), addr.Room()), http.StatusConflict)
		return
	}
	if !g.enter() {
		http.Error(w, "the gateway is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer g.wg.Done()
	conn, err := websocket.Accept(w, r, g.acceptOptions())
	if err != nil {
		g.refuse("upgrade", "refused a publishing socket", "room", addr.Room(), "name", addr.Participant(), "err", err)
		return
	}
	limit := int(maxPayload) - headerRoom
	conn.SetReadLimit(int64(limit + MaxWireHeader))
	p := &pubSocket{
		g: g, conn: conn, addr: addr, fps: fps, started: time.Now(), limit: limit,
		log: g.log.With("socket", "publish", "room", addr.Room(), "name", addr.Participant(), "remote", r.RemoteAddr),
	}
	for i, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
		p.hdr[i] = protocol.NewFrameHeader()
		p.subj[i] = addr.FrameSubject(l)
		p.pace[i] = frameLimiter(g.cfg.MaxPublishFPS)
	}
	g.m.socketsNow[1].Add(1)
	defer g.m.socketsNow[1].Add(-1)
	g.runSocket(conn, p.log, g.expiry(claims), func(ctx context.Context) error { return g.runPublisher(ctx, p) })
}

// nameTaken reports whether someone publishes as a: a socket of this
// gateway, or anyone the directory knows. A directory entry that is the
// echo of one of this gateway's own ended sockets (its leaving beat not
// back from the broker yet) does not count.
func (g *Gateway) nameTaken(a protocol.Address) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := range g.pubs {
		if p.addr == a {
			return true
		}
	}
	started, ok := g.dir.publisherStarted(a.Room(), a.Participant())
	if !ok {
		return false
	}
	ended, mine := g.ended[a]
	return !mine || !ended.Equal(started)
}

// pruneEnded forgets ended sockets whose presence is long gone.
func (g *Gateway) pruneEnded(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for a := range g.ended {
		if g.endedAt[a].Before(now.Add(-2 * time.Duration(protocol.MissedBeats) * protocol.Beat)) {
			delete(g.ended, a)
			delete(g.endedAt, a)
		}
	}
}

func (g *Gateway) runPublisher(ctx context.Context, p *pubSocket) error {
	g.mu.Lock()
	g.pubs[p] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pubs, p)
		g.ended[p.addr], g.endedAt[p.addr] = p.started, time.Now()
		g.mu.Unlock()
	}()
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
	g.beatPublisher(p, false)
	defer g.beatPublisher(p, true)
	p.log.Info("browser publishing", "fps", p.fps)
	err = p.read(ctx)
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
		if f.Participant != "" && f.Participant != p.addr.Participant() {
			return closeWith("bad_frame", websocket.StatusPolicyViolation,
				fmt.Sprintf("frame names %q but this socket publishes as %q", f.Participant, p.addr.Participant()))
		}
		if len(f.JPEG) > p.limit {
			return closeWith("too_big", websocket.StatusMessageTooBig,
				fmt.Sprintf("frame of %d bytes is over the limit of %d: lower the size or quality", len(f.JPEG), p.limit))
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
	msg := nats.Msg{Subject: p.subj[i], Header: p.hdr[i].Set(meta), Data: f.JPEG}
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
	p.g.m.pubBytes.Add(uint64(len(f.JPEG)))
	p.mu.Lock()
	p.layers[i] = protocol.LayerInfo{Layer: f.Layer, Width: f.Meta.Width, Height: f.Meta.Height, FPS: p.fps}
	p.mu.Unlock()
	return nil
}

func (g *Gateway) beatPublisher(p *pubSocket, leaving bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = leaving
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
