package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/internal/web"
	"github.com/vidhub/vidhub/internal/webtoken"
)

// runWeb runs the web gateway: the room directory, room pages and
// browser publishing, between NATS and browsers.
func runWeb(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("web")
	listen := fs.String("listen", web.DefaultListen, "HTTP address HOST:PORT (port 0 picks a free one)")
	origins := fs.String("origins", "", "comma-separated extra origins allowed to open WebSockets, e.g. example.com,https://*.example.org (the gateway's own host is always allowed)")
	maxFPS := fs.Float64("max-fps", web.DefaultMaxPublishFPS, "most frames per second per layer a publishing browser may send")
	keyFile := fs.String("token-key-file", "", "key file of room tokens (vidhub token --new-key): require a token on every page, API call and WebSocket; without it the gateway is open")
	allowedHosts := fs.String("allowed-hosts", "", "comma-separated Host headers the gateway answers, e.g. hub.example.com,hub.example.com:8443 (others get 421; /healthz answers any); empty answers every host")
	maxSockets := fs.Int("max-sockets-per-token", web.DefaultMaxSocketsPerToken, "most WebSockets one room token may hold open at once (more get 429); -1 for no limit")
	// Not --tls-cert/--tls-key: those are the NATS client certificate's.
	httpsCert := fs.String("https-cert", "", "PEM certificate (chain) to serve HTTPS with")
	httpsKey := fs.String("https-key", "", "PEM key of --https-cert")
	var cf clientFlags
	cf.register(fs)
	fs.envVar("listen", "VIDHUB_WEB_LISTEN")
	fs.retire("VIDHUB_LISTEN", "listen")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	var allowed []string
	for o := range strings.SplitSeq(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allowed = append(allowed, o)
		}
	}
	var hosts []string
	for h := range strings.SplitSeq(*allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	var key *webtoken.Key
	if *keyFile != "" {
		if key, err = webtoken.LoadKeyFile(*keyFile); err != nil {
			return err
		}
	}
	// The gateway's own NATS connection takes every client flag: --user,
	// --password, --nkey, --creds, --tls-ca, --tls-cert, --tls-key.
	cfg := cf.config("vidhub web", log)
	// A gateway runs all day: it waits for a broker that is not up yet,
	// but stops at once when the broker refuses its credentials or TLS.
	cfg.Wait = true
	nc, err := natsconn.Connect(cfg)
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	g, err := web.New(web.Config{
		Conn: nc, Listen: *listen, AllowedOrigins: allowed, MaxPublishFPS: *maxFPS, Logger: log,
		Tokens: key, TLSCertFile: *httpsCert, TLSKeyFile: *httpsKey,
		AllowedHosts: hosts, MaxSocketsPerToken: *maxSockets,
	})
	if err != nil {
		if errors.Is(err, web.ErrBadConfig) {
			return usageError{err}
		}
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	defer g.Close()
	access := "room tokens required"
	if key == nil {
		access = "OPEN to everyone: no --token-key-file"
	}
	fmt.Fprintf(env.stdout, "vidhub web gateway on %s (broker %s; %s)\n", g.URL(), natsconn.Redact(cf.url), access)
	select {
	case <-ctx.Done():
		return nil
	case <-g.Done():
		// The broker no longer admits the gateway: exit non-zero, so
		// that compose or systemd restart it.
		return g.Err()
	}
}
