package hubtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/record"
)

// WaitRecorded waits until the recording of room spans d, from its oldest
// message to its newest.
func WaitRecorded(t testing.TB, nc *nats.Conn, room string, d time.Duration) {
	t.Helper()
	Eventually(t, d+20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		i, err := record.Get(ctx, nc, room)
		return err == nil && i.Msgs > 0 && i.Last.Sub(i.First) >= d
	}, "the recording of room %s does not span %v", room, d)
}
