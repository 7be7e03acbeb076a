package publisher

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// Encode says which layers a publisher encodes.
type Encode string

// Encode modes.
const (
	// EncodeAll encodes every layer of every frame, watched or not: for
	// viewers that announce no presence, such as a stock "nats sub".
	EncodeAll Encode = "all"
	// EncodeWatched encodes a layer only while some participant's presence
	// says it views that layer: an idle publisher costs next to nothing.
	EncodeWatched Encode = "watched"
	// EncodeAuto encodes the H.264 layers always and the JPEG layers only
	// while watched: the default. With codec JPEG it is EncodeAll.
	EncodeAuto Encode = "auto"
)

// ParseEncode parses auto, all or watched.
func ParseEncode(s string) (Encode, error) {
	switch Encode(s) {
	case EncodeAll, EncodeWatched, EncodeAuto:
		return Encode(s), nil
	}
	return "", errBadEncode(s)
}

// interest follows a room's presence to know which layers anyone views.
type interest struct {
	mu       sync.Mutex
	views    map[string]watcher // participant -> what it views
	resumeAt time.Time          // the connection came back: beats restart
}

type watcher struct {
	views []protocol.Layer
	last  time.Time
}

func newInterest() *interest { return &interest{views: map[string]watcher{}} }

// onPresence is the NATS callback on the room's presence.
func (in *interest) onPresence(m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil {
		return
	}
	p, err := protocol.DecodePresence(m.Data)
	if err != nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	views := p.AllViews()
	if p.Leaving || len(views) == 0 {
		delete(in.views, s.Participant())
		return
	}
	in.views[s.Participant()] = watcher{views: views, last: time.Now()}
}

// resumed restarts the clock of every watcher: during an outage no beats
// arrive, which says nothing about who is watching.
func (in *interest) resumed(now time.Time) {
	in.mu.Lock()
	in.resumeAt = now
	in.mu.Unlock()
}

// watched reports whether anyone has viewed l within MissedBeats beats.
func (in *interest) watched(l protocol.Layer, now time.Time) bool {
	limit := time.Duration(protocol.MissedBeats) * protocol.Beat
	in.mu.Lock()
	defer in.mu.Unlock()
	for name, w := range in.views {
		last := w.last
		if in.resumeAt.After(last) {
			last = in.resumeAt
		}
		if now.Sub(last) > limit {
			delete(in.views, name)
			continue
		}
		if slices.Contains(w.views, l) {
			return true
		}
	}
	return false
}

func errBadEncode(s string) error {
	return fmt.Errorf("%w: encode %q: use auto, all or watched", ErrBadConfig, s)
}
