package hubtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/publisher"
)

// Publisher is a publisher.Publisher running in the test process.
type Publisher struct {
	*publisher.Publisher
	cfg    publisher.Config
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done

	mu   sync.Mutex
	seen bool // the test asked for Run's error
}

// Publish runs a publisher with cfg (as it is: the product's defaults
// for zero fields) on nc until Stop or the end of the test. At the end
// of the test, an error Run returned that the test did not look at (Stop
// or Err) fails it.
func Publish(t testing.TB, nc *nats.Conn, cfg publisher.Config) *Publisher {
	t.Helper()
	pub, err := publisher.New(nc, cfg)
	if err != nil {
		t.Fatalf("publisher %s/%s: %v", cfg.Room, cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{Publisher: pub, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = pub.Run(ctx)
	}()
	t.Cleanup(func() {
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(StopWait):
			t.Errorf("publisher %s/%s still running %v after it was stopped", cfg.Room, cfg.Name, StopWait)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err != nil && !p.seen {
			t.Errorf("publisher %s/%s: %v", cfg.Room, cfg.Name, p.err)
		}
	})
	return p
}

// Pattern is the tests' usual publisher: a 320x180 pattern at 20 fps as
// room/name (light enough for a loaded machine).
func Pattern(room, name string) publisher.Config {
	return publisher.Config{Room: room, Name: name, Source: "pattern", FPS: 20, Width: 320, Height: 180}
}

// PublishPattern runs Pattern(room, name) on its own connection to url,
// until Stop or the end of the test.
func PublishPattern(t testing.TB, url, room, name string) *Publisher {
	t.Helper()
	return Publish(t, Connect(t, url), Pattern(room, name))
}

// Done is closed once Run has returned.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err is what Run returned, once Done is closed (nil before).
func (p *Publisher) Err() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	p.mu.Lock()
	p.seen = true
	p.mu.Unlock()
	return p.err
}

// Stop ends Run, waits for it (at most StopWait) and returns its error.
// Safe to call more than once.
func (p *Publisher) Stop() error {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(StopWait):
		return fmt.Errorf("publisher %s/%s still running %v after it was stopped", p.cfg.Room, p.cfg.Name, StopWait)
	}
	return p.Err()
}

// PublishProcess runs "bin publish" of a 320x180 pattern at 20 fps as
// room/name into the broker at url, until the test ends; args come last,
// so they may change any of that (--size, --fps, --source) or add to it.
func PublishProcess(t testing.TB, cfg ProcConfig, bin, url, room, name string, args ...string) *Proc {
	t.Helper()
	return StartProc(t, cfg, bin, append([]string{"publish", "--nats", url, "--room", room, "--name", name,
		"--source", "pattern", "--size", "320x180", "--fps", "20"}, args...)...)
}
