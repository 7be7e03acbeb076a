package web

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vidhub/vidhub/internal/webtoken"
)

// TokenCookie is the cookie that carries a token for every room (room
// "*") once a page was opened with ?token=, so the page's own requests
// and WebSockets carry it too. A token for one room goes in its own
// cookie, RoomCookie(room): a link, even from another site, sets only
// the cookie of its token's room and never replaces another room's.
const TokenCookie = "vidhub_token"

// RoomCookie is the name of the cookie that holds a token for room (or,
// for webtoken.AnyRoom, TokenCookie).
func RoomCookie(room string) string {
	if room == webtoken.AnyRoom || room == "" {
		return TokenCookie
	}
	return TokenCookie + "." + room
}

// openClaims are the rights of everyone on a gateway without a token key.
var openClaims = webtoken.Claims{Room: webtoken.AnyRoom, View: true, Publish: true, Replay: true}

// tokensOf returns the tokens a request carries for room ("" for a
// request about no one room), in the order they are tried: ?token=
// alone when it is there (it wins); else the room's own cookie and the
// cookie of a token for every room; for no one room, every token cookie.
// fromQuery says the token came in ?token=.
func tokensOf(r *http.Request, room string) (toks []string, fromQuery bool) {
	if t := r.URL.Query().Get("token"); t != "" {
		return []string{t}, true
	}
	if room != "" {
		for _, name := range []string{RoomCookie(room), TokenCookie} {
			if c, err := r.Cookie(name); err == nil && c.Value != "" {
				toks = append(toks, c.Value)
			}
		}
		return toks, false
	}
	for _, c := range r.Cookies() {
		if (c.Name == TokenCookie || strings.HasPrefix(c.Name, TokenCookie+".")) && c.Value != "" {
			toks = append(toks, c.Value)
		}
	}
	return toks, false
}

// grant is a verified token and what it grants.
type grant struct {
	c   webtoken.Claims
	tok string // "" on an open gateway
}

// allow checks the request's tokens for room ("" for none in
// particular) with check (nil: any valid token) and returns the first
// that allows the request. When none does it answers 401 (no valid
// token: missing, malformed, tampered or expired) or 403 (a valid token
// that does not allow this), with the reason, and returns false. A
// gateway without a token key grants everything.
func (g *Gateway) allow(w http.ResponseWriter, r *http.Request, room string, check func(webtoken.Claims) error) (grant, bool) {
	if g.cfg.Tokens == nil {
		return grant{c: openClaims}, true
	}
	toks, _ := tokensOf(r, room)
	if len(toks) == 0 {
		toks = []string{""}
	}
	var verr, cerr error
	var vtok, ctok string
	for _, tok := range toks {
		c, err := g.cfg.Tokens.Verify(tok, time.Now())
		if err != nil {
			if verr == nil {
				verr, vtok = err, tok
			}
			continue
		}
		if check != nil {
			if err := check(c); err != nil {
				if cerr == nil {
					cerr, ctok = err, tok
				}
				continue
			}
		}
		return grant{c: c, tok: tok}, true
	}
	if cerr != nil {
		g.refuse("forbidden", "refused a request its room token does not allow", "path", r.URL.Path, "token", webtoken.ID(ctok), "reason", cerr)
		http.Error(w, cerr.Error(), http.StatusForbidden)
		return grant{}, false
	}
	kind, msg := "bad_token", verr.Error()
	switch {
	case errors.Is(verr, webtoken.ErrMissing):
		kind, msg = "no_token", "this gateway needs a room token: open the link you were given (it ends in ?token=...)"
	case errors.Is(verr, webtoken.ErrExpired):
		kind = "expired_token"
	}
	// Only the token's ID is logged, never the token.
	g.refuse(kind, "refused a request without a valid room token", "path", r.URL.Path, "token", webtoken.ID(vtok), "reason", verr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="vidhub", error="invalid_token"`)
	http.Error(w, msg, http.StatusUnauthorized)
	return grant{}, false
}

// grants returns every valid token the request carries (for /api/rooms,
// which lists the rooms any of them may view), or the open grant.
func (g *Gateway) grants(r *http.Request) []webtoken.Claims {
	if g.cfg.Tokens == nil {
		return []webtoken.Claims{openClaims}
	}
	toks, _ := tokensOf(r, "")
	var out []webtoken.Claims
	for _, tok := range toks {
		if c, err := g.cfg.Tokens.Verify(tok, time.Now()); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// keepToken answers a page opened with ?token= (already checked): it sets
// the cookie of the token's room, so the page's fetches and WebSockets
// carry it, and sends the browser to the same URL without it, so the
// token does not stay in the address bar, the history or bookmarks.
//
// The cookie is SameSite=Lax: a link from another site (a mail, a chat)
// is a top-level GET navigation, which sends Lax cookies through the
// redirect, so the link works; Strict would drop the cookie on the
// redirect of a navigation that began on another site, and the visitor
// would land on a 401. Lax cookies go on no cross-site subresource,
// fetch or WebSocket, and the WebSockets check the origin too; the one
// page that acts by itself, the publish page's autostart, is not honoured
// on a navigation from another site (see crossSite).
//
// It returns false when the request carried no token in its query.
func (g *Gateway) keepToken(w http.ResponseWriter, r *http.Request, c webtoken.Claims) bool {
	if g.cfg.Tokens == nil {
		return false
	}
	toks, fromQuery := tokensOf(r, "")
	if !fromQuery {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: RoomCookie(c.Room), Value: toks[0], Path: "/",
		Expires:  c.ExpiresAt(),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	q := r.URL.Query()
	q.Del("token")
	if crossSite(r) {
		q.Del("autostart")
	}
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return true
}

// crossSite reports whether a navigation did not begin on the gateway's
// own pages or with the visitor (address bar, bookmark): the browser's
// Sec-Fetch-Site is other than same-origin or none. A browser that does
// not send it counts as cross-site, so that a link from another site
// cannot make the publish page start the camera by itself.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	}
	return true
}

// expiry is when a socket opened with claims c must close: zero on an
// open gateway.
func (g *Gateway) expiry(c webtoken.Claims) time.Time {
	if g.cfg.Tokens == nil {
		return time.Time{}
	}
	return c.ExpiresAt()
}

// takeSocket counts a socket of a token in; it returns false when the
// token has MaxSocketsPerToken open already. Sockets on an open gateway
// (no token) are not counted.
func (g *Gateway) takeSocket(tok string) bool {
	if tok == "" || g.cfg.MaxSocketsPerToken < 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perToken[tok] >= g.cfg.MaxSocketsPerToken {
		return false
	}
	g.perToken[tok]++
	return true
}

// dropSocket counts a socket of takeSocket out.
func (g *Gateway) dropSocket(tok string) {
	if tok == "" || g.cfg.MaxSocketsPerToken < 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perToken[tok]--; g.perToken[tok] <= 0 {
		delete(g.perToken, tok)
	}
}

// tooManySockets answers an upgrade over the token's socket cap.
// admit lets a socket in: it counts against its token's cap and the
// gateway's lifetime (Close waits for it), or the request is answered
// with why not. release undoes both when the socket ends.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, tok string) (release func(), ok bool) {
	if !g.takeSocket(tok) {
		g.tooManySockets(w, r, tok)
		return nil, false
	}
	if !g.enter() {
		g.dropSocket(tok)
		http.Error(w, "the gateway is shutting down", http.StatusServiceUnavailable)
		return nil, false
	}
	return func() { g.wg.Done(); g.dropSocket(tok) }, true
}

func (g *Gateway) tooManySockets(w http.ResponseWriter, r *http.Request, tok string) {
	g.refuse("too_many_sockets", "refused a socket over its token's cap", "path", r.URL.Path, "token", webtoken.ID(tok), "max", g.cfg.MaxSocketsPerToken)
	http.Error(w, fmt.Sprintf("this room token has %d sockets open already, the most one token may: close other tabs or ask for a link of your own", g.cfg.MaxSocketsPerToken),
		http.StatusTooManyRequests)
}

// checkHost refuses requests whose Host header is not one of
// Config.AllowedHosts (when set): a page of another site whose name was
// made to resolve to the gateway (DNS rebinding) then reaches nothing.
// /healthz stays open to any host, for health checks by address.
func (g *Gateway) checkHost(h http.Handler) http.Handler {
	if len(g.cfg.AllowedHosts) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || hostAllowed(g.cfg.AllowedHosts, r.Host) {
			h.ServeHTTP(w, r)
			return
		}
		g.refuse("bad_host", "refused a request for another host", "host", clip(r.Host, 80), "path", r.URL.Path)
		http.Error(w, fmt.Sprintf("this gateway answers only for %s (--allowed-hosts), not %q", strings.Join(g.cfg.AllowedHosts, ", "), clip(r.Host, 80)),
			http.StatusMisdirectedRequest)
	})
}

// hostAllowed reports whether a Host header matches an allowed host: a
// pattern with a port matches that host and port, one without a port the
// host on any port. Case does not matter.
func hostAllowed(allowed []string, host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	for _, a := range allowed {
		if strings.EqualFold(a, host) || strings.EqualFold(strings.Trim(a, "[]"), name) {
			return true
		}
	}
	return false
}
