package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
	limit   int // largest frame body

	// By layer, in allLayers' order; the read loop owns these.
	hdr  [len(allLayers)]*protocol.FrameHeader
	subj [len(allLayers)]string
	seq  [len(allLayers)]uint64
	pace [len(allLayers)]*rate.Limiter // frames per second
	// chain follows each H.264 layer's reference chain, in the browser's
	// own numbering (which may be absent): a delta goes out only when
	// everything since a keyframe did.
	chain    [len(allLayers)]protocol.Chain
	controls *rate.Limiter // text messages

	mu sync.Mutex
	// confirmed: a frame went through the broker (published and
	// flushed, with no permission violation): only then does the socket
	// announce a publisher. The read loop sets it.
	confirmed bool
	layers    [len(allLayers)]protocol.LayerInfo // zero until a frame of the layer went out
	declared  [len(allLayers)]protocol.LayerInfo // what the page's last "layers" message said
	closed    bool
	shown     bool                    // a publisher beat went out
	stop      context.CancelCauseFunc // ends the socket with a cause (a refusal)
	// The writer's work: keyframe requests to pass on (by layer; keyAt
	// is when the last went out), and the JPEG layers the room views
	// (want, and whether the page has been told).
	keyWant [len(allLayers)]bool
	keyAt   [len(allLayers)]time.Time
	want    []protocol.Layer
	wantNew bool
	wake    chan struct{}
}

// endedPub is one of this gateway's ended publishing sockets under a
// name: its beats may still echo, and must not keep the name taken.
type endedPub struct {
	started, at time.Time
}

// publishHello is the first message on a publishing socket: the limits
// the browser must keep, and the codecs the gateway takes.
type publishHello struct {
	Type     string   `json:"type"` // "hello"
	Room     string   `json:"room"`
	Name     string   `json:"name"`
	MaxFPS   float64  `json:"maxFps"`   // per layer
	MaxBytes int      `json:"maxBytes"` // per frame body
	Now      int64    `json:"now"`      // gateway clock, Unix milliseconds
	Version  int      `json:"version"`
	Codecs   []string `json:"codecs"` // "jpeg", "h264"
}

// Limits on a publishing browser's text messages.
const (
	// maxPublishControl bounds one text message.
	maxPublishControl = 4096
	// publishControlRate and publishControlBurst bound how often they
	// come: a page declares its layers when it starts and when the
	// camera's size changes.
	publishControlRate  = 2
	publishControlBurst = 10
	// maxDeclaredBitrate bounds the bitrate a page may declare.
	maxDeclaredBitrate = 100_000_000
)

// publishControl is a text message from a publishing browser. The one
// type is "layers": every layer the page sends, with its size, and for
// H.264 its codec string and bitrate. It replaces the last one.
type publishControl struct {
	Type   string               `json:"type"`
	Layers []protocol.LayerInfo `json:"layers"`
}

// publishKey asks the page for a keyframe of an H.264 layer; publishWant
// tells it which JPEG layers the room views (the others it need not
// encode while it sends H.264).
type publishKey struct {
	Type  string         `json:"type"` // "key"
	Layer protocol.Layer `json:"layer"`
}

type publishWant struct {
	Type string           `json:"type"` // "want"
	JPEG []protocol.Layer `json:"jpeg"`
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
		controls: rate.NewLimiter(publishControlRate, publishControlBurst), wake: make(chan struct{}, 1),
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
	for i, l := range allLayers {
		p.hdr[i] = protocol.NewCodecHeader(l.Codec())
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
		// A refused receiver report or keyframe request is no refusal
		// of a browser's frames.
		if s, perr := protocol.ParseSubject(publishRefusal(err)); perr == nil && !s.Report && !s.Key {
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
		Codecs: []string{string(protocol.CodecJPEG), string(protocol.CodecH264)},
	})
	wctx, cancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
	err := p.conn.Write(wctx, websocket.MessageText, hello)
	cancel()
	if err != nil {
		return err
	}
	// Keyframe requests for the browser's H.264 layers come on its key
	// subject; the writer passes them on.
	keys, err := g.nc.Subscribe(p.addr.KeySubject(), p.onKeyRequest)
	if err != nil {
		return fmt.Errorf("subscribing to keyframe requests for %s: %w", p.addr.Participant(), err)
	}
	defer func() { _ = keys.Unsubscribe() }()
	p.setWant(g.jpegViewed(p.addr))
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { p.write(ctx) })
	defer stop(nil) // ends the writer, before wg.Wait
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
	p.log.Info("browser stopped publishing", "hi", p.seq[0], "lo", p.seq[1], "h264", p.seq[2], "h264lo", p.seq[3])
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
			if err := p.control(b); err != nil {
				return err
			}
			continue
		}
		f, err := ParseWire(b)
		if err != nil {
			return closeWith("bad_frame", websocket.StatusPolicyViolation, err.Error())
		}
		if f.Participant != "" && f.Participant != p.addr.Participant() {
			return closeWith("bad_frame", websocket.StatusPolicyViolation,
				fmt.Sprintf("frame names %q but this socket publishes as %q", f.Participant, p.addr.Participant()))
		}
		if len(f.Body) > p.limit {
			return closeWith("too_big", websocket.StatusMessageTooBig,
				fmt.Sprintf("frame of %d bytes is over the limit of %d: lower the size, quality or bitrate", len(f.Body), p.limit))
		}
		i := layerIndex(f.Layer)
		if f.Layer.Codec() == protocol.CodecH264 {
			if err := p.checkH264(i, f); err != nil {
				return err
			}
		}
		now := time.Now()
		if !p.pace[i].AllowN(now, 1) {
			return closeWith("over_rate", websocket.StatusPolicyViolation,
				fmt.Sprintf("over rate: at most %g frames per second per layer", p.g.cfg.MaxPublishFPS))
		}
		if f.Layer.Codec() == protocol.CodecH264 && !p.decodable(i, f) {
			continue
		}
		if err := p.publish(i, f, now); err != nil {
			return err
		}
	}
}

// checkH264 checks an H.264 frame against the page's declaration of its
// layer: declared, of the declared size, and for a keyframe an SPS of the
// declared profile. (ParseWire checked the access unit itself.)
func (p *pubSocket) checkH264(i int, f WireFrame) error {
	p.mu.Lock()
	d := p.declared[i]
	p.mu.Unlock()
	if d.Layer == "" {
		return closeWith("bad_frame", websocket.StatusPolicyViolation,
			fmt.Sprintf(`an H.264 frame on layer %s, which the page has not declared: send {"type":"layers"} with its codec string first (see docs/browser.md)`, f.Layer))
	}
	if f.Meta.Width != d.Width || f.Meta.Height != d.Height {
		return closeWith("bad_frame", websocket.StatusPolicyViolation,
			fmt.Sprintf("an H.264 frame of %s on layer %s, declared %s: declare the new size first",
				protocol.FormatSize(f.Meta.Width, f.Meta.Height), f.Layer, protocol.FormatSize(d.Width, d.Height)))
	}
	if f.Meta.Key {
		c, err := protocol.H264CodecString(f.Body)
		if err != nil {
			return closeWith("bad_frame", websocket.StatusPolicyViolation, err.Error())
		}
		// The profile must be the declared one; the constraint flags and
		// the level an encoder writes may differ from what it was asked
		// for (OpenH264 writes its own level), and decoders take either.
		if !strings.EqualFold(c[:7], d.Codec[:7]) {
			return closeWith("bad_frame", websocket.StatusPolicyViolation,
				fmt.Sprintf("the keyframe's SPS is of profile %s (%s), the declared codec %s is not: declare the codec the encoder uses", c[5:7], c, d.Codec))
		}
	}
	return nil
}

// decodable reports whether the H.264 frame f on layer i continues the
// layer's chain: a keyframe always does, a delta only when the frame
// before it went out and the browser's numbering (when it numbers) has
// no gap. A frame that does not is dropped, and the page asked for a
// keyframe: nothing a viewer cannot decode reaches the broker.
func (p *pubSocket) decodable(i int, f WireFrame) bool {
	if pass, _ := p.chain[i].Offer(f.Layer, f.Meta); pass {
		return true
	}
	p.g.m.pubWaited.Add(1)
	p.askKey(i)
	return false
}

// control takes a text message: the page's declaration of its layers.
func (p *pubSocket) control(b []byte) error {
	notControl := closeWith("bad_control", websocket.StatusUnsupportedData,
		`a publishing socket takes binary frames and {"type":"layers",...} text messages (see docs/browser.md)`)
	if len(b) > maxPublishControl {
		return closeWith("bad_control", websocket.StatusMessageTooBig, fmt.Sprintf("a text message over %d bytes", maxPublishControl))
	}
	if !p.controls.Allow() {
		return closeWith("over_rate", websocket.StatusPolicyViolation,
			fmt.Sprintf("over rate: at most %d text messages per second", publishControlRate))
	}
	var m publishControl
	if err := json.Unmarshal(b, &m); err != nil || m.Type != "layers" {
		return notControl
	}
	declared, err := checkDeclared(m.Layers)
	if err != nil {
		return closeWith("bad_control", websocket.StatusPolicyViolation, err.Error())
	}
	p.mu.Lock()
	for i, d := range declared {
		if d != p.declared[i] {
			// A new size or codec starts a new chain.
			p.chain[i].Break()
			p.layers[i] = protocol.LayerInfo{}
		}
	}
	p.declared = declared
	p.mu.Unlock()
	return nil
}

// avcCodec matches the codec strings a page may declare for H.264:
// avc1 and the profile, constraint flags and level in hex.
var avcCodec = regexp.MustCompile(`^avc1\.[0-9A-Fa-f]{6}$`)

// checkDeclared checks a page's declaration of its layers and returns
// it by layer.
func checkDeclared(ls []protocol.LayerInfo) ([len(allLayers)]protocol.LayerInfo, error) {
	var out [len(allLayers)]protocol.LayerInfo
	if len(ls) > len(allLayers) {
		return out, fmt.Errorf("%w: %d layers declared, at most %d (hi, lo, h264, h264lo)", ErrBadMessage, len(ls), len(allLayers))
	}
	for _, l := range ls {
		if _, err := protocol.ParseLayer(string(l.Layer)); err != nil {
			return out, fmt.Errorf("%w: %w", ErrBadMessage, err)
		}
		i := layerIndex(l.Layer)
		if out[i].Layer != "" {
			return out, fmt.Errorf("%w: layer %s declared twice", ErrBadMessage, l.Layer)
		}
		if l.Width < 1 || l.Height < 1 || l.Width > protocol.MaxDimension || l.Height > protocol.MaxDimension {
			return out, fmt.Errorf("%w: layer %s declared %dx%d: each side must be 1 to %d", ErrBadMessage, l.Layer, l.Width, l.Height, protocol.MaxDimension)
		}
		if l.Bitrate < 0 || l.Bitrate > maxDeclaredBitrate {
			return out, fmt.Errorf("%w: layer %s declared %d bit/s: use 0 to %d", ErrBadMessage, l.Layer, l.Bitrate, maxDeclaredBitrate)
		}
		switch l.Layer.Codec() {
		case protocol.CodecH264:
			if !avcCodec.MatchString(l.Codec) {
				return out, fmt.Errorf("%w: layer %s declared codec %q: use an H.264 codec string, avc1 and six hex digits (e.g. avc1.42E01F)",
					ErrBadMessage, l.Layer, clip(l.Codec, 32))
			}
		default:
			if l.Codec != "" || l.Bitrate != 0 {
				return out, fmt.Errorf("%w: JPEG layer %s declared a codec string or a bitrate: leave them out", ErrBadMessage, l.Layer)
			}
		}
		out[i] = protocol.LayerInfo{Layer: l.Layer, Width: l.Width, Height: l.Height, Codec: l.Codec, Bitrate: l.Bitrate}
	}
	return out, nil
}

// publish sends one checked frame with the protocol's headers.
func (p *pubSocket) publish(i int, f WireFrame, now time.Time) error {
	t := f.Meta.Time
	if d := now.Sub(time.Unix(0, t)); t <= 0 || d > maxClockSkew || d < -maxClockSkew {
		t = now.UnixNano()
	}
	p.seq[i]++
	meta := protocol.FrameMeta{Seq: p.seq[i], Time: t, Width: f.Meta.Width, Height: f.Meta.Height, Key: f.Meta.Key}
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
		return closeWith("too_big", websocket.StatusMessageTooBig, "frame is over the broker's max payload: lower the size, quality or bitrate")
	case err != nil:
		// The broker is away: drop the frame, as publishers do. Its
		// number stays used, so viewers count it lost, and an H.264
		// layer starts again at a keyframe.
		p.log.Debug("frame not published", "err", err)
		if f.Layer.Codec() == protocol.CodecH264 {
			p.chain[i].Break()
			p.askKey(i)
		}
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
		if slices.Contains(p.subj[:], publishRefusal(after)) {
			return p.refusedError()
		}
	}
	p.mu.Lock()
	p.confirmed = true
	p.mu.Unlock()
	p.g.beatPublisher(p, false)
	return nil
}

// onKeyRequest is the NATS callback on the browser's key subject: the
// body names the layer. Requests for a layer the page has not declared
// are ignored.
func (p *pubSocket) onKeyRequest(m *nats.Msg) {
	l, err := protocol.ParseLayer(string(m.Data))
	if err != nil || l.Codec() != protocol.CodecH264 {
		return
	}
	p.askKey(layerIndex(l))
}

// askKey has the writer ask the page for a keyframe of layer i (an
// H.264 layer it declared), at most once per keyAskEvery.
func (p *pubSocket) askKey(i int) {
	p.mu.Lock()
	ok := p.declared[i].Layer != ""
	p.keyWant[i] = p.keyWant[i] || ok
	p.mu.Unlock()
	if ok {
		p.poke()
	}
}

// setWant tells the page (through the writer) which JPEG layers the
// room views, when that changed.
func (p *pubSocket) setWant(ls []protocol.Layer) {
	p.mu.Lock()
	changed := p.want == nil || !slices.Equal(p.want, ls)
	if changed {
		p.want, p.wantNew = ls, true
	}
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

func (p *pubSocket) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// write sends the page its keyframe requests and the JPEG layers the
// room views, until ctx ends. A keyframe request for a layer waits until
// keyAskEvery has passed since the last one for it.
func (p *pubSocket) write(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
		now := time.Now()
		var msgs [][]byte
		next := time.Duration(0)
		p.mu.Lock()
		if p.wantNew {
			b, _ := json.Marshal(publishWant{Type: "want", JPEG: p.want})
			msgs = append(msgs, b)
			p.wantNew = false
		}
		for i, l := range allLayers {
			if !p.keyWant[i] {
				continue
			}
			if wait := keyAskEvery - now.Sub(p.keyAt[i]); wait > 0 {
				if next == 0 || wait < next {
					next = wait
				}
				continue
			}
			b, _ := json.Marshal(publishKey{Type: "key", Layer: l})
			msgs = append(msgs, b)
			p.keyWant[i], p.keyAt[i] = false, now
		}
		p.mu.Unlock()
		for _, b := range msgs {
			// Not ctx: a write cut short by the reader's end would close
			// the connection before the close frame with its reason.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.g.cfg.WriteTimeout)
			err := p.conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				p.log.Debug("control message not sent", "err", err)
				return
			}
		}
		if next > 0 {
			timer.Reset(next)
		}
	}
}

// jpegViewed lists the JPEG layers anyone in a's room but a itself
// views: the layers a browser that sends H.264 encodes in JPEG too (as a
// publisher's default --encode auto does). Everyone's presence says what
// they view, but for this gateway's own, which announces what its
// sockets without presence take as a whole: those sockets count one by
// one here, so that the publishing page's own view of its room (which
// takes JPEG lo while the room looks empty) makes it encode nothing.
func (g *Gateway) jpegViewed(a protocol.Address) []protocol.Layer {
	var hi, lo bool
	note := func(ls []protocol.Layer) {
		hi = hi || slices.Contains(ls, protocol.Hi)
		lo = lo || slices.Contains(ls, protocol.Lo)
	}
	for _, m := range g.dir.room(a.Room()).Members {
		if m.Name != a.Participant() && m.Name != g.self {
			note(m.Views)
		}
	}
	g.mu.Lock()
	var vs []*viewer
	for v := range g.viewers {
		if v.name == "" && v.room == a.Room() && v.self != a.Participant() {
			vs = append(vs, v)
		}
	}
	g.mu.Unlock()
	for _, v := range vs {
		note(v.layers())
	}
	out := []protocol.Layer{}
	if hi {
		out = append(out, protocol.Hi)
	}
	if lo {
		out = append(out, protocol.Lo)
	}
	return out
}

// pushWants tells every publishing browser the JPEG layers its room
// views now.
func (g *Gateway) pushWants() {
	g.mu.Lock()
	ps := make([]*pubSocket, 0, len(g.pubs))
	for _, p := range g.pubs {
		ps = append(ps, p)
	}
	g.mu.Unlock()
	for _, p := range ps {
		p.setWant(g.jpegViewed(p.addr))
	}
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
	var ls []protocol.LayerInfo
	for i, l := range p.layers {
		d := p.declared[i]
		switch {
		case allLayers[i].Codec() == protocol.CodecH264:
			// An H.264 layer is announced once its first keyframe
			// went out, with the declared codec string.
			if l.Layer != "" && d.Layer != "" {
				ls = append(ls, protocol.LayerInfo{Layer: l.Layer, Width: l.Width, Height: l.Height, FPS: p.fps, Codec: d.Codec, Bitrate: d.Bitrate})
			}
		case l.Layer != "":
			ls = append(ls, l)
		case d.Layer != "":
			// A declared JPEG layer is announced before its frames: a
			// page that sends H.264 encodes JPEG only while someone
			// views it, and no one views what is not announced.
			ls = append(ls, protocol.LayerInfo{Layer: d.Layer, Width: d.Width, Height: d.Height, FPS: p.fps})
		}
	}
	pr.SetLayers(ls)
	p.mu.Unlock()
	g.publishPresence(p.addr, pr)
}

// frameLimiter limits a publishing browser's layer to fps frames per
// second, with a burst of one second's worth (at least one frame).
func frameLimiter(fps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(fps), max(1, int(fps)))
}
