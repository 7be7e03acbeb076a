package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
)

// TestMetricsRoomNames: /metrics stays open, but on a gateway with a
// token key it names no room unless the request carries a valid token
// that may view every room; everyone else gets totals. An open gateway
// shows its rooms to everyone, as before.
func TestMetricsRoomNames(t *testing.T) {
	checkGoroutines(t)
	const room = "secret-room"
	perRoom := []string{
		`vidhub_web_viewers{room="secret-room"} 1`,
		`vidhub_web_publishers{room="secret-room"} 1`,
		`vidhub_web_subscription_viewers{room="secret-room",layer="lo"} 1`,
	}
	totals := []string{
		"vidhub_web_viewers 1",
		"vidhub_web_publishers 1",
		`vidhub_web_subscription_viewers{layer="hi"} 0`,
		`vidhub_web_subscription_viewers{layer="lo"} 1`,
	}
	key, _ := tokenKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A gateway, open or with tokens, with one viewer and one publisher
	// in the room.
	gateway := func(k *webtoken.Key) string {
		h := startHub(t, broker.Config{}, Config{Tokens: k})
		auth := ""
		if k != nil {
			auth = "?token=" + mint(t, k, webtoken.Claims{Room: room, View: true, Publish: true})
		}
		dial(t, ctx, h.url, "/ws/view/"+room+auth)
		pub := dial(t, ctx, h.url, "/ws/publish/"+room+"/ann"+auth)
		if _, _, err := pub.Read(ctx); err != nil { // hello: the socket is registered
			t.Fatal(err)
		}
		hubtest.Eventually(t, 10*time.Second, func() bool {
			return metric(t, h.url, `vidhub_web_websocket_clients{kind="view"}`) == 1 &&
				metric(t, h.url, `vidhub_web_websocket_clients{kind="publish"}`) == 1
		}, "the sockets never showed in /metrics")
		return h.url
	}
	open, closed := gateway(nil), gateway(key)

	every := mint(t, key, webtoken.Claims{Room: webtoken.AnyRoom, View: true})
	for _, tc := range []struct {
		name, base    string
		token, cookie string // in the query, in the cookie
		rooms         bool
	}{
		{"open gateway", open, "", "", true},
		{"tokens, none given", closed, "", "", false},
		{"tokens, the room's own token", closed, mint(t, key, webtoken.Claims{Room: room, View: true, Publish: true}), "", false},
		{"tokens, every room but publish only", closed, mint(t, key, webtoken.Claims{Room: webtoken.AnyRoom, Publish: true}), "", false},
		{"tokens, every room but expired", closed, mint(t, key, webtoken.Claims{Room: webtoken.AnyRoom, View: true, Expires: time.Now().Add(-time.Minute).Unix()}), "", false},
		{"tokens, garbage", closed, "garbage", "", false},
		{"tokens, every room in the query", closed, every, "", true},
		{"tokens, every room in the cookie", closed, "", every, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.base + "/metrics"
			if tc.token != "" {
				url += "?token=" + tc.token
			}
			resp, body := fetch(t, http.DefaultClient, url, tc.cookie)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
			}
			want, unwanted := totals, perRoom
			if tc.rooms {
				want, unwanted = perRoom, totals
			}
			for _, line := range want {
				if !strings.Contains(body, "\n"+line+"\n") {
					t.Errorf("/metrics lacks %q", line)
				}
			}
			for _, line := range unwanted {
				if strings.Contains(body, "\n"+line+"\n") {
					t.Errorf("/metrics has %q", line)
				}
			}
			if !tc.rooms && strings.Contains(body, room) {
				t.Errorf("/metrics names the room")
			}
			if t.Failed() {
				t.Logf("/metrics:\n%s", body)
			}
		})
	}
}
