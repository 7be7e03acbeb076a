package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
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
		{"record", "--room R [--layers h264,h264lo] [--max-age 24h] [--max-bytes 10GB] [--replicas N] | --list | --room R --stop", "record a room on the broker's JetStream, list recordings, or stop one", runRecord},
		{"export", "--room R --name P --from T [--to T] --out F.mp4 [--layer h264]", "write a participant's recorded H.264 into an MP4 file, as recorded", runExport},
		{"snapshot", "--room R --name P [--at T] --out F.jpg", "write a participant's recorded picture at a moment as a JPEG", runSnapshot},
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
	fmt.Fprintln(w, "in the environment, under the name the list gives it: VIDHUB_<FLAG> for most")
	fmt.Fprintln(w, "(e.g. VIDHUB_ROOM=lobby), a name that says what it is for where a flag's")
	fmt.Fprintln(w, "name alone could mean two things (VIDHUB_NATS_LISTEN, VIDHUB_WEB_LISTEN).")
	fmt.Fprintln(w, "--nats falls back to NATS_URL and --creds to NATS_CREDS.")
}

// flagSet is a command's flags and the environment variable of each.
type flagSet struct {
	*flag.FlagSet
	// vars lists the variables a flag is read from, in order, when they
	// are not VIDHUB_<FLAG> alone.
	vars map[string][]string
	// retired maps a flag's former variable, read last and with a
	// warning, to the flag.
	retired map[string]string
}

// flagSet makes a command's flag set, writing its usage to stderr.
func (e *cmdEnv) flagSet(c string) *flagSet {
	fs := &flagSet{
		FlagSet: flag.NewFlagSet(c, flag.ContinueOnError),
		vars:    map[string][]string{}, retired: map[string]string{},
	}
	fs.SetOutput(e.stderr)
	for _, cmd := range commands() {
		if cmd.name == c {
			fs.Usage = func() { fs.printUsage(e.stderr, cmd) }
		}
	}
	return fs
}

// defaultVar is a flag's variable unless its registration names another.
func defaultVar(flag string) string {
	return "VIDHUB_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envVar names the variables flag is read from when it is not on the
// command line, in order: for a flag whose name alone could mean two
// things across commands, a name that says what it is for, and the NATS
// ecosystem's own names as fallbacks.
func (fs *flagSet) envVar(flag string, vars ...string) {
	fs.vars[flag] = vars
}

// retire names a variable that used to set flag (its VIDHUB_<FLAG> before
// the flag got its own name). It still does, so that a deployment keeps
// its address and TLS when upgraded, but parse warns, naming the variable
// to use instead.
func (fs *flagSet) retire(old, flag string) {
	fs.retired[old] = flag
}

// envVars is what flag is read from, in order.
func (fs *flagSet) envVars(flag string) []string {
	if v, ok := fs.vars[flag]; ok {
		return v
	}
	return []string{defaultVar(flag)}
}

// printUsage writes the command's synopsis and its flags, each with its
// environment variables, in flag.PrintDefaults's layout:
//
//	-listen string  (env VIDHUB_NATS_LISTEN)
//	  	client address HOST:PORT (port 0 picks a free one) (default "0.0.0.0:4222")
func (fs *flagSet) printUsage(w io.Writer, cmd command) {
	fmt.Fprintf(w, "usage: vidhub %s %s\n\n%s.\n", cmd.name, cmd.args, cmd.short)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nflags (each can also be set in the environment variable named beside it):\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s  (env %s)\n    \t%s", line, strings.Join(fs.envVars(f.Name), ", "), strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if name == "string" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w)
	})
}

// parse parses args, then fills every flag not given on the command line
// from its environment variables (VIDHUB_<FLAG> unless its registration
// names others), then from a retired variable, with a warning.
func (e *cmdEnv) parse(fs *flagSet, args []string) error {
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
	retiredFor := map[string][]string{}
	for old, f := range fs.retired {
		retiredFor[f] = append(retiredFor[f], old)
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		vars := fs.envVars(f.Name)
		for _, old := range retiredFor[f.Name] {
			if e.getenv(old) == "" {
				continue
			}
			if set[f.Name] {
				e.warnf("%s is no longer read by \"vidhub %s\" (--%s was given); unset it", old, fs.Name(), f.Name)
				continue
			}
			if slices.ContainsFunc(vars, func(k string) bool { return e.getenv(k) != "" }) {
				e.warnf("%s is no longer read by \"vidhub %s\"; %s sets --%s", old, fs.Name(), vars[0], f.Name)
				continue
			}
			e.warnf("%s is retired in \"vidhub %s\": rename it %s (it still sets --%s for now)", old, fs.Name(), vars[0], f.Name)
			vars = append(vars, old)
		}
		if set[f.Name] {
			return
		}
		for _, key := range vars {
			v := e.getenv(key)
			if v == "" {
				continue
			}
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
			}
			return
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// warnf prints a warning about how vidhub was called on stderr.
func (e *cmdEnv) warnf(format string, a ...any) {
	fmt.Fprintf(e.stderr, "vidhub: warning: "+format+"\n", a...)
}

// isSet reports whether flag name was given, on the command line or in
// the environment.
func (fs *flagSet) isSet(name string) bool {
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

// register adds the client flags. Each is read from VIDHUB_<FLAG>, then
// from the NATS ecosystem's own variable (NATS_URL, NATS_CREDS...).
func (c *clientFlags) register(fs *flagSet) {
	fs.StringVar(&c.url, "nats", natsconn.DefaultURL, "broker URL, or a comma-separated list of a cluster's")
	fs.StringVar(&c.creds, "creds", "", "NATS credentials file")
	fs.StringVar(&c.user, "user", "", "NATS user name")
	fs.StringVar(&c.password, "password", "", "NATS password (prefer VIDHUB_PASSWORD or NATS_PASSWORD: flags show in ps)")
	fs.StringVar(&c.nkey, "nkey", "", "file holding a NATS user NKey seed")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CAs that signed the broker's certificate")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate, for brokers that verify clients")
	fs.StringVar(&c.tlsKey, "tls-key", "", "client certificate's key")
	for flag, nats := range map[string]string{
		"nats": "NATS_URL", "creds": "NATS_CREDS", "user": "NATS_USER", "password": "NATS_PASSWORD",
		"nkey": "NATS_NKEY", "tls-ca": "NATS_CA", "tls-cert": "NATS_CERT", "tls-key": "NATS_KEY",
	} {
		fs.envVar(flag, defaultVar(flag), nats)
	}
	registerLogLevel(fs, &c.logLevel)
}

func registerLogLevel(fs *flagSet, v *string) {
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

// bytesFlag parses a byte count with an optional K, KB, M, MB, G, GB, T
// or TB suffix (powers of 1024, like nats-server), of at most max bytes
// (1 GB when max is 0).
type bytesFlag struct{ n, max int64 }

func (b *bytesFlag) String() string { return strconv.FormatInt(b.n, 10) }

func (b *bytesFlag) Set(v string) error {
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, suf.s)), suf.m
			break
		}
	}
	limit := b.max
	if limit == 0 {
		limit = 1 << 30
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > limit/mult {
		return fmt.Errorf("%q is not a size in bytes of at most %d (e.g. 8MB, 1048576)", v, limit)
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
