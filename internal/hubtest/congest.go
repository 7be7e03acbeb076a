package hubtest

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// congestEvery is how often each fake viewer of Congest reports: faster
// than a real viewer (protocol.ReportEvery), so that a publisher hears
// fresh news soon after each step down and steps on without waiting.
const congestEvery = 50 * time.Millisecond

// Congestion is fake viewers of a participant's full H.264 layer (h264)
// whose receiver reports say a path too slow for anything it sends: a
// third of the frames lost, 16 kbit/s received. A publisher that adapts
// (publisher.Config.Adapt) steps down on them, rung by rung, to its
// lowest, half its size; once they stop it climbs back, provided real
// viewers report a clear path (without any report a publisher holds).
type Congestion struct {
	stop, done chan struct{}
	once       sync.Once
}

// Congest starts viewers fake viewers (named congest-1, congest-2, ...)
// that report congestion of room/participant's h264 layer on nc until
// Stop or the end of the test. A publisher follows the majority of its
// viewers: give more fake viewers than real ones on that layer (two
// against one real viewer, or the gateway, which reports as one).
func Congest(t testing.TB, nc *nats.Conn, room, participant string, viewers int) *Congestion {
	t.Helper()
	report, err := protocol.Report{Layer: protocol.H264,
		Interval: int(protocol.ReportEvery.Milliseconds()), Frames: 10, Missed: 5, Bytes: 1000}.Encode()
	if err != nil {
		t.Fatalf("a fake viewer's receiver report: %v", err)
	}
	subjects := make([]string, viewers) // each viewer's own
	for i := range subjects {
		subjects[i] = protocol.ParticipantReport(room, participant, "congest-"+strconv.Itoa(i+1))
	}
	c := &Congestion{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(congestEvery)
		defer tick.Stop()
		for {
			for _, subject := range subjects {
				if err := nc.Publish(subject, report); err != nil {
					t.Errorf("fake viewers of %s/%s: sending a receiver report: %v", room, participant, err)
					return
				}
			}
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(c.Stop)
	return c
}

// Stop silences the fake viewers and returns once the last report is
// sent; the publisher forgets them when their reports grow old (2 s).
// Safe to call more than once.
func (c *Congestion) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
