// Package natsconn connects vidhub's clients (publishers, viewers, the
// room lister) to a NATS broker with the settings live video wants:
// reconnect forever and fast, never buffer stale frames while
// disconnected, and say clearly when no broker can be reached.
package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is where clients look for a broker when told nothing else.
const DefaultURL = "nats://127.0.0.1:4222"

// ErrUnreachable is returned (wrapped) when no broker answers.
var ErrUnreachable = errors.New("cannot reach the NATS broker")

// Config says how to connect.
type Config struct {
	// URL is one broker URL or a comma-separated list of them (a cluster).
	URL string
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string
	// User and Password authenticate with a user name and password.
	User, Password string
	// NKeyFile is a file holding a user NKey seed ("SU...").
	NKeyFile string
	// TLSCA is a PEM file of the CAs that signed the broker's certificate;
	// TLSCert and TLSKey are this client's certificate, for brokers that
	// verify clients.
	TLSCA, TLSCert, TLSKey string
	// Name names the connection in the broker's monitoring.
	Name string
	// Wait keeps trying in the background when no broker answers at
	// start, instead of failing: for publishers, which run all day.
	Wait bool
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Options are appended last, for what Config does not cover.
	Options []nats.Option
}

// connect opens a connection. Once connected, it reconnects forever, at
// most a few hundred milliseconds after a broker comes back, and drops
// what is published while disconnected rather than replaying it late.
func connect(cfg Config) (*nats.Conn, error) {
	url := cfg.URL
	if url == "" {
		url = DefaultURL
	}
	log := cfg.logger()
	auth, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	// kick asks watchCluster for a check: on every (re)connection.
	kick := make(chan struct{}, 1)
	kicked := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(2 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 250*time.Millisecond),
		// Video is perishable: nothing is kept for a reconnect.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		// Close drains; a drain that cannot finish is cut short.
		nats.DrainTimeout(DrainWait),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from broker; reconnecting", "err", err)
			} else if !nc.IsClosed() {
				log.Warn("disconnected from broker; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to broker", "url", nc.ConnectedUrlRedacted())
			kicked()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to broker", "url", nc.ConnectedUrlRedacted())
			kicked()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrDrainTimeout) {
				log.Debug("closing without waiting for the rest of the drain", "after", DrainWait)
				return
			}
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("broker reported an error", "subject", subj, "err", err)
		}),
	}
	opts = append(opts, auth...)
	if cfg.Wait {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	opts = append(opts, cfg.Options...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w; start one with \"vidhub broker\" (or \"vidhub demo\"), or point --nats or NATS_URL at yours",
			ErrUnreachable, Redact(url), err)
	}
	if cfg.Wait && !nc.IsConnected() {
		log.Warn("broker not reachable yet; waiting for it", "url", Redact(url))
	}
	// The checks connect with the same credentials and TLS, and nothing of
	// cfg.Options: handlers there are this connection's, not a probe's.
	watchCluster(nc, cfg, auth, kick)
	return nc, nil
}

// logger is where cfg's events go.
func (cfg Config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Logger
}

// authOptions are the options that authenticate this client and set up
// TLS.
func (cfg Config) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", cfg.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	return opts, nil
}

// Redact hides passwords and tokens in a URL list, for logs.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = scheme + "://***@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// ErrRefused is returned (wrapped) by Connect when a broker answers but turns
// this client away: wrong user or password, unknown NKey or credentials,
// or TLS that does not match. Trying again would not help.
var ErrRefused = errors.New("the NATS broker refused this client")

// Connect opens a connection with the settings live video wants (see
// connect). A broker that answers and refuses this client is an error at
// once, saying what to check, even with Wait: a publisher or gateway with
// a wrong password would otherwise wait for ever (nats.go gives up on
// repeated authorization errors, silently) while its log says the broker
// is not reachable yet. With Wait, only an unreachable broker is waited
// for.
func Connect(cfg Config) (*nats.Conn, error) {
	wait := cfg.Wait
	cfg.Wait = false
	nc, err := connect(cfg)
	if err == nil {
		return nc, nil
	}
	if r := refusal(cfg.URL, err); r != nil {
		return nil, r
	}
	if !wait {
		return nil, err
	}
	cfg.Wait = true
	return connect(cfg)
}

// refusal describes err when it means the broker refused this client, and
// returns nil when it may be worth waiting for the broker.
func refusal(url string, err error) error {
	if url == "" {
		url = DefaultURL
	}
	// Connect wraps both ErrUnreachable and the cause; keep the cause.
	cause := err
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range m.Unwrap() {
			if e != ErrUnreachable {
				cause = e
			}
		}
	}
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var remote *net.OpError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return fmt.Errorf("%w at %s: %w; check the user and password (--user, --password or NATS_USER, NATS_PASSWORD), --nkey or --creds",
			ErrRefused, Redact(url), cause)
	case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &badCert), errors.As(err, &verify):
		return fmt.Errorf("%w at %s: TLS: %w; give the CA that signed the broker's certificate with --tls-ca (or NATS_CA), and connect by a name or address the certificate is for",
			ErrRefused, Redact(url), cause)
	case errors.As(err, &remote) && remote.Op == "remote error",
		errors.Is(err, nats.ErrTLS) && strings.Contains(err.Error(), "after TLS handshake"):
		// A TLS alert from the broker, such as "certificate required", or
		// (depending on timing, as nats.go wraps it in ErrTLS) the broker
		// closing the connection right after the handshake: both mean it
		// did not accept this client's certificate, or the lack of one.
		// nats.go says "after" only in the text (ErrTLS also wraps a
		// handshake that failed, which may be an outage worth waiting
		// for), so the text is matched here, and only here.
		return fmt.Errorf("%w at %s: TLS: %w; the broker may require a client certificate (--tls-cert and --tls-key, or NATS_CERT and NATS_KEY)",
			ErrRefused, Redact(url), cause)
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w at %s: %w; TLS must be on at both ends or at neither (--tls-ca on the client, --tls-cert and --tls-key on the broker)",
			ErrRefused, Redact(url), cause)
	}
	return nil
}

// DrainWait bounds how long a clean exit waits for a connection's
// subscriptions to drain (Connect sets it as nats.go's DrainTimeout): well
// under the 2 s in which a stopped command must be gone, and far longer
// than a drain takes when the broker answers (one round trip).
const DrainWait = 500 * time.Millisecond

// flushWait bounds the last step of a drain, the flush of what was
// published: nats.go gives it a fixed 5 s that DrainTimeout does not
// cover, far too long for a broker that stopped answering.
const flushWait = 250 * time.Millisecond

// Close drains a connection, then closes it: its subscriptions stop and
// still hand over what they had received, and what was published reaches
// the broker. nats.go ends a drain that takes longer than the
// connection's DrainTimeout (DrainWait for a connection from Connect) and
// closes the connection; Close returns when it is closed, and closes it
// itself when the final flush hangs (a broker gone silent) or when the
// connection was made elsewhere with a longer DrainTimeout.
func Close(nc *nats.Conn) {
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if err := nc.Drain(); err != nil {
		// Already closed, or not connected (then Drain has closed it):
		// there is nothing to drain.
		nc.Close()
		return
	}
	wait := min(nc.Opts.DrainTimeout, DrainWait) + flushWait
	select {
	case <-closed:
	case <-time.After(wait):
		nc.Close()
	}
}
