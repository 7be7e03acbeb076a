package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
)

// errUnhealthy marks a failed check: exit status 1, the reason on stderr.
var errUnhealthy = errors.New("unhealthy")

// runHealth checks that a vidhub service works, for a container's
// HEALTHCHECK (a scratch image has no shell or curl) or a monitoring
// script: HTTP endpoints answer 2xx, the broker takes a NATS connection,
// a publisher beats its presence. It exits 0 when every check passes.
func runHealth(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("health")
	urls := fs.String("url", "", "comma-separated HTTP URLs that must answer 2xx, e.g. http://127.0.0.1:8222/healthz (NATS monitoring) or http://127.0.0.1:8080/healthz (web)")
	presence := fs.String("presence", "", "ROOM/NAME of a participant that must be beating its presence (a publisher's liveness)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the checks may take in all")
	var cf clientFlags
	cf.register(fs)
	fs.envVar("url", "VIDHUB_HEALTH_URLS")
	fs.retire("VIDHUB_URL", "url")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *timeout <= 0 {
		return usagef("--timeout %v: give a positive duration such as 3s", *timeout)
	}
	var targets []string
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return usagef("--url %q: give an http:// or https:// URL such as http://127.0.0.1:8222/healthz", u)
		}
		targets = append(targets, u)
	}
	var who protocol.Address
	if *presence != "" {
		room, name, ok := strings.Cut(*presence, "/")
		if !ok {
			return usagef("--presence %q: give ROOM/NAME, e.g. lobby/cam1", *presence)
		}
		var err error
		if who, err = protocol.NewAddress(room, name); err != nil {
			return usageError{err}
		}
	}
	// With nothing else to check, check the local broker.
	checkNATS := set["nats"] || *presence != "" || len(targets) == 0
	if _, err := env.logger(cf.logLevel); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var errs []error
	for _, u := range targets {
		msg, err := checkHTTP(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(env.stdout, "ok: %s %s\n", u, msg)
	}
	if checkNATS {
		msg, err := checkBroker(ctx, cf, who, *presence != "")
		if err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(env.stdout, "ok: %s\n", msg)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", errUnhealthy, errors.Join(errs...))
	}
	return nil
}

// checkHTTP wants a 2xx answer from u.
func checkHTTP(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, err)
	}
	// Each check opens its own connection: nothing lingers afterwards.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s does not answer: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Status, nil
}

// checkBroker wants a NATS connection that completes a round trip and,
// when asked, a presence beat from who.
func checkBroker(ctx context.Context, cf clientFlags, who protocol.Address, wantPresence bool) (string, error) {
	deadline, _ := ctx.Deadline()
	ncfg := cf.config("vidhub health", nil)
	ncfg.Options = []nats.Option{nats.Timeout(max(time.Until(deadline), 100*time.Millisecond)), nats.NoReconnect()}
	nc, err := natsconn.Connect(ncfg)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	rtt, err := nc.RTT()
	if err != nil {
		return "", fmt.Errorf("broker at %s connected but did not answer a ping: %w", nc.ConnectedUrlRedacted(), err)
	}
	msg := fmt.Sprintf("broker %s answers (rtt %v)", nc.ConnectedUrlRedacted(), rtt.Round(time.Microsecond))
	if !wantPresence {
		return msg, nil
	}
	sub, err := nc.SubscribeSync(who.PresenceSubject())
	if err != nil {
		return "", fmt.Errorf("listening for %s/%s's presence: %w", who.Room(), who.Participant(), err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return "", fmt.Errorf("no presence from %s in room %s within the timeout (it beats every %v): is the publisher running? %w",
				who.Participant(), who.Room(), protocol.Beat, err)
		}
		p, err := protocol.DecodePresence(m.Data)
		if err != nil || p.Leaving {
			continue
		}
		return msg + fmt.Sprintf("; %s/%s is present as %s", who.Room(), who.Participant(), p.Role), nil
	}
}
