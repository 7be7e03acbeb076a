package web

import (
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// heardWindow is how long a participant's name stays taken after its
// last beat: the directory's own limit, protocol.MissedBeats beats.
const heardWindow = time.Duration(protocol.MissedBeats) * protocol.Beat

// Bounds of heardNames: beats of different starts kept per name, and
// names kept at all (a flood of names beyond it is not remembered).
const (
	maxStartsPerName = 4
	maxHeardNames    = 1 << 16
)

// heardNames remembers which names beat presence lately, with any role,
// and when each of their runs (Presence.Started) last beat. Unlike the
// directory it ignores leaving beats: anyone allowed to announce a name
// can send one, and a live participant keeps beating after a fake one,
// so only silence frees a name. The gateway tells its own beats apart by
// their start (it knows when each of its sockets started).
type heardNames struct {
	mu    sync.Mutex
	names map[protocol.Address][]heardRun
}

// heardRun is one run of a participant: its start, and its last beat.
type heardRun struct {
	started, last time.Time
}

func newHeardNames() *heardNames {
	return &heardNames{names: map[protocol.Address][]heardRun{}}
}

// onPresence takes one presence message (protocol.AllPresence).
func (h *heardNames) onPresence(m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err != nil || !s.Presence {
		return
	}
	p, err := protocol.DecodePresence(m.Data)
	if err != nil || p.Leaving {
		return
	}
	a, err := protocol.NewAddress(s.Room(), s.Participant())
	if err != nil {
		return
	}
	h.note(a, p.Started, time.Now())
}

func (h *heardNames) note(a protocol.Address, started, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	runs, ok := h.names[a]
	if !ok && len(h.names) >= maxHeardNames {
		return
	}
	for i := range runs {
		if runs[i].started.Equal(started) {
			runs[i].last = now
			return
		}
	}
	if len(runs) >= maxStartsPerName {
		oldest := 0
		for i := range runs {
			if runs[i].last.Before(runs[oldest].last) {
				oldest = i
			}
		}
		runs = append(runs[:oldest], runs[oldest+1:]...)
	}
	h.names[a] = append(runs, heardRun{started: started, last: now})
}

// takenBy reports whether a beat for a came within heardWindow of now
// from a run that own does not claim (own reports whether this gateway
// started a socket at that time under a).
func (h *heardNames) takenBy(a protocol.Address, now time.Time, own func(started time.Time) bool) bool {
	h.mu.Lock()
	runs := append([]heardRun(nil), h.names[a]...)
	h.mu.Unlock()
	for _, r := range runs {
		if now.Sub(r.last) <= heardWindow && !own(r.started) {
			return true
		}
	}
	return false
}

// prune forgets runs silent for longer than heardWindow.
func (h *heardNames) prune(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a, runs := range h.names {
		kept := runs[:0]
		for _, r := range runs {
			if now.Sub(r.last) <= heardWindow {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(h.names, a)
		} else {
			h.names[a] = kept
		}
	}
}

// publishRefusal extracts the subject of a publish the broker refused
// from a permission violation's text ("... Permissions Violation for
// Publish to "vidhub.lobby.ann.hi""), or "".
func publishRefusal(err error) string {
	msg := err.Error()
	const marker = "publish to "
	i := strings.Index(strings.ToLower(msg), marker)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(msg[i+len(marker):], `"' `)
	if j := strings.IndexAny(rest, `"' `); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
