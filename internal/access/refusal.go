package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// Right is one of the access file's rights in a room, named as its list
// is.
type Right string

// The rights.
const (
	RightView    Right = "view"
	RightPublish Right = "publish"
	RightReplay  Right = "replay"
	RightRecord  Right = "record"
)

// ErrNoRight is returned (wrapped) by JetStreamWatch.Err when the broker
// refused a JetStream request for want of a right.
var ErrNoRight = errors.New("not allowed")

// JetStreamWatch notices the broker refusing a connection's JetStream API
// requests. A refused request gets no answer: nats.go tells only the
// connection's error handler, and the request waits for its whole
// timeout. The watch ends the work at once instead, and says which right
// of the access file is missing.
type JetStreamWatch struct {
	nc         *nats.Conn
	right      Right
	room, user string
	prev       nats.ErrHandler
	cancel     context.CancelFunc

	mu      sync.Mutex
	refused error
}

// WatchJetStream returns a context derived from ctx that ends as soon as
// the broker refuses one of nc's JetStream API requests (a permissions
// violation on $JS.API.…), and the watch, whose Err explains that
// refusal as a missing right in room (room "" for listing, which is no
// room's). user names the NATS user in the explanation; "" says "this
// user". Stop the watch when the work is done: it gives nc its error
// handler back. Watch a connection once at a time, as a command does.
func WatchJetStream(ctx context.Context, nc *nats.Conn, right Right, room, user string) (context.Context, *JetStreamWatch) {
	ctx, cancel := context.WithCancel(ctx)
	w := &JetStreamWatch{nc: nc, right: right, room: room, user: user, prev: nc.ErrorHandler(), cancel: cancel}
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), JSAPIPrefix) {
			w.mu.Lock()
			if w.refused == nil {
				w.refused = err
			}
			w.mu.Unlock()
			cancel()
		}
		if w.prev != nil {
			w.prev(c, s, err)
		}
	})
	return ctx, w
}

// Stop gives the connection its error handler back and ends the context.
func (w *JetStreamWatch) Stop() {
	w.nc.SetErrorHandler(w.prev)
	w.cancel()
}

// Err returns err as it is, or, when the broker refused a JetStream
// request, an error wrapping ErrNoRight and the refusal that says which
// right to grant.
func (w *JetStreamWatch) Err(err error) error {
	w.mu.Lock()
	refused := w.refused
	w.mu.Unlock()
	if err == nil || refused == nil {
		return err
	}
	return fmt.Errorf("%w: %s (the broker refused it: %w)", ErrNoRight, advice(w.right, w.room, w.user), refused)
}

// advice says what to grant a user that lacks right in room (room "":
// listing recordings, which takes the record right in any room).
func advice(right Right, room, user string) string {
	who := "this user"
	if user != "" {
		who = "user " + user
	}
	if room == "" {
		return fmt.Sprintf("%s lacks the %s right: give it %s: rooms in the access file (docs/security.md)", who, right, right)
	}
	return fmt.Sprintf("%s lacks the %s right for room %s: add the room to its %s: list in the access file (docs/security.md)", who, right, room, right)
}
