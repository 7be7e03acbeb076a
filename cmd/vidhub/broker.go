package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
)

func runBroker(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("broker")
	listen := fs.String("listen", broker.DefaultListen, "client address HOST:PORT (port 0 picks a free one)")
	httpAddr := fs.String("http", "", "NATS monitoring address HOST:PORT, e.g. 0.0.0.0:8222 (off when empty)")
	maxPayload := bytesFlag{n: broker.DefaultMaxPayload}
	fs.Var(&maxPayload, "max-payload", "largest message, a `SIZE` in bytes such as 8MB or 1048576")
	config := fs.String("config", "", "stock nats-server configuration file; flags given explicitly override it")
	serverName := fs.String("server-name", "", "this server's name in monitoring and its cluster (default: the config file's, or a generated ID)")
	clusterName := fs.String("cluster-name", "", "NATS cluster to form or join; the same on every member")
	clusterListen := fs.String("cluster-listen", "", "address other cluster members connect to, HOST:PORT, e.g. 0.0.0.0:6222 (no clustering when empty and no config file cluster block)")
	clusterAdvertise := fs.String("cluster-advertise", "", "HOST:PORT to tell other members to use for this one, when it differs from --cluster-listen")
	routes := fs.String("routes", "", "comma-separated cluster members to connect to, e.g. nats://b1:6222,nats://b2:6222 (this broker's own address may be in the list)")
	store := fs.String("store", "", "directory for JetStream's file store: turns on recording rooms (vidhub record); recordings outlast a restart on the same directory")
	leafListen := fs.String("leaf-listen", "", "address edge brokers link to as leaf nodes, HOST:PORT, e.g. 0.0.0.0:7422 (none when empty and no config file leafnodes block)")
	leaf := fs.String("leaf", "", "run as a leaf node of a hub: its comma-separated leaf URLs, nats://HUB:7422 or tls://, user:password@ in the URL for a password user; only watched subjects cross the link")
	leafCreds := fs.String("leaf-creds", "", "file the leaf link authenticates with: a NATS credentials file (JWT and seed) or a user NKey seed")
	leafCA := fs.String("leaf-ca", "", "CA bundle (PEM) trusted for the hub's certificate besides the system's; turns on TLS for the leaf link")
	accessFile := fs.String("access", "", "access file (YAML): users and the rooms each may view and publish into")
	tlsCert := fs.String("tls-cert", "", "server certificate (PEM): turns on TLS for clients")
	tlsKey := fs.String("tls-key", "", "server certificate's key (PEM)")
	tlsCA := fs.String("tls-ca", "", "CA bundle (PEM) that client certificates are checked against, with --tls-verify")
	tlsVerify := fs.Bool("tls-verify", false, "require client certificates signed by --tls-ca")
	var level string
	registerLogLevel(fs, &level)
	// Named for what they are: --listen is not the web gateway's, and the
	// certificate is the server's, not a client's (VIDHUB_TLS_CERT).
	fs.envVar("listen", "VIDHUB_NATS_LISTEN")
	fs.envVar("http", "VIDHUB_MONITOR_LISTEN")
	fs.retire("VIDHUB_LISTEN", "listen")
	fs.retire("VIDHUB_HTTP", "http")
	for _, f := range []string{"tls-cert", "tls-key", "tls-ca", "tls-verify"} {
		fs.envVar(f, "VIDHUB_SERVER_"+strings.TrimPrefix(defaultVar(f), "VIDHUB_"))
		fs.retire(defaultVar(f), f)
	}
	if err := env.parse(fs, args); err != nil {
		return err
	}
	log, err := env.logger(level)
	if err != nil {
		return err
	}
	cfg := broker.Config{
		ConfigFile: *config, HTTP: *httpAddr, Logger: log,
		ServerName: *serverName, ClusterName: *clusterName,
		ClusterListen: *clusterListen, ClusterAdvertise: *clusterAdvertise,
		StoreDir: *store, LeafListen: *leafListen, LeafCreds: *leafCreds, LeafCA: *leafCA,
	}
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA, cfg.TLSVerify = *tlsCert, *tlsKey, *tlsCA, *tlsVerify
	if *accessFile != "" {
		if cfg.Access, err = access.Load(*accessFile); err != nil {
			return err
		}
		log.Info("access control on", "file", *accessFile, "users", len(cfg.Access.Users))
	}
	for r := range strings.SplitSeq(*routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.Routes = append(cfg.Routes, r)
		}
	}
	if *config == "" && *clusterListen == "" && (len(cfg.Routes) > 0 || *clusterName != "" || *clusterAdvertise != "") {
		return usagef("--routes, --cluster-name and --cluster-advertise need --cluster-listen (e.g. 0.0.0.0:6222)")
	}
	for _, r := range cfg.Routes {
		if _, err := broker.ParseRoute(r); err != nil {
			return usageError{err}
		}
	}
	for l := range strings.SplitSeq(*leaf, ",") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if _, err := broker.ParseLeaf(l); err != nil {
			return usageError{err}
		}
		cfg.Leaf = append(cfg.Leaf, l)
	}
	if len(cfg.Leaf) == 0 && (*leafCreds != "" || *leafCA != "") {
		return usagef("--leaf-creds and --leaf-ca go with --leaf (the hub's URL, e.g. nats://hub:7422)")
	}
	// With a config file, only what was asked for explicitly (on the
	// command line or in the environment) overrides it.
	if *config == "" || fs.isSet("listen") {
		cfg.Listen = *listen
	}
	if *config == "" || fs.isSet("max-payload") {
		cfg.MaxPayload = int(maxPayload.n)
	}
	b, err := broker.Start(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	// Whatever set it up (flags, --access, a config file), say so when
	// the running server admits everyone.
	if msg := openWarning(b.Server()); msg != "" {
		log.Warn(msg)
	}
	fmt.Fprintf(env.stdout, "vidhub broker listening on %s (max payload %d bytes)\n", b.ClientURL(), b.MaxPayload())
	if u := b.MonitorURL(); u != "" {
		fmt.Fprintf(env.stdout, "NATS monitoring on %s\n", u)
	}
	if u := b.ClusterURL(); u != "" {
		fmt.Fprintf(env.stdout, "cluster %s: routes on %s\n", b.Server().ClusterName(), u)
	}
	if u := b.LeafURL(); u != "" {
		fmt.Fprintf(env.stdout, "leaf nodes link to %s\n", u)
	}
	if len(cfg.Leaf) > 0 {
		fmt.Fprintf(env.stdout, "leaf node of %s: links in the background and relinks by itself\n", redactURLs(cfg.Leaf))
	}
	if on, dir := b.JetStream(); on {
		fmt.Fprintf(env.stdout, "JetStream store in %s: rooms can be recorded (vidhub record)\n", dir)
	}
	<-ctx.Done()
	return nil
}

// openWarning says what is open when srv requires no authentication, and
// returns "" when it does.
func openWarning(srv *server.Server) string {
	v, err := srv.Varz(nil)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot tell whether clients must authenticate: %v", err)
	case v.AuthRequired:
		return ""
	case v.TLSVerify:
		return "no users configured (no --access file, no authorization in --config): any client with a certificate from --tls-ca may view and publish into every room"
	}
	msg := "no users configured (no --access file, no authorization in --config): any client may view and publish into every room"
	if v.LeafNode.Port > 0 {
		msg += ", and any broker may link as a leaf node"
	}
	return msg
}

// redactURLs joins URLs with their passwords hidden.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = s
		if u, err := url.Parse(s); err == nil {
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}
