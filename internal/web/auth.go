package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/vidhub/vidhub/internal/webtoken"
)

// TokenCookie is the cookie that carries a room token once a page was
// opened with ?token=, so the page's own requests and WebSockets carry it
// too.
const TokenCookie = "vidhub_token"

// openClaims are the rights of everyone on a gateway without a token key.
var openClaims = webtoken.Claims{Room: webtoken.AnyRoom, View: true, Publish: true}

// tokenOf returns the token a request carries: ?token= first, then the
// cookie. fromQuery says which.
func tokenOf(r *http.Request) (tok string, fromQuery bool) {
	if t := r.URL.Query().Get("token"); t != "" {
		return t, true
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return c.Value, false
	}
	return "", false
}

// authenticate checks the request's token and returns its claims. On
// failure it answers 401 with the reason and returns false. A gateway
// without a token key grants everything.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (webtoken.Claims, string, bool) {
	if g.cfg.Tokens == nil {
		return openClaims, "", true
	}
	tok, _ := tokenOf(r)
	c, err := g.cfg.Tokens.Verify(tok, time.Now())
	if err == nil {
		return c, tok, true
	}
	kind, msg := "bad_token", err.Error()
	switch {
	case errors.Is(err, webtoken.ErrMissing):
		kind, msg = "no_token", "this gateway needs a room token: open the link you were given (it ends in ?token=...)"
	case errors.Is(err, webtoken.ErrExpired):
		kind = "expired_token"
	}
	// Only the token's ID is logged, never the token.
	g.refuse(kind, "refused a request without a valid room token", "path", r.URL.Path, "token", webtoken.ID(tok), "reason", err)
	w.Header().Set("WWW-Authenticate", `Bearer realm="vidhub", error="invalid_token"`)
	http.Error(w, msg, http.StatusUnauthorized)
	return webtoken.Claims{}, tok, false
}

// forbid answers 403: the token is valid but does not allow this.
func (g *Gateway) forbid(w http.ResponseWriter, r *http.Request, tok string, err error) {
	g.refuse("forbidden", "refused a request its room token does not allow", "path", r.URL.Path, "token", webtoken.ID(tok), "reason", err)
	http.Error(w, err.Error(), http.StatusForbidden)
}

// allow authenticates the request and checks its claims with check; it
// answers 401 or 403 and returns false when they do not allow it.
func (g *Gateway) allow(w http.ResponseWriter, r *http.Request, check func(webtoken.Claims) error) (webtoken.Claims, bool) {
	c, tok, ok := g.authenticate(w, r)
	if !ok {
		return c, false
	}
	if check != nil {
		if err := check(c); err != nil {
			g.forbid(w, r, tok, err)
			return c, false
		}
	}
	return c, true
}

// keepToken answers a page opened with ?token= (already checked): it sets
// the cookie, so the page's fetches and WebSockets carry the token, and
// sends the browser to the same URL without it, so the token does not
// stay in the address bar, the history or bookmarks. It returns false
// when the request carried no token in its query.
func (g *Gateway) keepToken(w http.ResponseWriter, r *http.Request, c webtoken.Claims) bool {
	if g.cfg.Tokens == nil {
		return false
	}
	tok, fromQuery := tokenOf(r)
	if !fromQuery {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: TokenCookie, Value: tok, Path: "/",
		Expires:  c.ExpiresAt(),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	q := r.URL.Query()
	q.Del("token")
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
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
