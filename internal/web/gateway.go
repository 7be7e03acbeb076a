// Package web is vidhub's browser side: an HTTP gateway between NATS and
// browsers, with an embedded page (plain HTML, CSS and JavaScript modules,
// no build step).
//
// The gateway never decodes a frame: JPEG and H.264 bytes pass through.
// It holds one NATS subscription per room and layer however many browsers
// watch (ended when the last one leaves), and gives each browser's
// WebSocket its own newest-frame slots and writer goroutine, so a slow or
// stalled browser drops (and counts) its own frames and never delays
// anyone else. A browser that decodes H.264 (WebCodecs) takes the H.264
// layers of publishers that send them; there a socket that falls behind
// skips to the next keyframe, which the gateway asks the publisher for.
// Browsers that publish send JPEG frames over a WebSocket; the gateway
// checks them (names, JPEG markers, size, rate) and publishes them with
// protocol v1's headers and presence.
//
// Pages: / (the live room directory), /rooms/<room> (the room),
// /rooms/<room>/publish (publish from a camera). API: /api/rooms,
// /api/rooms/<room>, /api/rooms/<room>/recording, /healthz, /metrics.
// WebSockets: /ws/view/<room> (live, or a recording replayed with
// ?from=) and
// /ws/publish/<room>/<name>, framed as WireFrame documents.
//
// With a token key (Config.Tokens) every page, API call and WebSocket
// needs a room token (package webtoken) that allows it, in ?token= or the
// TokenCookie; /healthz, /metrics and /static/ (the page's code, the same
// for everyone) stay open, but /metrics then names no room unless the
// request carries a viewing token for every room. Without a token key
// the gateway is open to everyone who reaches it, and says so in a
// warning when it starts. With Config.TLSCertFile and TLSKeyFile it
// serves HTTPS (and wss://).
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

// Defaults for Config's zero values.
const (
	DefaultListen        = ":8080"
	DefaultMaxPublishFPS = 30
	DefaultWriteTimeout  = 10 * time.Second
	// DefaultMaxSocketsPerToken bounds the sockets one room token may
	// hold open: the directory opens one per room it shows, and a
	// group's link is one token for everyone in it.
	DefaultMaxSocketsPerToken = 64
)

// headerRoom is what a published frame's NATS headers may take of the
// broker's max payload; the JPEG gets the rest.
const headerRoom = 512

// Errors of the gateway.
var (
	// ErrBadConfig is returned (wrapped) by New for a Config that cannot work.
	ErrBadConfig = errors.New("bad web gateway settings")
	// ErrListen is returned (wrapped) by Start when the address is taken
	// or invalid.
	ErrListen = errors.New("web gateway cannot listen")
	// ErrBadRequest is returned (wrapped) for a bad query parameter.
	ErrBadRequest = errors.New("bad request")
	// ErrConnClosed is what Err returns (wrapped) once the gateway's NATS
	// connection is closed for good while it serves: nats.go gives up
	// reconnecting when a broker that came back refuses this client (its
	// password or rights were changed). The gateway could only answer 503
	// from then on, so it stops; a service manager restarts it.
	ErrConnClosed = errors.New("the connection to the broker was closed")
)

//go:embed static
var staticFS embed.FS

// Config says how to run a gateway.
type Config struct {
	// Conn is the NATS connection the gateway subscribes and publishes on.
	// It stays the caller's: Close does not close it.
	Conn *nats.Conn
	// Listen is the HTTP address, HOST:PORT; empty means DefaultListen.
	// Port 0 picks a free one.
	Listen string
	// AllowedOrigins lists extra origins allowed to open WebSockets, as
	// host patterns ("example.com", "*.example.com") or with a scheme
	// ("https://example.com"). The gateway's own host is always allowed.
	AllowedOrigins []string
	// MaxPublishFPS is the most frames per second per layer a publishing
	// browser may send; 0 means DefaultMaxPublishFPS.
	MaxPublishFPS float64
	// WriteTimeout bounds one write to a browser; a browser stalled for
	// longer is disconnected. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives the gateway's log; nil discards it.
	Logger *slog.Logger
	// Tokens, when set, is the key that signs room tokens: every page,
	// API call and WebSocket then needs a token that allows it. Nil
	// leaves the gateway open to everyone who reaches it.
	Tokens *webtoken.Key
	// TLSCertFile and TLSKeyFile, when set, are the PEM certificate
	// (chain) and key the gateway serves HTTPS with.
	TLSCertFile, TLSKeyFile string
	// AllowedHosts, when set, are the only Host headers the gateway
	// answers ("hub.example.com", or with a port); others get 421. It
	// keeps a page of another site whose name was made to resolve to the
	// gateway (DNS rebinding) from reaching it. /healthz answers any host.
	AllowedHosts []string
	// MaxSocketsPerToken bounds the WebSockets one room token may hold
	// open at once; more get 429. 0 means DefaultMaxSocketsPerToken, a
	// negative value no bound. Sockets of an open gateway are not counted.
	MaxSocketsPerToken int
}

// Gateway serves the browser side of vidhub.
type Gateway struct {
	cfg     Config
	nc      *nats.Conn
	log     *slog.Logger
	m       *metrics
	dir     *directory
	hub     *hub
	keys    *keyAsker
	handler http.Handler

	tls *tls.Config // nil: plain HTTP

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc

	mu       sync.Mutex
	started  bool
	closing  bool
	viewers  map[*viewer]struct{}
	pubs     map[protocol.Address]*pubSocket // this gateway's claim on each name it publishes under
	ended    map[protocol.Address][]endedPub // this gateway's recently ended publishing sockets
	perToken map[string]int                  // open sockets per room token
	presence *nats.Subscription
	prevErrs nats.ErrHandler // the connection's error handler before Start
	srv      *http.Server
	ln       net.Listener

	wg        sync.WaitGroup // sockets, the server and the loop
	closeOnce sync.Once

	done    chan struct{} // closed when the gateway cannot serve anymore
	doneErr error         // why, set before done is closed

	// self is the participant name the gateway announces, as a viewer,
	// in every room it shows to browsers that announce nothing
	// themselves (directory thumbnails, a publishing browser's view of
	// its room): a publisher that encodes only watched layers must see
	// that someone watches. shown is what the last beat announced, per
	// room; the loop owns it (Close, once the loop has ended).
	self       string
	since      time.Time // when New made the gateway
	shown      map[string][]protocol.Layer
	showsMoved chan struct{} // an unannounced socket came or changed layers

	// heard is every participant heard in presence lately, whoever sent
	// it: what decides whether a name is free to publish under.
	heard *heardNames
}

// New checks cfg and builds a gateway; Start makes it serve.
func New(cfg Config) (*Gateway, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrBadConfig)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxPublishFPS == 0 {
		cfg.MaxPublishFPS = DefaultMaxPublishFPS
	}
	if !(cfg.MaxPublishFPS > 0 && cfg.MaxPublishFPS <= 240) {
		return nil, fmt.Errorf("%w: max publish fps %g is outside 1 to 240", ErrBadConfig, cfg.MaxPublishFPS)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxSocketsPerToken == 0 {
		cfg.MaxSocketsPerToken = DefaultMaxSocketsPerToken
	}
	for _, h := range cfg.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "*/ ") {
			return nil, fmt.Errorf("%w: allowed host %q: name a host (hub.example.com) or a host and port (hub.example.com:8443), no patterns", ErrBadConfig, h)
		}
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "" || o == "*" {
			return nil, fmt.Errorf("%w: origin pattern %q would let any site open sockets; name the sites", ErrBadConfig, o)
		}
	}
	var tlsCfg *tls.Config
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, fmt.Errorf("%w: HTTPS needs both a certificate and its key (--https-cert and --https-key)", ErrBadConfig)
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			// A file that cannot be used, not settings that cannot work.
			return nil, fmt.Errorf("loading the HTTPS certificate %s: %w", cfg.TLSCertFile, err)
		}
		tlsCfg = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			// WebSockets upgrade over HTTP/1.1.
			NextProtos: []string{"http/1.1"},
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "web")
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg: cfg, nc: cfg.Conn, log: log, m: newMetrics(), dir: newDirectory(cfg.Conn, log),
		tls: tlsCfg, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		self: protocol.RandomName("gateway"), since: time.Now(), shown: map[string][]protocol.Layer{}, showsMoved: make(chan struct{}, 1),
		viewers: map[*viewer]struct{}{}, pubs: map[protocol.Address]*pubSocket{},
		ended: map[protocol.Address][]endedPub{}, perToken: map[string]int{},
		heard: newHeardNames(),
	}
	g.hub = newHub(cfg.Conn, log, g.m, g.self)
	g.keys = newKeyAsker(cfg.Conn, g.m)
	g.handler = g.routes()
	return g, nil
}

// Handler is the gateway's HTTP handler. Start serves it; it is exported
// to mount the gateway in another server (Start must still run, for
// presence).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Start listens on cfg.Listen, follows presence and serves in the
// background until Close.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started || g.closing {
		return fmt.Errorf("%w: Start called twice or after Close", ErrBadConfig)
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%w on %s: %w; stop what uses it or pick another --listen", ErrListen, g.cfg.Listen, err)
	}
	if g.tls != nil {
		ln = tls.NewListener(ln, g.tls)
	}
	sub, err := g.nc.Subscribe(protocol.AllPresence, func(m *nats.Msg) {
		g.heard.onPresence(m)
		g.dir.onPresence(m)
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("web gateway: following presence: %w", err)
	}
	_ = sub.SetPendingLimits(4096, 16<<20)
	g.presence, g.ln, g.started = sub, ln, true
	// The broker tells a refused publish only asynchronously: watch for
	// it, to close the publishing socket it belongs to at once.
	g.prevErrs = g.nc.ErrorHandler()
	g.nc.SetErrorHandler(g.onAsyncError)
	g.srv = &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	g.wg.Go(func() {
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("http server stopped", "err", err)
		}
	})
	g.wg.Go(g.loop)
	g.log.Info("web gateway listening", "addr", ln.Addr().String(), "https", g.tls != nil)
	if g.cfg.Tokens == nil {
		g.log.Warn("web gateway is OPEN: anyone who reaches it may watch and publish in every room; " +
			"start it with --token-key-file to require room tokens (vidhub token)")
	} else {
		g.log.Info("room tokens required on every page, API call and WebSocket (open: /healthz, /static/, and /metrics without room names)")
	}
	if g.tls == nil && g.cfg.Tokens != nil {
		g.log.Warn("room tokens travel over plain HTTP: serve HTTPS (--https-cert, --https-key) or put a TLS proxy in front")
	}
	return nil
}

// Run starts the gateway and serves until ctx is done or the gateway
// cannot serve anymore (see Done), then closes it. It returns Err.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(); err != nil {
		return err
	}
	defer g.Close()
	select {
	case <-ctx.Done():
		return nil
	case <-g.done:
		return g.Err()
	}
}

// Done is closed when the gateway can no longer serve: its NATS
// connection was closed for good (Err says why). The gateway keeps
// answering, with /healthz at 503, until Close; a program should close
// it and exit non-zero, so that its service manager restarts it.
func (g *Gateway) Done() <-chan struct{} { return g.done }

// Err is nil while the gateway can serve, and wraps ErrConnClosed once
// Done is closed.
func (g *Gateway) Err() error {
	select {
	case <-g.done:
		return g.doneErr
	default:
		return nil
	}
}

// checkConn ends the gateway (Done) when its connection is closed for
// good. Called by the loop only.
func (g *Gateway) checkConn() {
	if !g.nc.IsClosed() || g.Err() != nil {
		return
	}
	g.doneErr = fmt.Errorf("%w (last error: %v); check that the broker still admits the gateway's user (--user and --password, --nkey or --creds), then start the gateway again",
		ErrConnClosed, g.nc.LastError())
	g.log.Error("the broker closed the connection for good: the gateway cannot serve", "err", g.nc.LastError())
	close(g.done)
}

// Addr is the address the gateway listens on, nil before Start.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// URL is the gateway's base URL as a browser on this machine reaches it.
func (g *Gateway) URL() string {
	addr, ok := g.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	scheme := "http://"
	if g.tls != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// Close stops serving: sockets are closed with "going away" (browsers
// reconnect by themselves), publishing browsers beat a leaving presence,
// subscriptions end and every goroutine is joined. Safe to call twice.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closing = true
		srv := g.srv
		g.mu.Unlock()
		g.cancel()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			cancel()
		}
		g.wg.Wait()
		g.beatShown(map[string][]protocol.Layer{})
		if g.presence != nil {
			_ = g.presence.Unsubscribe()
			g.dir.close()
			g.nc.SetErrorHandler(g.prevErrs)
		}
		g.hub.close()
		g.log.Info("web gateway stopped")
	})
}

// enter counts a socket handler in, unless the gateway is closing.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *Gateway) addViewer(v *viewer) {
	g.mu.Lock()
	g.viewers[v] = struct{}{}
	g.mu.Unlock()
	if v.name == "" {
		g.showsChanged()
	}
}

func (g *Gateway) removeViewer(v *viewer) {
	g.mu.Lock()
	delete(g.viewers, v)
	g.mu.Unlock()
	if v.name == "" {
		g.showsChanged()
	}
}

// loop beats the presence of every socket, sweeps the directory and
// tells viewers who is in their room.
func (g *Gateway) loop() {
	t := time.NewTicker(protocol.Beat)
	defer t.Stop()
	reports := time.NewTicker(protocol.ReportEvery)
	defer reports.Stop()
	closed := g.nc.StatusChanged(nats.CLOSED)
	defer g.nc.RemoveStatusListener(closed)
	g.checkConn() // closed before the listener was added
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-reports.C:
			if g.nc.IsConnected() {
				g.hub.report(now)
			}
		case <-closed:
			g.checkConn()
		case <-g.dir.changed:
			g.pushStates()
			g.pushWants()
		case <-g.showsMoved:
			g.beatShown(g.shows())
			g.pushWants()
		case now := <-t.C:
			g.checkConn()
			g.dir.sweep(now)
			g.heard.prune(now)
			g.pruneEnded(now)
			g.keys.prune(now)
			g.pushStates()
			g.pushWants()
			g.mu.Lock()
			vs := make([]*viewer, 0, len(g.viewers))
			for v := range g.viewers {
				vs = append(vs, v)
			}
			ps := make([]*pubSocket, 0, len(g.pubs))
			for _, p := range g.pubs {
				ps = append(ps, p)
			}
			g.mu.Unlock()
			for _, v := range vs {
				g.beatViewer(v, false)
			}
			for _, p := range ps {
				g.beatPublisher(p, false)
			}
			g.beatShown(g.shows())
		}
	}
}

// shows returns, per room, the layers the gateway sends to browsers that
// announce no presence of their own.
func (g *Gateway) shows() map[string][]protocol.Layer {
	g.mu.Lock()
	vs := make([]*viewer, 0, len(g.viewers))
	for v := range g.viewers {
		if v.name == "" {
			vs = append(vs, v)
		}
	}
	g.mu.Unlock()
	taken := map[string]*[len(allLayers)]bool{}
	for _, v := range vs {
		t := taken[v.room]
		if t == nil {
			t = new([len(allLayers)]bool)
			taken[v.room] = t
		}
		for _, l := range v.layers() {
			t[layerIndex(l)] = true
		}
	}
	out := make(map[string][]protocol.Layer, len(taken))
	for room, t := range taken {
		ls := []protocol.Layer{}
		for i, l := range allLayers {
			if t[i] {
				ls = append(ls, l)
			}
		}
		out[room] = ls
	}
	// Where the directory awaits a publisher's first frame, ask for lo so
	// that one encoding only watched layers sends it and gets listed.
	for _, room := range g.dir.probing() {
		if _, ok := out[room]; !ok {
			out[room] = []protocol.Layer{protocol.Lo}
		}
	}
	return out
}

// beatShown announces the gateway as a viewer of the layers it shows in
// each room, and leaves the rooms it no longer shows.
func (g *Gateway) beatShown(now map[string][]protocol.Layer) {
	for room, views := range g.shown {
		if _, ok := now[room]; !ok {
			g.announceShown(room, views, true)
		}
	}
	for room, views := range now {
		g.announceShown(room, views, false)
	}
	g.shown = now
}

// announceShown beats the gateway's presence in room: the JPEG layers it
// shows in views, the H.264 ones in watches.
func (g *Gateway) announceShown(room string, layers []protocol.Layer, leaving bool) {
	a, err := protocol.NewAddress(room, g.self)
	if err != nil {
		return
	}
	g.publishPresence(a, protocol.ViewerPresence(g.since, layers, leaving))
}

// showsChanged asks the loop to announce what the gateway shows now,
// without waiting for the next beat.
func (g *Gateway) showsChanged() {
	select {
	case g.showsMoved <- struct{}{}:
	default:
	}
}

// pushStates sends each watched room's state to its viewers.
func (g *Gateway) pushStates() {
	g.mu.Lock()
	byRoom := map[string][]*viewer{}
	for v := range g.viewers {
		byRoom[v.room] = append(byRoom[v.room], v)
	}
	g.mu.Unlock()
	now := time.Now()
	for room, vs := range byRoom {
		b := encodeRoomState(g.dir.room(room), now)
		for _, v := range vs {
			v.setState(b)
		}
	}
}

func (g *Gateway) beatViewer(v *viewer, leaving bool) {
	if a, p, ok := v.presence(leaving); ok {
		g.publishPresence(a, p)
	}
}

func (g *Gateway) publishPresence(a protocol.Address, p protocol.Presence) {
	b, err := p.Encode()
	if err != nil || !g.nc.IsConnected() {
		return
	}
	if err := g.nc.Publish(a.PresenceSubject(), b); err != nil {
		g.log.Debug("presence not sent", "participant", a.Participant(), "err", err)
	}
	if p.Leaving {
		_ = g.nc.FlushTimeout(time.Second)
	}
}

// closeError ends a socket with a WebSocket close code and a reason the
// browser sees.
type closeError struct {
	kind   string // for the refused metric
	code   websocket.StatusCode
	reason string
}

func (e closeError) Error() string { return e.reason }

func closeWith(kind string, code websocket.StatusCode, reason string) error {
	return closeError{kind, code, reason}
}

// runSocket runs one accepted socket to its end and closes it with the
// reason run gives. When the gateway closes, the socket is closed with
// "going away", which tells the page to reconnect. When the socket's
// room token expires (exp, zero for never) it is closed with a policy
// violation, which tells the page not to.
func (g *Gateway) runSocket(conn *websocket.Conn, log *slog.Logger, exp time.Time, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !exp.IsZero() {
		t := time.AfterFunc(time.Until(exp), func() {
			g.m.refuse("expired_token")
			log.Info("closing socket: its room token expired")
			_ = conn.Close(websocket.StatusPolicyViolation, "your room token expired: ask for a new link")
		})
		defer t.Stop()
	}
	done := make(chan struct{})
	stop := context.AfterFunc(g.ctx, func() {
		defer close(done)
		_ = conn.Close(websocket.StatusGoingAway, "gateway shutting down")
	})
	err := run(ctx)
	var ce closeError
	switch {
	case errors.As(err, &ce):
		g.m.refuse(ce.kind)
		log.Log(context.Background(), g.m.refuseLevel(), "closing socket", "code", ce.code, "reason", ce.reason)
		_ = conn.Close(ce.code, clip(ce.reason, 123))
	case err == nil:
		_ = conn.Close(websocket.StatusNormalClosure, "")
	default:
		log.Debug("socket ended", "err", err)
		_ = conn.CloseNow()
	}
	if !stop() {
		<-done
	}
}

// clip shortens s to at most n bytes (a close reason's limit).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func (g *Gateway) acceptOptions() *websocket.AcceptOptions {
	return &websocket.AcceptOptions{
		OriginPatterns:  g.cfg.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled, // JPEG does not compress
	}
}

// refuse counts and logs a refused request.
func (g *Gateway) refuse(kind, msg string, args ...any) {
	g.m.refuse(kind)
	g.log.Log(context.Background(), g.m.refuseLevel(), msg, args...)
}

// badRequest answers 400 with the error, which states the rule.
func (g *Gateway) badRequest(w http.ResponseWriter, err error) {
	g.m.refuse("bad_request")
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// routes is the gateway's URL space.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	page := func(name string, check func(r *http.Request, c webtoken.Claims) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if room := r.PathValue("room"); r.Pattern != "GET /{$}" {
				if err := protocol.ValidRoom(room); err != nil {
					g.badRequest(w, err)
					return
				}
			}
			gr, ok := g.allow(w, r, r.PathValue("room"), func(c webtoken.Claims) error { return check(r, c) })
			if !ok || g.keepToken(w, r, gr.c) || g.noAutostart(w, r) {
				return
			}
			b, err := fs.ReadFile(static, name)
			if err != nil {
				http.Error(w, "page missing from the build", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(b)
		}
	}
	mux.Handle("GET /{$}", page("index.html", func(*http.Request, webtoken.Claims) error { return nil }))
	mux.Handle("GET /rooms/{room}", page("room.html", func(r *http.Request, c webtoken.Claims) error {
		return c.CanView(r.PathValue("room"))
	}))
	mux.Handle("GET /rooms/{room}/publish", page("publish.html", func(r *http.Request, c webtoken.Claims) error {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = c.Name
		}
		return c.CanPublish(r.PathValue("room"), name)
	}))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /api/rooms", g.serveRooms)
	mux.HandleFunc("GET /api/rooms/{room}", g.serveRoom)
	mux.HandleFunc("GET /api/rooms/{room}/recording", g.serveRecording)
	mux.HandleFunc("GET /healthz", g.serveHealth)
	mux.HandleFunc("GET /metrics", g.serveMetrics)
	mux.HandleFunc("GET /ws/view/{room}", g.serveView)
	mux.HandleFunc("GET /ws/publish/{room}/{name}", g.servePublish)
	return g.checkHost(securityHeaders(mux))
}

// noAutostart sends a navigation from another site that asks a page to
// start publishing by itself (autostart=1) to the same page without it:
// the visitor starts the camera, not a link. It returns false when there
// was nothing to do.
func (g *Gateway) noAutostart(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("autostart") || !crossSite(r) {
		return false
	}
	q.Del("autostart")
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return true
}

// securityHeaders keeps the page to its own origin.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// serveRooms lists every room the token may view and who is in it, as
// "vidhub rooms --json".
func (g *Gateway) serveRooms(w http.ResponseWriter, r *http.Request) {
	if _, ok := g.allow(w, r, "", nil); !ok {
		return
	}
	cs := g.grants(r)
	rooms := g.dir.list()
	shown := rooms[:0]
	for _, ri := range rooms {
		for _, c := range cs {
			if c.CanView(ri.Room) == nil {
				shown = append(shown, ri)
				break
			}
		}
	}
	writeJSON(w, shown)
}

// serveRoom describes one room; an empty one has no participants.
func (g *Gateway) serveRoom(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if err := protocol.ValidRoom(room); err != nil {
		g.badRequest(w, err)
		return
	}
	if _, ok := g.allow(w, r, room, func(c webtoken.Claims) error { return c.CanView(room) }); !ok {
		return
	}
	writeJSON(w, g.dir.room(room))
}

// serveHealth is 200 while the broker is connected, 503 otherwise.
func (g *Gateway) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !g.nc.IsConnected() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "broker %s\n", g.nc.Status())
		return
	}
	fmt.Fprintln(w, "ok")
}
