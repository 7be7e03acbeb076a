// Package broker runs vidhub's embedded NATS server.
//
// A Broker is a real nats-server started in-process from a Config: it
// listens for clients on TCP like a stock server, optionally serves NATS
// monitoring over HTTP, and can hand out in-process connections that skip
// the network. It never calls os.Exit and never installs signal handlers:
// failures to start come back as errors, and the owner stops it with Close.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/access"
)

// DefaultMaxPayload is the largest message the broker accepts unless told
// otherwise: room for 4K JPEG frames. NATS's own default is 1 MB.
const DefaultMaxPayload = 8 << 20

// DefaultListen is where the vidhub broker command listens, like nats-server.
const DefaultListen = "0.0.0.0:4222"

// ErrStart is returned (wrapped) when the broker cannot start.
var ErrStart = errors.New("broker did not start")

// ErrListen is returned (wrapped, with ErrStart) when an address the
// broker must listen on is taken or cannot be bound.
var ErrListen = errors.New("cannot listen")

// Config says how to run a broker. The zero value is a broker on a random
// loopback port with the defaults below, which is what tests want.
type Config struct {
	// Listen is the client address, HOST:PORT. A port of 0 or -1 picks a
	// free one. Empty means the config file's address, or 127.0.0.1 on a
	// random port without one.
	Listen string
	// HTTP is the monitoring address, HOST:PORT; empty turns it off unless
	// the config file turns it on.
	HTTP string
	// MaxPayload is the largest message in bytes; 0 means the config
	// file's value, or DefaultMaxPayload.
	MaxPayload int
	// ConfigFile is a stock nats-server configuration file. Fields set in
	// this Config override it.
	ConfigFile string
	// Access, if set, admits only its users, each with its rooms'
	// permissions (see package access). It replaces any authorization of
	// the config file.
	Access *access.File
	// TLSCert and TLSKey turn on TLS for clients; TLSCA is the CA bundle
	// that client certificates are checked against when TLSVerify is set.
	TLSCert, TLSKey, TLSCA string
	TLSVerify              bool
	// ReadyTimeout bounds how long Start waits for the server; 0 means 10s.
	ReadyTimeout time.Duration
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// Debug and Trace turn on the server's debug and protocol trace logs.
	Debug, Trace bool

	// ServerName names this server in monitoring and in its cluster;
	// empty means the config file's, or the server's generated ID.
	ServerName string
	// ClusterName is the NATS cluster this broker belongs to. Every member
	// must use the same name; empty means the config file's, or a name
	// the servers agree on by themselves.
	ClusterName string
	// ClusterListen is the address other cluster members connect to,
	// HOST:PORT (NATS uses 6222); a port of 0 or -1 picks a free one.
	// Empty means the config file's cluster block, or no clustering.
	ClusterListen string
	// ClusterAdvertise is the HOST:PORT other members and clients are
	// told to use for this one, when it differs from ClusterListen (NAT,
	// containers). Empty lets the server work it out.
	ClusterAdvertise string
	// StoreDir turns on JetStream, with file storage in this directory:
	// recordings (package record) live there and outlast a restart on the
	// same directory. Empty means the config file's jetstream block, or
	// no JetStream.
	StoreDir string
	// Routes are the cluster members to connect to, as URLs such as
	// nats://nats-2:6222. Listing this broker's own address is fine: the
	// server skips it, so every member can get the same list. Routes
	// need a cluster listen address. Empty means the config file's.
	Routes []string

	// LeafListen is where this broker accepts leaf nodes (edge brokers
	// that link to it as their hub), HOST:PORT (NATS uses 7422); a port
	// of 0 or -1 picks a free one (see LeafURL). Leaf connections
	// authenticate like clients: with Access, as one of its users, whose
	// rights then bound what crosses the link. Empty means the config
	// file's leafnodes listen address, or none.
	LeafListen string
	// Leaf makes this broker a leaf node of a hub: the hub's leaf URLs,
	// nats://HOST:PORT or tls://HOST:PORT, with user:password in the URL
	// for a password user of the hub. Several URLs are members of one hub
	// cluster; the broker keeps one link and fails over between them.
	// The broker starts and serves its own clients whether or not the hub
	// is reachable, and links in the background, retrying every
	// LeafReconnect. Only subjects someone subscribes to on the other
	// side cross the link. Empty means the config file's leafnodes
	// remotes, or none; set, it replaces them.
	Leaf []string
	// LeafCreds is a file the leaf link authenticates with: a NATS
	// credentials file (user JWT and seed) or a user NKey seed file.
	LeafCreds string
	// LeafCA is a CA bundle (PEM) trusted for the hub's certificate,
	// beside the system's roots; it turns on TLS for the link.
	LeafCA string
}

// Broker is a running embedded NATS server.
type Broker struct {
	srv        *server.Server
	log        *slog.Logger
	maxPayload int
	tls        bool
	leafURL    string
	closeOnce  sync.Once
}

// Start starts a broker and waits until it accepts connections. On error
// nothing is left running.
func Start(cfg Config) (*Broker, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "broker")

	// A port already taken would only surface as a log line from deep in
	// the server; look first so the error names the address.
	if err := checkFree("client", opts.Host, opts.Port); err != nil {
		return nil, err
	}
	if err := checkFree("monitoring", opts.HTTPHost, opts.HTTPPort); err != nil {
		return nil, err
	}
	if err := checkFree("cluster", opts.Cluster.Host, opts.Cluster.Port); err != nil {
		return nil, err
	}
	if err := checkFree("leaf node", opts.LeafNode.Host, opts.LeafNode.Port); err != nil {
		return nil, err
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	sl := &serverLogger{log: log}
	srv.SetLoggerV2(sl, cfg.Debug, cfg.Trace, false)
	go srv.Start()

	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		if msg := sl.fatal(); msg != "" {
			return nil, fmt.Errorf("%w: %s", ErrStart, msg)
		}
		return nil, fmt.Errorf("%w: not ready for connections after %v", ErrStart, timeout)
	}
	b := &Broker{srv: srv, log: log, maxPayload: int(opts.MaxPayload), tls: opts.TLSConfig != nil,
		leafURL: leafURL(srv, opts.LeafNode.TLSConfig != nil)}
	log.Info("broker ready", "url", b.ClientURL(), "max_payload", opts.MaxPayload, "monitoring", b.MonitorURL())
	if srv.JetStreamEnabled() {
		log.Info("JetStream on: rooms can be recorded", "store", srv.StoreDir())
	}
	if u := b.ClusterURL(); u != "" {
		log.Info("cluster listening", "cluster", opts.Cluster.Name, "url", u, "routes", len(opts.Routes))
	}
	if u := b.LeafURL(); u != "" {
		log.Info("accepting leaf nodes", "url", u)
	}
	for _, r := range opts.LeafNode.Remotes {
		hubs := make([]string, len(r.URLs))
		for i, u := range r.URLs {
			hubs[i] = u.Redacted()
		}
		log.Info("leaf node of a hub: linking in the background", "hub", strings.Join(hubs, ","), "reconnect", opts.LeafNode.ReconnectInterval)
	}
	return b, nil
}

func (cfg Config) options() (*server.Options, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("%w: config file %s: %w", ErrStart, cfg.ConfigFile, err)
		}
	} else {
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address: %w", ErrStart, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.HTTP != "" {
		host, port, err := splitHostPort(cfg.HTTP)
		if err != nil {
			return nil, fmt.Errorf("%w: monitoring address: %w", ErrStart, err)
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if err := cfg.clusterOptions(opts); err != nil {
		return nil, err
	}
	if err := cfg.leafOptions(opts); err != nil {
		return nil, err
	}
	switch {
	case cfg.MaxPayload < 0:
		return nil, fmt.Errorf("%w: max payload %d is negative", ErrStart, cfg.MaxPayload)
	case cfg.MaxPayload > 0:
		opts.MaxPayload = int32(min(cfg.MaxPayload, 1<<30))
	case opts.MaxPayload == 0:
		opts.MaxPayload = DefaultMaxPayload
	}
	// The server refuses a payload limit above the pending limit.
	if opts.MaxPending == 0 {
		opts.MaxPending = server.MAX_PENDING_SIZE
	}
	if int64(opts.MaxPayload) > opts.MaxPending {
		opts.MaxPending = int64(opts.MaxPayload)
	}
	if cfg.StoreDir != "" {
		opts.JetStream, opts.StoreDir = true, cfg.StoreDir
	}
	// Our owner handles signals; the server must never exit the process.
	opts.NoSigs = true
	// A lagging viewer must lose frames, not stall the publisher.
	opts.NoFastProducerStall = true
	opts.NoLog = false
	if cfg.Access != nil {
		if err := cfg.Access.Check(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStart, err)
		}
		opts.Users, opts.Nkeys = cfg.Access.ServerUsers()
		opts.Username, opts.Password, opts.Authorization = "", "", ""
		opts.NoAuthUser = ""
	}
	if err := cfg.tls(opts); err != nil {
		return nil, err
	}
	leafServerTLS(opts)
	return opts, nil
}

// tls sets up client TLS from the certificate files, if given.
func (cfg Config) tls(opts *server.Options) error {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		if cfg.TLSCA != "" || cfg.TLSVerify {
			return fmt.Errorf("%w: --tls-ca and --tls-verify need --tls-cert and --tls-key", ErrStart)
		}
		return nil
	}
	if cfg.TLSVerify && cfg.TLSCA == "" {
		return fmt.Errorf("%w: verifying client certificates needs the CA that signed them (--tls-ca)", ErrStart)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSVerify,
	})
	if err != nil {
		return fmt.Errorf("%w: TLS: %w", ErrStart, err)
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, cfg.TLSVerify
	opts.TLSTimeout = 2
	return nil
}

// clusterOptions applies the cluster fields over the config file's.
func (cfg Config) clusterOptions(opts *server.Options) error {
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	if cfg.ClusterName != "" {
		if strings.ContainsAny(cfg.ClusterName, " \t\r\n") {
			return fmt.Errorf("%w: cluster name %q has spaces; use letters, digits, - and _", ErrStart, cfg.ClusterName)
		}
		opts.Cluster.Name = cfg.ClusterName
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return fmt.Errorf("%w: cluster listen address: %w", ErrStart, err)
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
	}
	if cfg.ClusterAdvertise != "" {
		if _, _, err := net.SplitHostPort(cfg.ClusterAdvertise); err != nil {
			return fmt.Errorf("%w: cluster advertise address %q is not HOST:PORT: %w", ErrStart, cfg.ClusterAdvertise, err)
		}
		opts.Cluster.Advertise = cfg.ClusterAdvertise
	}
	if len(cfg.Routes) > 0 {
		routes := make([]*url.URL, 0, len(cfg.Routes))
		for _, r := range cfg.Routes {
			u, err := ParseRoute(r)
			if err != nil {
				return err
			}
			routes = append(routes, u)
		}
		opts.Routes = routes
		opts.RoutesStr = strings.Join(cfg.Routes, ",")
	}
	clustered := opts.Cluster.Port != 0
	if !clustered && (len(opts.Routes) > 0 || cfg.ClusterName != "" || cfg.ClusterAdvertise != "") {
		return fmt.Errorf("%w: routes, a cluster name or an advertise address need a cluster listen address; set ClusterListen (--cluster-listen 0.0.0.0:6222) or a cluster block in the config file", ErrStart)
	}
	return nil
}

// ParseRoute parses one route URL, nats://HOST:PORT (nats-route:// and
// tls:// work too), and says what is wrong with a bad one.
func ParseRoute(route string) (*url.URL, error) {
	r := strings.TrimSpace(route)
	u, err := url.Parse(r)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: route %q is not a URL like nats://nats-2:6222", ErrStart, route)
	}
	switch u.Scheme {
	case "nats", "nats-route", "tls":
	default:
		return nil, fmt.Errorf("%w: route %q: scheme %q is not nats://, nats-route:// or tls://", ErrStart, route, u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("%w: route %q has no port; cluster ports are usually 6222 (nats://%s:6222)", ErrStart, route, u.Hostname())
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: route %q: port %q is not a number from 1 to 65535", ErrStart, route, u.Port())
	}
	return u, nil
}

// splitHostPort parses HOST:PORT; port 0 or -1 means a random free port.
func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT (e.g. 0.0.0.0:4222): %w", hp, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number from 0 to 65535", hp, ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func checkFree(what, host string, port int) error {
	if port <= 0 {
		return nil
	}
	if host == "" {
		// What nats-server listens on for an empty host.
		host = "0.0.0.0"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: %w for %s connections on %s: %w; stop what uses it or pick another address",
			ErrStart, ErrListen, what, net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	return l.Close()
}

// ClientURL is the URL clients on this machine connect to. An unspecified
// listen address (0.0.0.0, ::) is reached through loopback.
func (b *Broker) ClientURL() string {
	addr, ok := b.srv.Addr().(*net.TCPAddr)
	if !ok {
		return b.srv.ClientURL()
	}
	scheme := "nats://"
	if b.tls {
		scheme = "tls://"
	}
	return scheme + reachable(addr)
}

// MonitorURL is the base URL of NATS monitoring, or "" when it is off.
func (b *Broker) MonitorURL() string {
	addr := b.srv.MonitorAddr()
	if addr == nil {
		return ""
	}
	return "http://" + reachable(addr)
}

func reachable(addr *net.TCPAddr) string {
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		if ip.To4() == nil && ip != nil {
			ip = net.IPv6loopback
		} else {
			ip = net.IPv4(127, 0, 0, 1)
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// ClusterURL is the route URL other cluster members can use to reach
// this broker on this machine, or "" when it is not clustered.
func (b *Broker) ClusterURL() string {
	addr := b.srv.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats://" + reachable(addr)
}

// MaxPayload is the largest message the broker accepts.
func (b *Broker) MaxPayload() int { return b.maxPayload }

// Server returns the underlying nats-server, for what this package does
// not wrap.
func (b *Broker) Server() *server.Server { return b.srv }

// JetStream reports whether the broker runs JetStream (a store to record
// rooms in), and where it keeps it.
func (b *Broker) JetStream() (on bool, dir string) {
	if !b.srv.JetStreamEnabled() {
		return false, ""
	}
	return true, b.srv.StoreDir()
}

// Connect opens an in-process client connection, which skips TCP. It
// still authenticates like any other client.
func (b *Broker) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(b.srv)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("in-process connection to broker: %w", err)
	}
	return nc, nil
}

// Close shuts the broker down and waits until it has stopped. Clients are
// disconnected. It is safe to call more than once.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		b.log.Info("broker stopped")
	})
}

// serverLogger adapts nats-server's logger to slog. Fatal messages are
// logged as errors and kept, so Start can report them instead of exiting.
type serverLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	msg string
}

var _ server.Logger = (*serverLogger)(nil)

func (l *serverLogger) Noticef(f string, v ...any) { l.log.Info(fmt.Sprintf(f, v...)) }
func (l *serverLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *serverLogger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *serverLogger) Debugf(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLogger) Tracef(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLogger) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	l.log.Error(msg)
	l.mu.Lock()
	if l.msg == "" {
		l.msg = msg
	}
	l.mu.Unlock()
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}
