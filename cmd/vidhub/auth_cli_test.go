package main

// Access control, secrets in logs and TLS, through the vidhub binary: real
// processes against a real broker (vidhub broker, or a stock nats-server
// running the configuration "vidhub access nats-config" printed).

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
)

// refuseWithin is how long a refused client may take to say so and exit:
// a refusal must come back at once, not after a hang or a timeout.
const refuseWithin = 5 * time.Second

// cliRuns runs the vidhub binary for one test and keeps every process, so
// that all their output can be checked at the end.
type cliRuns struct {
	t   *testing.T
	bin string
	mu  sync.Mutex
	all []*hubtest.Proc
}

func newCLIRuns(t *testing.T) *cliRuns {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the vidhub binary")
	}
	return &cliRuns{t: t, bin: hubtest.Vidhub(t)}
}

// start runs vidhub with args in a clean environment plus env (each
// "KEY=value"); the process is stopped when the test ends.
func (r *cliRuns) start(env []string, args ...string) *hubtest.Proc {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	name := args[0] + "#" + strconv.Itoa(len(r.all)+1)
	p := hubtest.StartProc(r.t, hubtest.ProcConfig{Env: env, Name: name}, r.bin, args...)
	r.all = append(r.all, p)
	return p
}

// run runs vidhub to its end, killing it after timeout (exit code -1).
func (r *cliRuns) run(timeout time.Duration, env []string, args ...string) *hubtest.Proc {
	r.t.Helper()
	p := r.start(env, args...)
	if _, ok := p.Wait(timeout); !ok {
		p.Kill()
	}
	return p
}

// refused runs a client that must be turned away: it must exit non-zero
// within refuseWithin, printing every one of want (case-insensitive).
func (r *cliRuns) refused(env []string, args []string, want ...string) {
	r.t.Helper()
	p := r.run(refuseWithin+5*time.Second, env, args...)
	out := strings.ToLower(p.Stderr.String())
	if p.Code() == 0 || p.Elapsed() > refuseWithin {
		r.t.Errorf("%q: exit %d after %v; want a refusal within %v\n%s", args, p.Code(), p.Elapsed().Round(time.Millisecond), refuseWithin, p.Output())
		return
	}
	for _, w := range want {
		if !strings.Contains(out, strings.ToLower(w)) {
			r.t.Errorf("%q: the error does not say %q:\n%s", args, w, p.Stderr.String())
		}
	}
}

// Where the broker and the gateway say they listen.
var (
	brokerBanner  = regexp.MustCompile(`vidhub broker listening on (\S+)`)
	gatewayBanner = regexp.MustCompile(`gateway on (\S+)`)
)

// broker starts "vidhub broker --listen 127.0.0.1:0 args..." and returns
// it and its client URL, once it accepts connections.
func (r *cliRuns) broker(args ...string) (*hubtest.Proc, string) {
	r.t.Helper()
	p := r.start(nil, append([]string{"broker", "--listen", "127.0.0.1:0"}, args...)...)
	return p, p.WaitMatch(20*time.Second, brokerBanner)[1]
}

// gateway starts "vidhub web" with args and returns its base URL.
func (r *cliRuns) gateway(env []string, args ...string) (*hubtest.Proc, string) {
	r.t.Helper()
	p := r.start(env, append([]string{"web", "--listen", "127.0.0.1:0"}, args...)...)
	return p, p.WaitMatch(20*time.Second, gatewayBanner)[1]
}

// cliViewer is a headless JSON viewer and its stats.
type cliViewer struct {
	*hubtest.Proc
	stats *hubtest.Stats
}

// viewer starts a headless JSON viewer of room.
func (r *cliRuns) viewer(env []string, url, room string, args ...string) *cliViewer {
	r.t.Helper()
	v := &cliViewer{stats: &hubtest.Stats{}}
	args = append([]string{"view", "--headless", "--json", "--nats", url, "--room", room}, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	v.Proc = hubtest.StartProc(r.t, hubtest.ProcConfig{Env: env, Stdout: v.stats, Name: "view#" + strconv.Itoa(len(r.all)+1)}, r.bin, args...)
	r.all = append(r.all, v.Proc)
	return v
}

// publisher starts a small pattern publisher into room.
func (r *cliRuns) publisher(env []string, url, room string, args ...string) *hubtest.Proc {
	r.t.Helper()
	return r.start(env, append([]string{"publish", "--nats", url, "--room", room, "--source", "pattern",
		"--size", "320x180", "--fps", "10"}, args...)...)
}

// framesFrom reports whether the viewer has shown frames of participant.
func (v *cliViewer) framesFrom(participant string) bool { return v.stats.Frames(participant) > 0 }

// waitFrames waits until viewer v shows frames of every participant.
func waitFrames(t *testing.T, v *cliViewer, participants ...string) {
	t.Helper()
	v.WaitFor(30*time.Second, func() bool {
		for _, p := range participants {
			if !v.framesFrom(p) {
				return false
			}
		}
		return true
	}, "the viewer shows no frames of %v", participants)
}

// testAccess is an access file with password users alice and wall and the
// NKey user cam, written to a file; seed is cam's NKey seed file.
type testAccess struct {
	file, seedFile, seed string
}

func writeAccessFile(t *testing.T, alicePW, wallPW string) testAccess {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	a := testAccess{file: filepath.Join(dir, "access.yaml"), seedFile: filepath.Join(dir, "cam.nk"), seed: string(seed)}
	yaml := `users:
  - name: alice
    password: ` + alicePW + `
    view: [lobby, hall]
    publish: [lobby]
  - name: wall
    password: ` + wallPW + `
    view: ["*"]
  - name: cam
    nkey: ` + pub + `
    publish: [lobby]
`
	if err := os.WriteFile(a.file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// checkRoomPermissions runs clients against a broker that enforces
// writeAccessFile's rules at url, with credentials from flags and from the
// NATS_* environment: what is allowed works, what is not is refused at
// once with an error that says so.
func checkRoomPermissions(t *testing.T, r *cliRuns, url string, a testAccess) {
	// Allowed: alice (NATS_USER/NATS_PASSWORD) and cam (--nkey) publish
	// into lobby; wall (--user/--password) sees both.
	r.publisher([]string{"NATS_USER=alice", "NATS_PASSWORD=s3cret"}, url, "lobby")
	r.publisher(nil, url, "lobby", "--nkey", a.seedFile, "--name", "cam")
	wall := r.viewer(nil, url, "lobby", "--user", "wall", "--password", "other")
	waitFrames(t, wall, "alice", "cam")

	// A viewer of lobby and hall may not watch another room.
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "secret", "--user", "alice", "--password", "s3cret"},
		"not allowed", "secret")
	r.refused([]string{"NATS_USER=alice", "NATS_PASSWORD=s3cret"}, []string{"view", "--headless", "--nats", url, "--room", "secret"},
		"not allowed", "secret")
	// A publish-only NKey user (NATS_NKEY) may not watch at all.
	r.refused([]string{"NATS_NKEY=" + a.seedFile}, []string{"view", "--headless", "--nats", url, "--room", "lobby"},
		"not allowed", "lobby")

	// A publisher may not publish into a room it may only view, nor
	// under another participant's name.
	r.refused(nil, []string{"publish", "--nats", url, "--room", "hall", "--source", "pattern", "--size", "160x90",
		"--user", "alice", "--password", "s3cret"}, "not allowed", "hall")
	r.refused([]string{"NATS_USER=alice", "NATS_PASSWORD=s3cret"}, []string{"publish", "--nats", url, "--room", "lobby",
		"--name", "bob", "--source", "pattern", "--size", "160x90"}, "not allowed", "bob")
	r.refused([]string{"NATS_NKEY=" + a.seedFile}, []string{"publish", "--nats", url, "--room", "lobby",
		"--name", "alice", "--source", "pattern", "--size", "160x90"}, "not allowed", "alice")
	if wall.framesFrom("bob") {
		t.Error("frames published as bob reached a viewer")
	}

	// Wrong passwords and unknown users are refused.
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "lobby", "--user", "wall", "--password", "wrong"},
		"authorization violation")
	r.refused([]string{"NATS_USER=mallory", "NATS_PASSWORD=other"}, []string{"view", "--headless", "--nats", url, "--room", "lobby"},
		"authorization violation")
	r.refused(nil, []string{"web", "--listen", "127.0.0.1:0", "--nats", url, "--user", "wall", "--password", "wrong"},
		"refused", "authorization violation", "password")

	if wall.Exited() {
		t.Errorf("the allowed viewer stopped (exit %d):\n%s", wall.Code(), wall.Output())
	}
}

// TestCLIAccessControl runs "vidhub broker --access FILE" and checks each
// user can do what the file allows and nothing else.
func TestCLIAccessControl(t *testing.T) {
	r := newCLIRuns(t)
	a := writeAccessFile(t, "s3cret", "other")
	b, url := r.broker("--access", a.file)
	checkRoomPermissions(t, r, url, a)
	if strings.Contains(b.Stderr.String(), "any client may") {
		t.Errorf("a broker with --access says it is open:\n%s", b.Stderr.String())
	}
}

// TestCLIAccessNATSConfig turns the access file into a stock nats-server
// configuration with "vidhub access nats-config" and checks a real
// nats-server running it enforces the same rules.
func TestCLIAccessNATSConfig(t *testing.T) {
	r := newCLIRuns(t)
	a := writeAccessFile(t, "s3cret", "other")
	p := r.run(10*time.Second, nil, "access", "nats-config", a.file)
	if p.Code() != 0 || !strings.Contains(p.Stdout.String(), "authorization") {
		t.Fatalf("access nats-config: exit %d:\n%s", p.Code(), p.Output())
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(p.Stdout.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := hubtest.StartNatsServer(t, 0, "-c", conf)
	checkRoomPermissions(t, r, srv.URL, a)
}

// TestCLIPublishRefusedAtOnce: a publisher that a broker turns away
// (wrong password, TLS it cannot verify) stops at once with an error that
// says why. Publishers wait for a broker that is not up yet; they must
// not mistake a refusal for that and wait for ever.
func TestCLIPublishRefusedAtOnce(t *testing.T) {
	r := newCLIRuns(t)
	a := writeAccessFile(t, "s3cret", "other")
	_, url := r.broker("--access", a.file)
	r.refused(nil, []string{"publish", "--nats", url, "--room", "lobby", "--source", "pattern", "--size", "160x90",
		"--user", "alice", "--password", "wrong"}, "refused", "authorization violation")
	certs := hubtest.MakeCerts(t)
	_, tlsURL := r.broker("--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey)
	r.refused(nil, []string{"publish", "--nats", tlsURL, "--room", "lobby", "--name", "cam", "--source", "pattern", "--size", "160x90"},
		"refused", "tls", "--tls-ca")
}

// TestCLISecretsNotLogged runs a locked-down hub at the debug log level,
// with passwords in flags, the environment and a URL, an NKey seed and a
// token key, refused and accepted clients and browsers, and checks no
// process prints any of the secrets.
func TestCLISecretsNotLogged(t *testing.T) {
	r := newCLIRuns(t)
	const (
		alicePW = "pw-alice-7f3a9c"
		wallPW  = "pw-wall-41be0e"
		wrongPW = "pw-wrong-9e1d52"
	)
	a := writeAccessFile(t, alicePW, wallPW)
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if p := r.run(10*time.Second, nil, "token", "--new-key", keyFile); p.Code() != 0 {
		t.Fatalf("token --new-key: %s", p.Output())
	}
	keyHex, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := webtoken.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	debug := []string{"--log-level", "debug"}

	_, url := r.broker(append([]string{"--access", a.file}, debug...)...)
	hostPort := strings.TrimPrefix(url, "nats://")
	r.publisher(nil, url, "lobby", append([]string{"--user", "alice", "--password", alicePW}, debug...)...)
	r.publisher([]string{"NATS_NKEY=" + a.seedFile}, url, "lobby", append([]string{"--name", "cam"}, debug...)...)
	wall := r.viewer([]string{"VIDHUB_PASSWORD=" + wallPW}, url, "lobby", append([]string{"--user", "wall"}, debug...)...)
	inURL := r.viewer(nil, "nats://wall:"+wallPW+"@"+hostPort, "lobby", debug...)
	waitFrames(t, wall, "alice", "cam")
	waitFrames(t, inURL, "alice", "cam")

	// Refusals print errors: they must not echo what was presented.
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "lobby", "--user", "alice", "--password", wrongPW, "--log-level", "debug"})
	r.refused(nil, []string{"view", "--headless", "--nats", "nats://alice:" + wrongPW + "@" + hostPort, "--room", "lobby", "--log-level", "debug"})
	r.refused([]string{"NATS_USER=wall", "NATS_PASSWORD=" + wrongPW}, append([]string{"web", "--listen", "127.0.0.1:0", "--nats", url}, debug...))
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "secret", "--user", "alice", "--password", alicePW, "--log-level", "debug"})

	// The gateway, with a password from the environment and a token key,
	// shown good, wrong-room, expired and forged tokens.
	tokenRun := r.run(10*time.Second, nil, "token", "--room", "lobby", "--view", "--token-key-file", keyFile, "--url", "http://127.0.0.1:1")
	good, _, _ := strings.Cut(tokenRun.Stdout.String(), "\n")
	if tokenRun.Code() != 0 || good == "" {
		t.Fatalf("token: exit %d: %s", tokenRun.Code(), tokenRun.Output())
	}
	hall, _ := key.Sign(webtoken.Claims{Room: "hall", View: true, Expires: time.Now().Add(time.Hour).Unix()})
	expired, _ := key.Sign(webtoken.Claims{Room: "lobby", View: true, Issued: time.Now().Add(-2 * time.Hour).Unix(), Expires: time.Now().Add(-time.Hour).Unix()})
	forged := good[:strings.LastIndexByte(good, '.')+1] + "AAAAforgedsignatureAAAAAAAAAAAAAAAAAAAAAAA"
	web, base := r.gateway([]string{"NATS_USER=wall", "NATS_PASSWORD=" + wallPW},
		append([]string{"--nats", url, "--token-key-file", keyFile}, debug...)...)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/rooms/lobby?token=" + good, http.StatusSeeOther},
		{"/api/rooms/lobby?token=" + good, http.StatusOK},
		{"/api/rooms/hall?token=" + good, http.StatusForbidden},
		{"/api/rooms/lobby?token=" + hall, http.StatusForbidden},
		{"/rooms/lobby?token=" + expired, http.StatusUnauthorized},
		{"/rooms/lobby?token=" + forged, http.StatusUnauthorized},
	} {
		resp, err := noRedirect.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", strings.Split(tc.path, "?")[0], resp.StatusCode, tc.want)
		}
	}
	// The log reaches us through a pipe from another process: wait for it.
	web.WaitFor(10*time.Second, func() bool { return strings.Contains(web.Stderr.String(), webtoken.ID(forged)) },
		"the gateway did not log the refused token's ID (so this test would not see a token in its log)")

	// Stop everything cleanly, so shutdown logs are in too.
	r.mu.Lock()
	procs := append([]*hubtest.Proc(nil), r.all...)
	r.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	secrets := map[string]string{
		"alice's password": alicePW, "wall's password": wallPW, "a wrong password": wrongPW,
		"the NKey seed": a.seed, "the token key": strings.TrimSpace(string(keyHex)),
	}
	for name, tok := range map[string]string{"good": good, "wrong-room": hall, "expired": expired, "forged": forged} {
		secrets[name+" token"] = tok
		secrets[name+" token's signature"] = tok[strings.LastIndexByte(tok, '.')+1:]
	}
	for _, p := range procs {
		out := p.Output()
		if p == tokenRun {
			out = p.Stderr.String() // printing the token is its job
		}
		for name, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s (%q) printed %s:\n%s", p.Name, p.Cmd.Args[1:], name, out)
			}
		}
	}
}

// TestCLIBrokerSaysWhenOpen: the broker warns when the server it runs
// admits any client, whether set up by flags or by a config file, and
// does not when users are configured either way.
func TestCLIBrokerSaysWhenOpen(t *testing.T) {
	r := newCLIRuns(t)
	dir := t.TempDir()
	conf := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := writeAccessFile(t, "s3cret", "other")
	certs := hubtest.MakeCerts(t)
	const open = "any client may view and publish into every room"
	for _, tc := range []struct {
		name string
		args []string
		want string // in a WARN line; "" for no warning
	}{
		{"flags", nil, open},
		{"config without auth", []string{"--config", conf("open.conf", "port: -1\nmax_payload: 2MB\n")}, open},
		{"config with users", []string{"--config", conf("users.conf", "port: -1\nauthorization {\n  users = [ {user: a, password: b} ]\n}\n")}, ""},
		{"config with a token", []string{"--config", conf("token.conf", "port: -1\nauthorization {\n  token: \"t0k3n\"\n}\n")}, ""},
		{"access file", []string{"--access", a.file}, ""},
		{"access file over an open config", []string{"--config", conf("open2.conf", "port: -1\n"), "--access", a.file}, ""},
		{"tls verify", []string{"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-ca", certs.CA, "--tls-verify"},
			"any client with a certificate from --tls-ca may view and publish into every room"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := r.broker(tc.args...)
			if code := b.Stop(); code != 0 {
				t.Errorf("exit %d", code)
			}
			var warn string
			for line := range strings.Lines(b.Stderr.String()) {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, "every room") {
					warn = line
				}
			}
			switch {
			case tc.want == "" && warn != "":
				t.Errorf("warns although clients must authenticate: %s", warn)
			case tc.want != "" && !strings.Contains(warn, tc.want):
				t.Errorf("no warning %q:\n%s", tc.want, b.Stderr.String())
			}
		})
	}
}

// TestCLITLS runs everything over TLS with certificates made by the test:
// a broker that verifies clients, a publisher, a headless viewer (TLS
// files from NATS_CA, NATS_CERT, NATS_KEY) and an HTTPS web gateway, and
// checks frames flow end to end; clients without the CA, without a client
// certificate or with another CA are refused with a clear error.
func TestCLITLS(t *testing.T) {
	r := newCLIRuns(t)
	certs := hubtest.MakeCerts(t)
	_, url := r.broker("--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-ca", certs.CA, "--tls-verify")
	if !strings.HasPrefix(url, "tls://") {
		t.Errorf("a TLS broker prints %s", url)
	}
	clientTLS := []string{"--tls-ca", certs.CA, "--tls-cert", certs.ClientCert, "--tls-key", certs.ClientKey}
	r.publisher(nil, url, "lobby", append([]string{"--name", "alice"}, clientTLS...)...)
	v := r.viewer([]string{"NATS_CA=" + certs.CA, "NATS_CERT=" + certs.ClientCert, "NATS_KEY=" + certs.ClientKey}, url, "lobby")
	waitFrames(t, v, "alice")

	_, base := r.gateway(nil, append([]string{"--nats", url, "--https-cert", certs.ServerCert, "--https-key", certs.ServerKey}, clientTLS...)...)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("gateway URL %s", base)
	}
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(https.CloseIdleConnections)
	var rooms []struct {
		Room         string `json:"room"`
		Participants []struct {
			Name string `json:"name"`
		} `json:"participants"`
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		resp, err := https.Get(base + "/api/rooms")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		rooms = nil
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&rooms) == nil &&
			len(rooms) == 1 && rooms[0].Room == "lobby" && len(rooms[0].Participants) > 0 && rooms[0].Participants[0].Name == "alice"
	}, "GET /api/rooms over HTTPS does not list lobby/alice: %v", hubtest.Lazy(func() any { return rooms }))
	// The gateway's certificate is checked: another CA does not trust it.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/api/rooms"); err == nil || !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("GET with the system CAs: %v; want a certificate error", err)
	}

	// Without the broker's CA (a nats:// URL, as a plaintext client
	// would use), without a client certificate, or trusting another CA:
	// refused, and the error says it is TLS.
	plain := "nats://" + strings.TrimPrefix(url, "tls://")
	r.refused(nil, []string{"view", "--headless", "--nats", plain, "--room", "lobby"}, "tls", "certificate")
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "lobby", "--tls-ca", certs.CA}, "tls", "certificate")
	r.refused(nil, []string{"view", "--headless", "--nats", url, "--room", "lobby", "--tls-ca", certs.OtherCA,
		"--tls-cert", certs.ClientCert, "--tls-key", certs.ClientKey}, "tls", "certificate")
	r.refused(nil, []string{"web", "--listen", "127.0.0.1:0", "--nats", plain}, "refused", "tls", "--tls-ca")
	// And a TLS client of a plaintext broker.
	b := hubtest.Broker(t, broker.Config{})
	r.refused(nil, []string{"view", "--headless", "--nats", b.ClientURL(), "--room", "lobby", "--tls-ca", certs.CA}, "secure connection")

	if v.Exited() {
		t.Errorf("the TLS viewer stopped (exit %d):\n%s", v.Code(), v.Output())
	}
}
