package web

import (
	"context"
	"errors"
	"image/color"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// TestGatewayBehindAccessControl: on a broker that admits only the users
// of an access file, a gateway user with any_name (and view on every room,
// for its directory) publishes browsers' frames under the names they chose
// (and announces their presence),
// while a gateway user without it is refused by the broker as soon as a
// browser publishes under another name than the gateway's own.
func TestGatewayBehindAccessControl(t *testing.T) {
	f, err := access.Parse([]byte(`
users:
  - name: gateway
    password: gw-secret
    view: ["*"]
    publish: [lobby]
    any_name: true
  - name: narrow
    password: narrow-secret
    view: ["*"]
    publish: [lobby]
  - name: wall
    password: wall-secret
    view: ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	b := hubtest.Broker(t, broker.Config{Access: f})
	wall := hubtest.Connect(t, b.ClientURL(), nats.UserInfo("wall", "wall-secret"))
	ann, _ := protocol.NewAddress("lobby", "ann")
	frames := make(chan *nats.Msg, 64)
	if _, err := wall.ChanSubscribe(ann.FrameSubject(protocol.Hi), frames); err != nil {
		t.Fatal(err)
	}
	var pres presenceLog
	if _, err := wall.Subscribe(ann.PresenceSubject(), pres.add); err != nil {
		t.Fatal(err)
	}
	if err := wall.Flush(); err != nil {
		t.Fatal(err)
	}
	img := testJPEG(t, 64, 48, color.RGBA{20, 160, 40, 255})

	// gateway starts a gateway on a connection as user, and publishes
	// from a browser-like socket as ann until stop.
	gateway := func(user, password string) (*nats.Conn, func()) {
		errs := make(chan error, 16)
		nc := hubtest.Connect(t, b.ClientURL(), nats.UserInfo(user, password),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case errs <- err:
				default:
				}
			}))
		g, err := New(Config{Conn: nc, Listen: "127.0.0.1:0", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c := dial(t, ctx, g.URL(), "/ws/publish/lobby/ann?fps=10")
		if _, _, err := c.Read(ctx); err != nil { // hello
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for seq := uint64(1); ctx.Err() == nil; seq++ {
				msg := AppendWire(nil, WireFrame{Layer: protocol.Hi, Meta: protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: 64, Height: 48}, Body: img})
				if c.Write(ctx, websocket.MessageBinary, msg) != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
		return nc, func() {
			cancel()
			<-done
			_ = c.CloseNow()
			g.Close()
		}
	}

	t.Run("any_name", func(t *testing.T) {
		nc, stop := gateway("gateway", "gw-secret")
		defer stop()
		for range 3 {
			select {
			case m := <-frames:
				if _, err := protocol.ParseFrame(m.Header, m.Data); err != nil {
					t.Fatalf("frame from the gateway: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no frames of ann through the gateway: %v", nc.LastError())
			}
		}
		hubtest.Eventually(t, 15*time.Second, func() bool {
			p, _ := pres.last()
			return p.Role == protocol.RolePublisher
		}, "no presence of ann through the gateway")
		if err := nc.LastError(); err != nil {
			t.Errorf("the broker refused the gateway something: %v", err)
		}
	})

	t.Run("own name only", func(t *testing.T) {
		nc, stop := gateway("narrow", "narrow-secret")
		defer stop()
		hubtest.Eventually(t, 10*time.Second, func() bool {
			return errors.Is(nc.LastError(), nats.ErrPermissionViolation)
		}, "the broker let a gateway without any_name publish as ann")
	})
}
