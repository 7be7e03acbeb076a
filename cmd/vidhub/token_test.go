package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
)

// TestTokenCommand makes a key with "vidhub token --new-key" (0600, never
// overwritten) and tokens with it that the key verifies, with the rights
// asked for and a ready link; bad calls exit 2 with a reason.
func TestTokenCommand(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if _, errOut, code := runCmd(t, 5*time.Second, env(), "token", "--new-key", keyFile); code != 0 {
		t.Fatalf("--new-key: exit %d: %s", code, errOut)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if _, errOut, code := runCmd(t, 5*time.Second, env(), "token", "--new-key", keyFile); code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("second --new-key: exit %d: %s", code, errOut)
	}
	key, err := webtoken.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, code := runCmd(t, 5*time.Second, env("VIDHUB_TOKEN_KEY_FILE", keyFile),
		"token", "--room", "lobby", "--publish", "--name", "ann", "--ttl", "2h", "--url", "https://hub.example.com/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a token and a link, got %q", out)
	}
	c, err := key.Verify(lines[0], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Room != "lobby" || c.View || !c.Publish || c.Name != "ann" || time.Until(c.ExpiresAt()) < 119*time.Minute || time.Until(c.ExpiresAt()) > 2*time.Hour {
		t.Errorf("claims %+v", c)
	}
	u, err := url.Parse(lines[1])
	if err != nil || u.Scheme != "https" || u.Host != "hub.example.com" || u.Path != "/rooms/lobby/publish" ||
		u.Query().Get("name") != "ann" || u.Query().Get("token") != lines[0] {
		t.Errorf("link %q", lines[1])
	}
	if strings.Contains(errOut, lines[0]) {
		t.Error("the token was printed to stderr too")
	}

	out, _, code = runCmd(t, 5*time.Second, env(), "token", "--room", "*", "--view", "--token-key-file", keyFile, "--url", "http://127.0.0.1:8080")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "http://127.0.0.1:8080/?token=") {
		t.Errorf("every-room token: exit %d, %q", code, out)
	}

	// Replaying is a right of its own; its link is the room page.
	out, _, code = runCmd(t, 5*time.Second, env(), "token", "--room", "lobby", "--replay", "--token-key-file", keyFile, "--url", "https://hub.example.com")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "https://hub.example.com/rooms/lobby?token=") {
		t.Errorf("replay token: exit %d, %q", code, out)
	} else if c, err := key.Verify(lines[0], time.Now()); err != nil || !c.Replay || c.View || c.Publish || c.CanReplay("lobby") != nil {
		t.Errorf("replay token: %+v, %v", c, err)
	}

	for _, args := range [][]string{
		{"token", "--room", "lobby", "--view"},                                              // no key
		{"token", "--room", "lobby", "--token-key-file", keyFile},                           // no rights
		{"token", "--view", "--token-key-file", keyFile},                                    // no room
		{"token", "--room", "a.b", "--view", "--token-key-file", keyFile},                   // bad room
		{"token", "--room", "lobby", "--view", "--ttl", "-1h", "--token-key-file", keyFile}, // past
		{"token", "--room", "lobby", "--view", "--token-key-file", keyFile, "--url", "hub"}, // bad URL
	} {
		if _, errOut, code := runCmd(t, 5*time.Second, env(), args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, %q; want 2 with a reason", args, code, errOut)
		}
	}
}

// TestWebTokensAndHTTPS runs "vidhub web --token-key-file --https-cert
// --https-key": it serves HTTPS, refuses a request without a token and
// serves the room page with one.
func TestWebTokensAndHTTPS(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	certs := hubtest.MakeCerts(t)
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := webtoken.NewKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	key, _ := webtoken.LoadKeyFile(keyFile)
	tok, _ := key.Sign(webtoken.Claims{Room: "lobby", View: true, Expires: time.Now().Add(time.Hour).Unix()})
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut hubtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"web", "--listen", "127.0.0.1:0", "--nats", b.ClientURL(), "--token-key-file", keyFile,
			"--https-cert", certs.ServerCert, "--https-key", certs.ServerKey}, env(), &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vidhub web: %v", err)
		}
	})
	var base string
	hubtest.Eventually(t, 10*time.Second, func() bool {
		_, rest, ok := strings.Cut(out.String(), "gateway on ")
		base, _, _ = strings.Cut(rest, " ")
		return ok && strings.HasPrefix(base, "https://")
	}, "no https URL printed: %q %q", out.String(), errOut.String())
	pem, _ := os.ReadFile(certs.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, _ := cookiejar.New(nil) // the redirect after ?token= relies on the cookie
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tc := range []struct {
		path string
		want int
	}{{"/rooms/lobby", 401}, {"/rooms/lobby?token=" + tok, 200}, {"/healthz", 200}} {
		resp, err := c.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", strings.Split(tc.path, "?")[0], resp.StatusCode, tc.want)
		}
	}
	if strings.Contains(errOut.String(), tok) || strings.Contains(errOut.String(), "OPEN") {
		t.Errorf("log: %s", errOut.String())
	}
}
