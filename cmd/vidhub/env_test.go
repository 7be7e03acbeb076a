package main

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
)

var (
	helpFlagRe = regexp.MustCompile(`^  -([a-z][-a-z0-9]*)\b`)
	helpEnvRe  = regexp.MustCompile(`\(env ([A-Z0-9_, ]+)\)`)
)

// helpVars runs "vidhub <cmd> --help" and returns each flag's environment
// variables as the help names them, in order.
func helpVars(t *testing.T, cmd string) map[string][]string {
	t.Helper()
	var out, errOut hubtest.Buffer
	err := run(context.Background(), []string{cmd, "--help"}, env(), &out, &errOut)
	if code := exitCode(err, &errOut); code != 0 {
		t.Fatalf("vidhub %s --help: exit %d: %s", cmd, code, errOut.String())
	}
	vars := map[string][]string{}
	for line := range strings.SplitSeq(errOut.String()+out.String(), "\n") {
		m := helpFlagRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		e := helpEnvRe.FindStringSubmatch(line)
		if e == nil {
			t.Errorf("vidhub %s --help: --%s names no environment variable: %q", cmd, m[1], line)
			continue
		}
		vars[m[1]] = strings.Split(e[1], ", ")
	}
	return vars
}

// TestEnvNamesMeanOneThing: every flag of every command names its
// environment variable in --help, and a variable that sets flags in two
// places sets the same thing in both. Most variables belong to one flag
// of one command; the ones shared across commands are listed here, each
// with the one meaning it has everywhere.
func TestEnvNamesMeanOneThing(t *testing.T) {
	shared := map[string]string{
		"VIDHUB_NATS": "broker URLs", "NATS_URL": "broker URLs",
		"VIDHUB_CREDS": "NATS credentials", "NATS_CREDS": "NATS credentials",
		"VIDHUB_USER": "NATS user", "NATS_USER": "NATS user",
		"VIDHUB_PASSWORD": "NATS password", "NATS_PASSWORD": "NATS password",
		"VIDHUB_NKEY": "NATS NKey seed", "NATS_NKEY": "NATS NKey seed",
		"VIDHUB_TLS_CA": "CAs of the broker's certificate", "NATS_CA": "CAs of the broker's certificate",
		"VIDHUB_TLS_CERT": "client certificate", "NATS_CERT": "client certificate",
		"VIDHUB_TLS_KEY": "client certificate's key", "NATS_KEY": "client certificate's key",
		"VIDHUB_LOG_LEVEL": "log level",
		"VIDHUB_ROOM":      "the room",
		"VIDHUB_NAME":      "a participant name",
		"VIDHUB_SOURCE":    "the video source", "VIDHUB_FPS": "a publisher's frame rate",
		"VIDHUB_SIZE": "a publisher's hi layer size", "VIDHUB_QUALITY": "JPEG quality",
		"VIDHUB_LOOP": "loop a file source", "VIDHUB_ENCODE": "which layers to encode",
		"VIDHUB_CODEC": "a publisher's codec", "VIDHUB_BITRATE": "H.264 target bitrate", "VIDHUB_KEYINT": "longest time between keyframes",
		"VIDHUB_ADAPT": "a publisher adapts its H.264 to receiver reports", "VIDHUB_MIN_BITRATE": "lowest bitrate adapting goes to",
		"VIDHUB_LAYER": "layer to watch", "VIDHUB_HEADLESS": "no window", "VIDHUB_FOR": "how long to watch",
		"VIDHUB_JSON":           "print JSON",
		"VIDHUB_FROM":           "where in a recording to start",
		"VIDHUB_TOKEN_KEY_FILE": "room token key file",
		"VIDHUB_NATS_LISTEN":    "the embedded broker's client address",
		"VIDHUB_WEB_LISTEN":     "the web gateway's HTTP address",
	}
	// The names the flags were given so that none means two things.
	want := map[string]map[string]string{
		"broker": {
			"listen": "VIDHUB_NATS_LISTEN", "http": "VIDHUB_MONITOR_LISTEN",
			"tls-cert": "VIDHUB_SERVER_TLS_CERT", "tls-key": "VIDHUB_SERVER_TLS_KEY",
			"tls-ca": "VIDHUB_SERVER_TLS_CA", "tls-verify": "VIDHUB_SERVER_TLS_VERIFY",
		},
		"demo":    {"listen": "VIDHUB_NATS_LISTEN", "web": "VIDHUB_WEB_LISTEN"},
		"web":     {"listen": "VIDHUB_WEB_LISTEN", "tls-cert": "VIDHUB_TLS_CERT", "nats": "VIDHUB_NATS"},
		"token":   {"url": "VIDHUB_WEB_URL", "room": "VIDHUB_TOKEN_ROOM", "name": "VIDHUB_TOKEN_NAME"},
		"health":  {"url": "VIDHUB_HEALTH_URLS", "tls-cert": "VIDHUB_TLS_CERT"},
		"publish": {"room": "VIDHUB_ROOM", "tls-cert": "VIDHUB_TLS_CERT", "nats": "VIDHUB_NATS"},
	}
	// Shared variables are one flag everywhere, but for these, which are
	// read exactly here.
	only := map[string][]string{
		"VIDHUB_NATS_LISTEN": {"vidhub broker --listen", "vidhub demo --listen"},
		"VIDHUB_WEB_LISTEN":  {"vidhub demo --web", "vidhub web --listen"},
	}
	retired := []string{"VIDHUB_LISTEN", "VIDHUB_HTTP", "VIDHUB_URL", "VIDHUB_WEB"}

	type use struct{ cmd, flag string }
	users := map[string][]use{}
	flags := 0
	for _, c := range commands() {
		vars := helpVars(t, c.name)
		flags += len(vars)
		for flag, vs := range vars {
			for _, v := range vs {
				users[v] = append(users[v], use{c.name, flag})
				if slices.Contains(retired, v) {
					t.Errorf("vidhub %s --%s reads the retired %s", c.name, flag, v)
				}
			}
			if w, ok := want[c.name][flag]; ok && vs[0] != w {
				t.Errorf("vidhub %s --%s is read from %v; want %s first", c.name, flag, vs, w)
			}
		}
		for flag := range want[c.name] {
			if _, ok := vars[flag]; !ok {
				t.Errorf("vidhub %s --help lists no --%s", c.name, flag)
			}
		}
	}
	if flags < 50 {
		t.Fatalf("read only %d flags from the commands' help", flags)
	}
	for v, us := range users {
		if len(us) < 2 {
			continue
		}
		if _, ok := shared[v]; !ok {
			t.Errorf("%s sets %v: a variable shared by two flags must mean one thing; name each for what it means, or list it in shared", v, us)
		}
		if o, ok := only[v]; ok {
			var got []string
			for _, u := range us {
				got = append(got, "vidhub "+u.cmd+" --"+u.flag)
			}
			slices.Sort(got)
			if !slices.Equal(got, o) {
				t.Errorf("%s sets %v; want it to set only %v", v, got, o)
			}
			continue
		}
		for _, u := range us[1:] {
			if u.flag != us[0].flag {
				t.Errorf("%s sets --%s of vidhub %s and --%s of vidhub %s: one variable, two flags", v, us[0].flag, us[0].cmd, u.flag, u.cmd)
			}
		}
	}
	// VIDHUB_TLS_CERT is a client's certificate wherever it is read; the
	// broker's own is VIDHUB_SERVER_TLS_CERT.
	for _, u := range users["VIDHUB_TLS_CERT"] {
		if u.cmd == "broker" {
			t.Errorf("vidhub broker reads VIDHUB_TLS_CERT, a client certificate everywhere else")
		}
	}
}

// TestEnvNames: the new names set their flags, and a retired name still
// sets the flag it used to, with a warning naming the new one; when the
// new one is set too, the retired one is ignored, also with a warning.
func TestEnvNames(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := webtoken.NewKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	dead := "nats://127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))
	live := hubtest.Broker(t, broker.Config{}).ClientURL()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string // in the error: the value took effect
		warn string // in a warning; "" for none
	}{
		{"broker listen", []string{"VIDHUB_NATS_LISTEN", "nohostport"}, []string{"broker"}, `"nohostport"`, ""},
		{"broker listen retired", []string{"VIDHUB_LISTEN", "nohostport"}, []string{"broker"}, `"nohostport"`, "rename it VIDHUB_NATS_LISTEN"},
		{"broker listen both", []string{"VIDHUB_LISTEN", "old", "VIDHUB_NATS_LISTEN", "nohostport"}, []string{"broker"}, `"nohostport"`, "VIDHUB_LISTEN is no longer read"},
		{"broker monitor", []string{"VIDHUB_MONITOR_LISTEN", "nohostport"}, []string{"broker", "--listen", "127.0.0.1:0"}, "monitoring address", ""},
		{"broker monitor retired", []string{"VIDHUB_HTTP", "nohostport"}, []string{"broker", "--listen", "127.0.0.1:0"}, "monitoring address", "rename it VIDHUB_MONITOR_LISTEN"},
		{"broker tls", []string{"VIDHUB_SERVER_TLS_VERIFY", "true"}, []string{"broker", "--listen", "127.0.0.1:0"}, "--tls-verify need", ""},
		{"broker tls retired", []string{"VIDHUB_TLS_VERIFY", "true"}, []string{"broker", "--listen", "127.0.0.1:0"}, "--tls-verify need", "rename it VIDHUB_SERVER_TLS_VERIFY"},
		{"broker flag wins", []string{"VIDHUB_LISTEN", "old"}, []string{"broker", "--listen", "nohostport"}, `"nohostport"`, "VIDHUB_LISTEN is no longer read"},
		{"demo listen retired", []string{"VIDHUB_LISTEN", "nohostport"}, []string{"demo", "--headless"}, `"nohostport"`, "rename it VIDHUB_NATS_LISTEN"},
		{"web listen", []string{"VIDHUB_WEB_LISTEN", "nohostport"}, []string{"web", "--nats", live}, "nohostport", ""},
		{"web listen retired", []string{"VIDHUB_LISTEN", "nohostport"}, []string{"web", "--nats", live}, "nohostport", "rename it VIDHUB_WEB_LISTEN"},
		{"health urls", []string{"VIDHUB_HEALTH_URLS", "ftp://x"}, []string{"health"}, `"ftp://x"`, ""},
		{"health urls retired", []string{"VIDHUB_URL", "ftp://x"}, []string{"health"}, `"ftp://x"`, "rename it VIDHUB_HEALTH_URLS"},
		{"token url", []string{"VIDHUB_WEB_URL", "hub"}, []string{"token", "--room", "lobby", "--view", "--token-key-file", keyFile}, `"hub"`, ""},
		{"token url retired", []string{"VIDHUB_URL", "hub"}, []string{"token", "--room", "lobby", "--view", "--token-key-file", keyFile}, `"hub"`, "rename it VIDHUB_WEB_URL"},
		// A client's certificate keeps its name: no warning.
		{"client cert", []string{"VIDHUB_TLS_CERT", "/nonexistent/cert.pem", "VIDHUB_TLS_KEY", "/nonexistent/key.pem"}, []string{"rooms", "--nats", dead}, "nonexistent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut hubtest.Buffer
			err := run(ctx, tc.args, env(tc.env...), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("vidhub %q with %v: err %v; want one saying %q (the variable took effect)", tc.args, tc.env, err, tc.want)
			}
			warnings := strings.Count(errOut.String(), "vidhub: warning:")
			switch {
			case tc.warn == "" && warnings > 0:
				t.Errorf("unexpected warning: %s", errOut.String())
			case tc.warn != "" && (warnings != 1 || !strings.Contains(errOut.String(), tc.warn)):
				t.Errorf("stderr %q; want one warning saying %q", errOut.String(), tc.warn)
			}
		})
	}
}
