package web

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// keyAskEvery is the least time between two keyframe requests the
// gateway sends one publisher for one layer, however many browsers ask:
// the publisher serves requests at most that often anyway
// (publisher.KeyRequestEvery), so more would only load the broker.
const keyAskEvery = 300 * time.Millisecond

// keyTarget is one publisher's layer.
type keyTarget struct {
	room, name string
	layer      protocol.Layer
}

// keyAsker sends keyframe requests to publishers, at most one per
// publisher and layer every keyAskEvery over all of the gateway's
// sockets. Callers pass checked names: the subject is built from them.
type keyAsker struct {
	nc *nats.Conn
	m  *metrics

	mu   sync.Mutex
	last map[keyTarget]time.Time
}

func newKeyAsker(nc *nats.Conn, m *metrics) *keyAsker {
	return &keyAsker{nc: nc, m: m, last: map[keyTarget]time.Time{}}
}

// ask requests a keyframe of layer l from publisher name in room, unless
// one went out less than keyAskEvery ago. It reports whether it sent one.
func (k *keyAsker) ask(room, name string, l protocol.Layer, now time.Time) bool {
	t := keyTarget{room, name, l}
	k.mu.Lock()
	if last, ok := k.last[t]; ok && now.Sub(last) < keyAskEvery {
		k.mu.Unlock()
		k.m.keyRequest("limited")
		return false
	}
	k.last[t] = now
	k.mu.Unlock()
	if err := k.nc.Publish(protocol.ParticipantKey(room, name), []byte(l)); err != nil {
		k.m.keyRequest("not_sent")
		return false
	}
	k.m.keyRequest("sent")
	return true
}

// prune forgets targets asked long enough ago that the next request goes
// out anyway: the map holds only the publishers asked lately.
func (k *keyAsker) prune(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for t, last := range k.last {
		if now.Sub(last) >= keyAskEvery {
			delete(k.last, t)
		}
	}
}
