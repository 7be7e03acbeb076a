package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
)

// tokenKey writes a key file as "vidhub token --new-key" does and loads
// it; it returns the key and the file's text.
func tokenKey(t testing.TB) (*webtoken.Key, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.key")
	if err := webtoken.NewKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := webtoken.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	return k, strings.TrimSpace(string(b))
}

func mint(t testing.TB, k *webtoken.Key, c webtoken.Claims) string {
	t.Helper()
	if c.Expires == 0 {
		c.Expires = time.Now().Add(time.Hour).Unix()
	}
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// capturedLog is a gateway log at debug level kept for inspection.
func capturedLog(t testing.TB) (*slog.Logger, *hubtest.Buffer) {
	buf := &hubtest.Buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// noRedirect is an HTTP client that shows redirects instead of following
// them, with an optional transport.
func noRedirect(tr http.RoundTripper) *http.Client {
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// fetch GETs url with an optional cookie and returns the response (body
// read) and its body.
func fetch(t testing.TB, c *http.Client, url, cookie string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: TokenCookie, Value: cookie})
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// dialStatus opens a WebSocket and returns the HTTP status of a refused
// upgrade (0 when it opened) with its body.
func dialStatus(t testing.TB, ctx context.Context, url string, opts *websocket.DialOptions) (*websocket.Conn, int, string) {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		c.SetReadLimit(16 << 20)
		t.Cleanup(func() { _ = c.CloseNow() })
		return c, 0, ""
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, string(b)
}

// TestTokens runs a gateway with a token key against real publishers and
// checks every way in: pages, API, both WebSockets, with valid, missing,
// expired, wrong-room, tampered, view-only and wrong-name tokens; a
// socket closes when its token expires; and the log never shows a token
// or the key.
func TestTokens(t *testing.T) {
	checkGoroutines(t)
	key, keyText := tokenKey(t)
	log, logBuf := capturedLog(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key, Logger: log})
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 15, 320, 180)
	startPattern(t, h.b.ClientURL(), "hall", "bob", 15, 320, 180)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	lobby := mint(t, key, webtoken.Claims{Room: "lobby", View: true})
	hall := mint(t, key, webtoken.Claims{Room: "hall", View: true})
	every := mint(t, key, webtoken.Claims{Room: "*", View: true})
	expired := mint(t, key, webtoken.Claims{Room: "lobby", View: true, Expires: time.Now().Add(-time.Second).Unix()})
	pubAnn := mint(t, key, webtoken.Claims{Room: "lobby", View: true, Publish: true, Name: "ann"})
	pubAny := mint(t, key, webtoken.Claims{Room: "lobby", Publish: true})
	// Tampered: the claims of a token for every room with publish, under
	// the lobby token's signature.
	evil := mint(t, key, webtoken.Claims{Room: "*", View: true, Publish: true})
	tampered := strings.Split(evil, ".")[0] + "." + strings.Split(lobby, ".")[1]
	otherKey, _ := tokenKey(t)
	foreign := mint(t, otherKey, webtoken.Claims{Room: "lobby", View: true})
	tokens := []string{lobby, hall, every, expired, pubAnn, pubAny, tampered, foreign}

	client := noRedirect(nil)
	t.Run("pages", func(t *testing.T) {
		for _, tc := range []struct {
			path, query, cookie string
			status              int
			says                string
		}{
			{"/rooms/lobby", "", "", 401, "needs a room token"},
			{"/rooms/lobby", "?token=" + expired, "", 401, "expired"},
			{"/rooms/lobby", "", expired, 401, "expired"},
			{"/rooms/lobby", "?token=" + hall, "", 403, "for room hall, not lobby"},
			{"/rooms/lobby", "?token=" + tampered, "", 401, "signature"},
			{"/rooms/lobby", "?token=" + foreign, "", 401, "signature"},
			{"/rooms/lobby", "?token=garbage", "", 401, "malformed"},
			{"/rooms/lobby", "", lobby, 200, "<html"},
			{"/rooms/lobby", "", every, 200, "<html"},
			{"/rooms/lobby", "?token=" + hall, lobby, 403, "another room"}, // the URL's token wins
			{"/rooms/lobby", "", pubAny, 403, "does not allow viewing"},
			{"/rooms/lobby/publish", "", lobby, 403, "does not allow publishing"},
			{"/rooms/lobby/publish", "?name=bob", pubAnn, 403, "only as ann"},
			{"/rooms/lobby/publish", "?name=ann", pubAnn, 200, "<html"},
			{"/rooms/lobby/publish", "", pubAny, 200, "<html"},
			{"/", "", "", 401, "needs a room token"},
			{"/", "", hall, 200, "<html"},
			{"/api/rooms", "", "", 401, "needs a room token"},
			{"/api/rooms/hall", "", lobby, 403, "another room"},
			{"/api/rooms/lobby", "", lobby, 200, `"room": "lobby"`},
			{"/healthz", "", "", 200, "ok"},
			{"/metrics", "", "", 200, "vidhub_web_frames_in_total"},
			{"/static/wire.js", "", "", 200, "WIRE_VERSION"},
		} {
			resp, body := fetch(t, client, h.url+tc.path+tc.query, tc.cookie)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
				t.Errorf("GET %s%s (cookie %t): %d %q, want %d saying %q", tc.path, tc.query, tc.cookie != "", resp.StatusCode, clip(body, 200), tc.status, tc.says)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate", tc.path)
			}
		}
	})

	t.Run("cookie from the URL", func(t *testing.T) {
		resp, _ := fetch(t, client, h.url+"/rooms/lobby/publish?name=ann&token="+pubAnn, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rooms/lobby/publish?name=ann" {
			t.Fatalf("page with ?token=: %d to %q, want 303 to the URL without the token", resp.StatusCode, resp.Header.Get("Location"))
		}
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == RoomCookie("lobby") {
				ck = c
			}
		}
		if ck == nil || ck.Value != pubAnn || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
			t.Fatalf("cookie = %+v, want the token in the room's cookie, HttpOnly, SameSite=Lax, Path=/, not Secure over http", ck)
		}
		if d := time.Until(ck.Expires); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("cookie expires in %v, want the token's hour", d)
		}
		// A refused token sets no cookie.
		resp, _ = fetch(t, client, h.url+"/rooms/lobby?token="+expired, "")
		if len(resp.Cookies()) != 0 {
			t.Errorf("an expired token set a cookie: %v", resp.Cookies())
		}
	})

	t.Run("api rooms filtered", func(t *testing.T) {
		rooms := func(tok string) []string {
			_, body := fetch(t, client, h.url+"/api/rooms", tok)
			var list []protocol.RoomInfo
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			var names []string
			for _, r := range list {
				names = append(names, r.Room)
			}
			return names
		}
		hubtest.Eventually(t, 10*time.Second, func() bool { return slices.Equal(rooms(every), []string{"hall", "lobby"}) },
			"a token for every room does not list both: %v", rooms(every))
		if got := rooms(lobby); !slices.Equal(got, []string{"lobby"}) {
			t.Errorf("lobby token lists %v", got)
		}
		if got := rooms(hall); !slices.Equal(got, []string{"hall"}) {
			t.Errorf("hall token lists %v", got)
		}
		if got := rooms(pubAny); len(got) != 0 {
			t.Errorf("a publish-only token lists %v", got)
		}
	})

	ws := wsURL(h.url, "")
	t.Run("view socket", func(t *testing.T) {
		for _, tc := range []struct {
			name, query, cookie string
			status              int
			says                string
		}{
			{"missing", "", "", 401, "needs a room token"},
			{"expired", "?token=" + expired, "", 401, "expired"},
			{"wrong room", "?token=" + hall, "", 403, "for room hall"},
			{"tampered", "?token=" + tampered, "", 401, "signature"},
			{"publish only", "?token=" + pubAny, "", 403, "does not allow viewing"},
			{"expired cookie", "", expired, 401, "expired"},
		} {
			opts := &websocket.DialOptions{}
			if tc.cookie != "" {
				opts.HTTPHeader = http.Header{"Cookie": {TokenCookie + "=" + tc.cookie}}
			}
			_, status, body := dialStatus(t, ctx, ws+"/ws/view/lobby"+tc.query, opts)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Errorf("%s: upgrade answered %d %q, want %d saying %q", tc.name, status, body, tc.status, tc.says)
			}
		}
		for _, how := range []string{"query", "cookie"} {
			url, opts := ws+"/ws/view/lobby?token="+lobby, &websocket.DialOptions{}
			if how == "cookie" {
				url, opts.HTTPHeader = ws+"/ws/view/lobby", http.Header{"Cookie": {TokenCookie + "=" + lobby}}
			}
			c, status, body := dialStatus(t, ctx, url, opts)
			if c == nil {
				t.Fatalf("token in the %s: upgrade refused: %d %s", how, status, body)
			}
			f, err := readFrame(ctx, c, nil)
			if err != nil || f.Participant != "alice" {
				t.Fatalf("token in the %s: %+v %v", how, f.Participant, err)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
	})

	t.Run("publish socket", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, tok string
			status          int
			says            string
		}{
			{"view only", "/ws/publish/lobby/ann", lobby, 403, "does not allow publishing"},
			{"another name", "/ws/publish/lobby/mallory", pubAnn, 403, "only as ann, not mallory"},
			{"another room", "/ws/publish/hall/ann", pubAnn, 403, "for room lobby, not hall"},
			{"expired", "/ws/publish/lobby/ann", expired, 401, "expired"},
			{"missing", "/ws/publish/lobby/ann", "", 401, "needs a room token"},
		} {
			_, status, body := dialStatus(t, ctx, ws+tc.path+"?token="+tc.tok, nil)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Errorf("%s: upgrade answered %d %q, want %d saying %q", tc.name, status, body, tc.status, tc.says)
			}
		}
		for _, tc := range []struct{ path, tok string }{{"/ws/publish/lobby/ann", pubAnn}, {"/ws/publish/lobby/zed", pubAny}} {
			c, status, body := dialStatus(t, ctx, ws+tc.path+"?token="+tc.tok, nil)
			if c == nil {
				t.Fatalf("%s: upgrade refused: %d %s", tc.path, status, body)
			}
			_, b, err := c.Read(ctx)
			if err != nil || !strings.Contains(string(b), `"type":"hello"`) {
				t.Fatalf("%s: %s %v", tc.path, b, err)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
	})

	t.Run("socket closes when its token expires", func(t *testing.T) {
		soon := mint(t, key, webtoken.Claims{Room: "lobby", View: true, Expires: time.Now().Add(1500*time.Millisecond).Unix() + 1})
		tokens = append(tokens, soon)
		c, status, body := dialStatus(t, ctx, ws+"/ws/view/lobby?token="+soon, nil)
		if c == nil {
			t.Fatalf("refused: %d %s", status, body)
		}
		var err error
		for err == nil {
			_, _, err = c.Read(ctx)
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "expired") {
			t.Errorf("socket ended with %v, want 1008 saying the token expired", err)
		}
	})

	if n := metric(t, h.url, `vidhub_web_refused_total{reason="forbidden"}`); n < 1 {
		t.Errorf("403s not counted: %v", n)
	}
	if n := metric(t, h.url, `vidhub_web_refused_total{reason="expired_token"}`); n < 1 {
		t.Errorf("expired tokens not counted: %v", n)
	}
	h.g.Close()
	checkLogClean(t, logBuf.String(), keyText, tokens)
	if !strings.Contains(logBuf.String(), "token="+webtoken.ID(expired)) {
		t.Errorf("the refusal of the expired token is not logged under its ID %s", webtoken.ID(expired))
	}
}

// checkLogClean fails when the log holds the key, any token or either
// half of one.
func checkLogClean(t *testing.T, log, key string, tokens []string) {
	t.Helper()
	if !strings.Contains(log, "level=") {
		t.Fatalf("nothing was logged: %q", log)
	}
	secrets := []string{key}
	for _, tok := range tokens {
		payload, sig, _ := strings.Cut(tok, ".")
		secrets = append(secrets, tok, payload, sig)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the gateway log shows a secret (%d characters)", len(s))
		}
	}
}

// TestOpenGatewayWarns: without a token key the gateway says loudly that
// it is open, and lets everyone in.
func TestOpenGatewayWarns(t *testing.T) {
	log, buf := capturedLog(t)
	h := startHub(t, broker.Config{}, Config{Logger: log})
	if s := buf.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "OPEN") || !strings.Contains(s, "--token-key-file") {
		t.Errorf("no loud warning about an open gateway in:\n%s", s)
	}
	if status, _ := get(t, h.url+"/rooms/lobby"); status != 200 {
		t.Errorf("open gateway answered %d", status)
	}
}

// TestHTTPS serves the gateway over HTTPS with a test CA's certificate:
// a Go client trusting the CA views a room over wss:// with a token, the
// cookie is Secure, and a client without the CA is refused.
func TestHTTPS(t *testing.T) {
	checkGoroutines(t)
	certs := hubtest.MakeCerts(t)
	key, keyText := tokenKey(t)
	log, logBuf := capturedLog(t)
	h := startHub(t, broker.Config{}, Config{Tokens: key, Logger: log, TLSCertFile: certs.ServerCert, TLSKeyFile: certs.ServerKey})
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("URL %s", h.url)
	}
	startPattern(t, h.b.ClientURL(), "lobby", "alice", 15, 320, 180)
	tok := mint(t, key, webtoken.Claims{Room: "lobby", View: true})

	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)

	resp, _ := fetch(t, noRedirect(tr), h.url+"/rooms/lobby?token="+tok, "")
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("page over https: %d, cookies %+v; want 303 and a Secure, HttpOnly cookie", resp.StatusCode, cookies)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("TLS state %+v: want HTTP/1.1 over TLS (WebSockets upgrade over it)", resp.TLS)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wss := "wss" + strings.TrimPrefix(h.url, "https")
	c, status, body := dialStatus(t, ctx, wss+"/ws/view/lobby", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr},
		HTTPHeader: http.Header{"Cookie": {TokenCookie + "=" + tok}},
	})
	if c == nil {
		t.Fatalf("wss upgrade refused: %d %s", status, body)
	}
	for range 3 {
		f, err := readFrame(ctx, c, nil)
		if err != nil || f.Participant != "alice" {
			t.Fatalf("over wss: %+v %v", f.Participant, err)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")

	if _, err := http.Get(h.url + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v, want a certificate error", err)
	}
	h.g.Close()
	checkLogClean(t, logBuf.String(), keyText, []string{tok})
}
