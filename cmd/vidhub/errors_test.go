package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestErrorsSaidOnce runs representative failures through run and main's
// error-to-exit mapping: the reported line names the program once
// (libraries add no prefix of their own) and the exit status is the
// error's: 2 for how vidhub was called, 1 for everything else.
func TestErrorsSaidOnce(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badUser := write("bad-user.yaml", "users:\n  - name: a.b\n    password: x\n    view: [lobby]\n")
	badYAML := write("bad-yaml.yaml", "users: [\n")
	badKey := write("bad.key", "short\n")
	dead := "nats://127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the reported line
	}{
		{"unknown subcommand", []string{"nope"}, 2, `unknown subcommand "nope"`},
		{"no subcommand", nil, 2, "no subcommand"},
		{"bad flag", []string{"rooms", "--bogus"}, 2, "bogus"},
		{"stray argument", []string{"rooms", "stray"}, 2, "unexpected argument"},
		{"bad room flag", []string{"view", "--room", "a.b", "--headless"}, 2, protocol.NameRule},
		{"bad name flag", []string{"publish", "--name", "a b", "--source", "pattern"}, 2, protocol.NameRule},
		{"bad fps", []string{"publish", "--name", "cam", "--source", "pattern", "--fps", "1000", "--nats", dead}, 2, "fps"},
		{"access usage", []string{"access", "check"}, 2, "nats-config FILE or check FILE"},
		{"access bad user", []string{"access", "check", badUser}, 1, "user 1: invalid name"},
		{"access bad yaml", []string{"access", "check", badYAML}, 1, "bad access file"},
		{"access missing", []string{"access", "check", filepath.Join(dir, "none.yaml")}, 1, "bad access file"},
		{"broker bad access", []string{"broker", "--listen", "127.0.0.1:0", "--access", badUser}, 1, "bad access file"},
		{"token bad key", []string{"token", "--room", "lobby", "--view", "--token-key-file", badKey}, 1, "token key"},
		{"web bad key", []string{"web", "--listen", "127.0.0.1:0", "--nats", dead, "--token-key-file", badKey}, 1, "token key"},
		{"unreachable broker", []string{"rooms", "--nats", dead}, 1, "cannot reach the NATS broker"},
		{"unhealthy", []string{"health", "--nats", dead}, 1, "unhealthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut hubtest.Buffer
			err := run(ctx, tc.args, env(), &out, &errOut)
			if err == nil {
				t.Fatalf("vidhub %q succeeded; want a failure", tc.args)
			}
			if strings.Contains(err.Error(), "vidhub:") {
				t.Errorf("the error carries a program prefix before main adds one: %q", err)
			}
			var rep hubtest.Buffer
			code := exitCode(err, &rep)
			line := rep.String()
			if n := strings.Count(line, "vidhub:"); n != 1 || !strings.HasPrefix(line, "vidhub: ") {
				t.Errorf("reported %q: want it to start with \"vidhub: \" and name the program once (%d times)", line, n)
			}
			if !strings.Contains(line, tc.want) {
				t.Errorf("reported %q; want it to say %q", line, tc.want)
			}
			if code != tc.code {
				t.Errorf("vidhub %q: exit %d, want %d (%s)", tc.args, code, tc.code, line)
			}
		})
	}
}

// TestExitCode: the exit status comes from the error's type, however
// deeply it is wrapped, not from its text.
func TestExitCode(t *testing.T) {
	badName := protocol.ValidRoom("a.b")
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"none", nil, 0},
		{"help", errHelp, 0},
		{"usage", usagef("bad flag"), 2},
		{"wrapped usage", fmt.Errorf("context: %w", usageError{errors.New("bad flag")}), 2},
		{"joined usage", errors.Join(errors.New("other"), usageError{errors.New("bad flag")}), 2},
		{"plain", errors.New("broken"), 1},
		// An invalid name inside a file is the file's fault, not how
		// vidhub was called.
		{"name in a file", fmt.Errorf("%w: user 1: %w", access.ErrBadFile, badName), 1},
		{"name in a file text", errors.New("usage: bad access file"), 1},
	} {
		var rep hubtest.Buffer
		if got := exitCode(tc.err, &rep); got != tc.code {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.code)
		}
		if tc.code == 0 && rep.String() != "" {
			t.Errorf("%s: reported %q for a clean exit", tc.name, rep.String())
		}
	}
}

// TestTakenAddressIsErrListen: the demo picks a free port when its broker
// address is taken, which it tells by broker.ErrListen, not by the text;
// other start failures are not ErrListen.
func TestTakenAddressIsErrListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := broker.Start(broker.Config{Listen: l.Addr().String()}); !errors.Is(err, broker.ErrListen) || !errors.Is(err, broker.ErrStart) {
		t.Errorf("Start on a taken address: %v; want ErrStart and ErrListen", err)
	}
	if _, err := broker.Start(broker.Config{Listen: "nohostport"}); !errors.Is(err, broker.ErrStart) || errors.Is(err, broker.ErrListen) {
		t.Errorf("Start on a malformed address: %v; want ErrStart, not ErrListen", err)
	}
}
