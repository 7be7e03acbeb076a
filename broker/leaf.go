package broker

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Leaf link timing. A WAN link can die without a word (no reset, only
// silence): the edge notices by its pings going unanswered, then tries
// to reach the hub again and again. nats-server's defaults (a ping every
// 2 min, an attempt every 1 to 2 s after a dial that may take 1 s) leave
// a hub without the edge's video for minutes after a silent outage, or
// up to 3 s after the link is back; these bring both down to about a
// second (BENCHMARKS.md, "Cameras at the edge").
const (
	// LeafReconnect is how long a leaf broker waits between attempts to
	// reach its hub, plus up to as much again at random (nats-server's
	// leafnodes reconnect interval). A config file's leafnodes block may
	// set its own (reconnect: "2s").
	LeafReconnect = 250 * time.Millisecond
	// LeafPing is how often a leaf broker pings: its link is declared
	// dead, and dialled again, when two pings in a row go unanswered
	// (about 3 s of silence). It applies to the broker's clients too,
	// which answer pings by themselves. A config file's ping_interval
	// overrides it.
	LeafPing = time.Second
	// LeafWriteDeadline is how long a write to a leaf link may block
	// before the link is closed, dropping what it holds, and dialled
	// again (nats-server keeps retrying for as long as it takes, by
	// default: after a silent outage, the hub then waits for TCP's
	// backed-off retransmissions, seconds after the link is back, and
	// gets stale video first). Live video held up longer is worth
	// nothing; a config file's leafnodes write_deadline overrides it.
	LeafWriteDeadline = 2 * time.Second
)

// DefaultLeafPort is the port NATS hubs usually accept leaf nodes on.
const DefaultLeafPort = 7422

// leafOptions applies the leaf fields over the config file's leafnodes
// block: LeafListen replaces its listen address, Leaf replaces its
// remotes (like ClusterListen and Routes for the cluster block).
func (cfg Config) leafOptions(opts *server.Options) error {
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort(cfg.LeafListen)
		if err != nil {
			return fmt.Errorf("%w: leaf listen address: %w", ErrStart, err)
		}
		opts.LeafNode.Host, opts.LeafNode.Port = host, port
	}
	if len(cfg.Leaf) == 0 {
		if cfg.LeafCreds != "" || cfg.LeafCA != "" {
			return fmt.Errorf("%w: leaf credentials and CA (--leaf-creds, --leaf-ca) go with hub URLs (--leaf nats://hub:%d); for a config file's leafnodes remotes, set credentials and tls in the remote", ErrStart, DefaultLeafPort)
		}
	} else {
		remote := &server.RemoteLeafOpts{}
		for _, l := range cfg.Leaf {
			u, err := ParseLeaf(l)
			if err != nil {
				return err
			}
			if err := cfg.notSelf(opts, u); err != nil {
				return err
			}
			remote.URLs = append(remote.URLs, u)
			if u.Scheme == "tls" {
				remote.TLS = true
			}
		}
		if err := cfg.leafCreds(remote); err != nil {
			return err
		}
		if cfg.LeafCA != "" {
			tc, err := leafTLS(cfg.LeafCA)
			if err != nil {
				return err
			}
			remote.TLS, remote.TLSConfig = true, tc
		}
		// One remote with every URL: they are members of one hub, and
		// the broker keeps one link to it, failing over between them.
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
	}
	if len(opts.LeafNode.Remotes) > 0 && opts.PingInterval == 0 {
		opts.PingInterval = LeafPing
	}
	if (len(opts.LeafNode.Remotes) > 0 || opts.LeafNode.Port != 0) && opts.LeafNode.WriteDeadline == 0 {
		opts.LeafNode.WriteDeadline = LeafWriteDeadline
		opts.LeafNode.WriteTimeout = server.WriteTimeoutPolicyClose
	}
	if opts.LeafNode.ReconnectInterval == 0 {
		opts.LeafNode.ReconnectInterval = LeafReconnect
	}
	return nil
}

// leafServerTLS makes the leaf listener use the clients' certificate
// when client TLS is on and the config file set no leafnodes tls of its
// own: an edge then links over tls://. With TLSVerify, edges must present
// a certificate too, like clients.
func leafServerTLS(opts *server.Options) {
	if opts.LeafNode.Port == 0 || opts.LeafNode.TLSConfig != nil || opts.TLSConfig == nil {
		return
	}
	opts.LeafNode.TLSConfig = opts.TLSConfig.Clone()
	opts.LeafNode.TLSTimeout = opts.TLSTimeout
}

// leafCreds reads LeafCreds: a NATS credentials file (a user JWT and its
// seed, for hubs in operator mode) or a file holding a user NKey seed
// (for a hub whose access file lists the edge's public NKey).
func (cfg Config) leafCreds(remote *server.RemoteLeafOpts) error {
	if cfg.LeafCreds == "" {
		return nil
	}
	b, err := os.ReadFile(cfg.LeafCreds)
	if err != nil {
		return fmt.Errorf("%w: leaf credentials: %w", ErrStart, err)
	}
	defer clear(b)
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
			return fmt.Errorf("%w: leaf credentials %s: a credentials file needs a user JWT and its seed: %w", ErrStart, cfg.LeafCreds, err)
		}
		remote.Credentials = cfg.LeafCreds
		return nil
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%w: leaf credentials %s is neither a credentials file (JWT and seed) nor a user NKey seed (SU...): %w", ErrStart, cfg.LeafCreds, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("%w: leaf credentials %s: %w", ErrStart, cfg.LeafCreds, err)
	}
	remote.Nkey = string(seed)
	return nil
}

// leafTLS trusts the system's roots and the CAs in caFile.
func leafTLS(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: leaf CA: %w", ErrStart, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: leaf CA %s holds no PEM certificate", ErrStart, caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// notSelf refuses a hub URL that is this broker's own leaf or client
// address: a leaf node of itself never links.
func (cfg Config) notSelf(opts *server.Options, u *url.URL) error {
	port, _ := strconv.Atoi(u.Port())
	if !isLocal(u.Hostname()) {
		return nil
	}
	switch port {
	case opts.LeafNode.Port:
		return fmt.Errorf("%w: leaf hub %s is this broker's own leaf address; --leaf names another broker's --leaf-listen address", ErrStart, u.Redacted())
	case opts.Port:
		return fmt.Errorf("%w: leaf hub %s is this broker's own client address; --leaf names the hub's leaf port (usually %d), not a client port", ErrStart, u.Redacted(), DefaultLeafPort)
	}
	return nil
}

// isLocal reports whether host names this machine.
func isLocal(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// ParseLeaf parses one hub URL for a leaf broker, nats://HOST:PORT or
// tls://HOST:PORT, optionally with user:password, and says what is wrong
// with a bad one.
func ParseLeaf(hub string) (*url.URL, error) {
	h := strings.TrimSpace(hub)
	if !strings.Contains(h, "://") {
		return nil, fmt.Errorf("%w: leaf hub %q has no scheme; write nats:// or tls:// before it (nats://%s)", ErrStart, redact(h), redact(h))
	}
	u, err := url.Parse(h)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: leaf hub %q is not a URL like nats://hub.example.com:%d", ErrStart, redact(h), DefaultLeafPort)
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return nil, fmt.Errorf("%w: leaf hub %s: scheme %q is not nats:// or tls://", ErrStart, u.Redacted(), u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("%w: leaf hub %s has no port; hubs usually accept leaf nodes on %d (%s://%s:%d)", ErrStart, u.Redacted(), DefaultLeafPort, u.Scheme, u.Hostname(), DefaultLeafPort)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: leaf hub %s: port %q is not a number from 1 to 65535", ErrStart, u.Redacted(), u.Port())
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: leaf hub %s: a hub URL has no path", ErrStart, u.Redacted())
	}
	return u, nil
}

// redact hides a password in a string that did not parse as a URL.
func redact(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			return s[:scheme+3] + "xxxxx" + s[at:]
		}
		return "xxxxx" + s[at:]
	}
	return s
}

// LeafURL is the URL edge brokers on this machine use to link to this
// one as leaf nodes, or "" when it accepts none.
func (b *Broker) LeafURL() string { return b.leafURL }

// leafURL works out the bound leaf address after the server started.
func leafURL(srv *server.Server, tlsOn bool) string {
	v, err := srv.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	scheme := "nats://"
	if tlsOn {
		scheme = "tls://"
	}
	if ip := net.ParseIP(v.LeafNode.Host); ip != nil || v.LeafNode.Host == "" {
		return scheme + reachable(&net.TCPAddr{IP: ip, Port: v.LeafNode.Port})
	}
	return scheme + net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port))
}
