package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vidhub/vidhub/internal/webtoken"
)

// runToken makes room tokens for "vidhub web --token-key-file", or with
// --new-key writes a new key file.
func runToken(_ context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("token")
	room := fs.String("room", "", `room the token is for, or "*" for every room`)
	view := fs.Bool("view", false, "allow watching the room")
	publish := fs.Bool("publish", false, "allow publishing into the room")
	replay := fs.Bool("replay", false, "allow watching the room's recording (the room page's timeline); --view does not")
	name := fs.String("name", "", "the only participant name the holder may publish as (empty: any)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token works")
	keyFile := fs.String("token-key-file", "", "key file that signs tokens (the gateway's --token-key-file)")
	newKey := fs.String("new-key", "", "write a new random key to this file (mode 0600; never overwrites) and exit")
	base := fs.String("url", "", "the gateway's base URL, e.g. https://hub.example.com: print a ready link too")
	// A token's room and name are a grant, not this host's own room and
	// name (VIDHUB_ROOM, VIDHUB_NAME on a publisher's host): their own
	// variables, so a publisher's environment never narrows a token.
	fs.envVar("room", "VIDHUB_TOKEN_ROOM")
	fs.envVar("name", "VIDHUB_TOKEN_NAME")
	fs.envVar("url", "VIDHUB_WEB_URL")
	fs.retire("VIDHUB_URL", "url")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if *newKey != "" {
		if err := webtoken.NewKeyFile(*newKey); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "wrote a new token key to %s: start the gateway with --token-key-file %s\n", *newKey, *newKey)
		return nil
	}
	switch {
	case *keyFile == "":
		return usagef("token: --token-key-file is required (vidhub token --new-key FILE makes one)")
	case *room == "":
		return usagef(`token: --room is required (a room name, or "*" for every room)`)
	case !*view && !*publish && !*replay:
		return usagef("token: give --view, --publish, --replay or a mix")
	case *ttl <= 0:
		return usagef("token: --ttl %v must be positive", *ttl)
	}
	key, err := webtoken.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	exp := time.Now().Add(*ttl)
	tok, err := key.Sign(webtoken.Claims{Room: *room, View: *view, Publish: *publish, Replay: *replay, Name: *name, Expires: exp.Unix()})
	if err != nil {
		if errors.Is(err, webtoken.ErrBadClaims) {
			return usageError{err}
		}
		return err
	}
	fmt.Fprintln(env.stdout, tok)
	if *base != "" {
		link, err := tokenURL(*base, *room, *view, *publish, *name, tok)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, link)
	}
	fmt.Fprintf(env.stderr, "token for room %s (view %t, publish %t, replay %t%s) expires %s\n",
		*room, *view, *publish, *replay, map[bool]string{true: ", as " + *name, false: ""}[*name != ""], exp.UTC().Format(time.RFC3339))
	return nil
}

// tokenURL is the link a token's holder opens: the room page, its publish
// page when the token only publishes, or the directory for every room.
func tokenURL(base, room string, view, publish bool, name, tok string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("token: --url %q: want the gateway's base URL, like https://hub.example.com", base)
	}
	q := url.Values{}
	switch {
	case room == webtoken.AnyRoom:
		u.Path += "/"
	case publish && (!view || name != ""):
		u.Path += "/rooms/" + room + "/publish"
		if name != "" {
			q.Set("name", name)
		}
	default:
		u.Path += "/rooms/" + room
	}
	q.Set("token", tok)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
