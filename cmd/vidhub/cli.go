package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
)

// command is one subcommand.
type command struct {
	name  string
	args  string // synopsis of the arguments
	short string
	run   func(ctx context.Context, env *cmdEnv, args []string) error
}

// commands is the subcommand table, in the order help lists them.
func commands() []command {
	return []command{
		{"demo", "[--listen HOST:PORT] [--room R] [--publishers N] [--headless]", "run a broker, pattern publishers and a viewer in one process", runDemo},
		{"broker", "[--listen HOST:PORT] [--http HOST:PORT] [--max-payload N] [--config FILE] [--access FILE] [--tls-cert F --tls-key F] [--cluster-name N --cluster-listen HOST:PORT --routes URL,...]", "run the embedded NATS broker", runBroker},
		{"publish", "--room R --name N --source S [--fps 30] [--size WxH] [--quality 80] [--loop]", "publish a camera, file, stream, pipeline or pattern into a room", runPublish},
		{"view", "--room R [--layer auto|hi|lo] [--headless [--json]]", "watch a room in a window, or print its stats", runView},
		{"join", "--room R --name N --source S [--layer auto|hi|lo] [--headless]", "publish and view the same room: a video chat", runJoin},
		{"rooms", "[--json] [--wait 1.5s]", "list rooms and who is in them, from presence", runRooms},
		{"web", "[--listen HOST:PORT] [--nats URL] [--origins LIST] [--max-fps 30]", "serve rooms to browsers: live grid, directory, publish from a camera", runWeb},
		{"token", "--room R [--view] [--publish] [--name N] [--ttl 24h] --token-key-file F [--url BASE] | --new-key F", "make a signed, expiring room token for the web gateway", runToken},
		{"health", "[--url URL,...] [--nats URL] [--presence ROOM/NAME] [--timeout 3s]", "check a broker, web gateway or publisher; exit 0 when healthy", runHealth},
		{"access", "nats-config FILE | check FILE", "turn an access file into a nats-server configuration, or check it", runAccess},
		{"bench", "[--out DIR] [--duration 5s] [--quick] [--only KINDS] [--markdown FILE]", "measure vidhub against raw NATS and the classic design", runBench},
		{"version", "", "print the version", runVersion},
	}
}

// cmdEnv is what every subcommand gets from run.
type cmdEnv struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// usageError marks errors in how vidhub was called (bad flags, an unknown
// subcommand, an invalid name on the command line): exit status 2. Every
// other error, a bad access file or key file included, exits 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode is the exit status of a usage error.
func (e usageError) ExitCode() int { return 2 }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

var errHelp = errors.New("help shown")

// run is the whole program, minus the process: tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := &cmdEnv{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		if len(args) == 0 {
			return usagef("no subcommand given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	printHelp(stderr)
	return usagef("unknown subcommand %q", args[0])
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "vidhub: a NATS-brokered publish/subscribe video hub")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: vidhub <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `"vidhub <command> -h" lists a command's flags. Every flag can also be set`)
	fmt.Fprintln(w, "in the environment as VIDHUB_<FLAG> (e.g. VIDHUB_ROOM=lobby); --nats falls")
	fmt.Fprintln(w, "back to NATS_URL and --creds to NATS_CREDS.")
}

// flagSet makes a command's flag set, writing its usage to stderr.
func (e *cmdEnv) flagSet(c string) *flag.FlagSet {
	fs := flag.NewFlagSet(c, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	for _, cmd := range commands() {
		if cmd.name == c {
			fs.Usage = func() {
				fmt.Fprintf(e.stderr, "usage: vidhub %s %s\n\n%s.\n\nflags (each also VIDHUB_<FLAG> in the environment):\n", c, cmd.args, cmd.short)
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from VIDHUB_<FLAG>, then from the fallbacks (e.g. NATS_URL for nats).
func (e *cmdEnv) parse(fs *flag.FlagSet, args []string, fallbacks map[string]string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (flags start with --)", fs.Name(), fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		key := "VIDHUB_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := e.getenv(key)
		if v == "" && fallbacks[f.Name] != "" {
			key = fallbacks[f.Name]
			v = e.getenv(key)
		}
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// isSet reports whether flag name was given, on the command line or in
// the environment.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// clientFlags are the flags of every command that talks to a broker.
type clientFlags struct {
	url, creds      string
	user, password  string
	nkey            string
	tlsCA           string
	tlsCert, tlsKey string
	logLevel        string
}

// clientFallbacks are the NATS ecosystem's own variables, read when
// neither the flag nor VIDHUB_<FLAG> is set.
var clientFallbacks = map[string]string{
	"nats": "NATS_URL", "creds": "NATS_CREDS", "user": "NATS_USER", "password": "NATS_PASSWORD",
	"nkey": "NATS_NKEY", "tls-ca": "NATS_CA", "tls-cert": "NATS_CERT", "tls-key": "NATS_KEY",
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "nats", natsconn.DefaultURL, "broker URL, or a comma-separated list of a cluster's")
	fs.StringVar(&c.creds, "creds", "", "NATS credentials file")
	fs.StringVar(&c.user, "user", "", "NATS user name")
	fs.StringVar(&c.password, "password", "", "NATS password (prefer VIDHUB_PASSWORD or NATS_PASSWORD: flags show in ps)")
	fs.StringVar(&c.nkey, "nkey", "", "file holding a NATS user NKey seed")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CAs that signed the broker's certificate")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate, for brokers that verify clients")
	fs.StringVar(&c.tlsKey, "tls-key", "", "client certificate's key")
	registerLogLevel(fs, &c.logLevel)
}

func registerLogLevel(fs *flag.FlagSet, v *string) {
	fs.StringVar(v, "log-level", "info", "log level: debug, info, warn or error")
}

func (c *clientFlags) config(name string, log *slog.Logger) natsconn.Config {
	return natsconn.Config{
		URL: c.url, Creds: c.creds, User: c.user, Password: c.password, NKeyFile: c.nkey,
		TLSCA: c.tlsCA, TLSCert: c.tlsCert, TLSKey: c.tlsKey, Name: name, Logger: log,
	}
}

// logger makes the slog logger of a command, on stderr.
func (e *cmdEnv) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}

// sizeFlag parses WxH.
type sizeFlag struct{ w, h int }

func (s *sizeFlag) String() string {
	if s.w == 0 {
		return ""
	}
	return protocol.FormatSize(s.w, s.h)
}

func (s *sizeFlag) Set(v string) error {
	w, h, err := protocol.ParseSize(v)
	if err != nil {
		return err
	}
	s.w, s.h = w, h
	return nil
}

// bytesFlag parses a byte count with an optional K, KB, M, MB, G or GB
// suffix (powers of 1024, like nats-server).
type bytesFlag struct{ n int }

func (b *bytesFlag) String() string { return strconv.Itoa(b.n) }

func (b *bytesFlag) Set(v string) error {
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := 1
	for _, suf := range []struct {
		s string
		m int
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, suf.s)), suf.m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<30)/mult {
		return fmt.Errorf("%q is not a size in bytes (e.g. 8MB, 1048576)", v)
	}
	b.n = n * mult
	return nil
}

// defaultName is a participant name from the host name, made valid.
func defaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "publisher"
	}
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if protocol.ValidateName("participant", string(c)) != nil {
			b[i] = '-'
		}
	}
	if len(b) > protocol.MaxNameLen {
		b = b[:protocol.MaxNameLen]
	}
	return string(b)
}
