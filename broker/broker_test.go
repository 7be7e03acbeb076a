package broker_test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

func TestStartDefaults(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	if !strings.HasPrefix(b.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q, want loopback", b.ClientURL())
	}
	if b.MaxPayload() != broker.DefaultMaxPayload {
		t.Errorf("MaxPayload = %d, want %d", b.MaxPayload(), broker.DefaultMaxPayload)
	}
	if b.MonitorURL() != "" {
		t.Errorf("monitoring on by default: %s", b.MonitorURL())
	}
	nc := hubtest.Connect(t, b.ClientURL())
	if got := nc.MaxPayload(); got != broker.DefaultMaxPayload {
		t.Errorf("client sees max payload %d", got)
	}
	// A message of 7 MB passes: JPEG frames of 4K video fit.
	sub, err := nc.SubscribeSync("big")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("big", make([]byte, 7<<20)); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || len(m.Data) != 7<<20 {
		t.Fatalf("big message: %v", err)
	}
}

func TestInProcessConnection(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	nc, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other := hubtest.Connect(t, b.ClientURL())
	sub, _ := other.SubscribeSync("x")
	other.Flush()
	if err := nc.Publish("x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("in-process message not delivered over TCP: %v", err)
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = broker.Start(broker.Config{Listen: l.Addr().String()})
	if !errors.Is(err, broker.ErrStart) || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Start on a taken port: %v; want ErrStart naming the address", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []broker.Config{
		{Listen: "nonsense"},
		{Listen: "127.0.0.1:99999"},
		{HTTP: "x:y"},
		{MaxPayload: -1},
		{ConfigFile: "/does/not/exist.conf"},
	} {
		if _, err := broker.Start(cfg); !errors.Is(err, broker.ErrStart) {
			t.Errorf("Start(%+v) = %v, want ErrStart", cfg, err)
		}
	}
}

func TestMonitoring(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{HTTP: "127.0.0.1:0"})
	if b.MonitorURL() == "" {
		t.Fatal("no monitoring URL")
	}
	resp, err := http.Get(b.MonitorURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
}

func TestConfigFile(t *testing.T) {
	port := hubtest.FreePort(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	err := os.WriteFile(conf, []byte("host: 127.0.0.1\nport: "+strconv.Itoa(port)+"\nmax_payload: 2MB\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b := hubtest.Broker(t, broker.Config{ConfigFile: conf})
	if want := "nats://127.0.0.1:" + strconv.Itoa(port); b.ClientURL() != want {
		t.Errorf("ClientURL = %s, want %s from the file", b.ClientURL(), want)
	}
	if b.MaxPayload() != 2<<20 {
		t.Errorf("MaxPayload = %d, want the file's 2MB", b.MaxPayload())
	}
	// Explicit settings override the file.
	b2 := hubtest.Broker(t, broker.Config{ConfigFile: conf, Listen: "127.0.0.1:0", MaxPayload: 3 << 20})
	if b2.MaxPayload() != 3<<20 || b2.ClientURL() == b.ClientURL() {
		t.Errorf("overrides ignored: %s %d", b2.ClientURL(), b2.MaxPayload())
	}
}

func TestCloseTwiceDisconnects(t *testing.T) {
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b.Close()
	b.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected by Close")
	}
}

func TestMaxPayloadAboveMaxPending(t *testing.T) {
	// The server refuses max_payload > max_pending; the broker raises the
	// latter instead of failing.
	b := hubtest.Broker(t, broker.Config{MaxPayload: 100 << 20})
	if b.MaxPayload() != 100<<20 {
		t.Fatalf("MaxPayload = %d", b.MaxPayload())
	}
}
