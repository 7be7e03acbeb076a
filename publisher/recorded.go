package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/protocol"
)

// Publishing into a recording. While its room is recorded (package
// record), a publisher sends each frame of a recorded layer with a reply
// subject and a Nats-Msg-Id, and keeps it until the recording's broker
// acknowledges it. A frame not acknowledged within AckWait is sent again
// on its retry subject (protocol.RetrySubject), which the recording
// stores under the frame's own subject and no live viewer hears: a
// cluster that loses the recording's leader, or a publisher that loses
// its broker, costs the recording no frame. Live viewers are never sent
// a frame twice.
const (
	// RecordCheckEvery is how often a publisher asks its broker whether
	// its room is recorded, and which layers.
	RecordCheckEvery = 2 * time.Second
	// AckWait is how long a recorded frame waits for its acknowledgement
	// before it is sent again.
	AckWait = time.Second
	// DrainWait is how long a publisher that stops waits for the
	// recording to acknowledge its last frames.
	DrainWait = 5 * time.Second
	// MaxUnackedAge and maxUnackedBytes bound what a publisher keeps for
	// a recording that does not answer: past either, the oldest frame
	// is given up (Stats.RecordLost).
	MaxUnackedAge   = time.Minute
	maxUnackedBytes = 64 << 20
	retryTick       = 200 * time.Millisecond
)

// recorder follows whether the publisher's room is recorded and keeps
// the recorded frames until they are acknowledged.
type recorder struct {
	nc     *nats.Conn
	log    *slog.Logger
	stream string
	addr   protocol.Address
	inbox  string // acknowledgements come on inbox.<token>

	layers atomic.Pointer[[]protocol.Layer] // recorded; nil or empty: none

	mu      sync.Mutex
	next    uint64 // the last token given
	byToken map[uint64]*unacked
	queue   []*unacked // oldest first; acknowledged ones leave from the front
	bytes   int
	lastAck time.Time

	acked, resent, lost, refused atomic.Uint64
	refusedLog, lostLog          rate.Sometimes
}

// unacked is a recorded frame waiting for its acknowledgement.
type unacked struct {
	token  uint64
	msg    nats.Msg // on the frame subject
	at     time.Time
	sent   time.Time // last sent; zero: never (the broker was unreachable)
	done   bool
	resent bool
}

func newRecorder(nc *nats.Conn, addr protocol.Address, log *slog.Logger) *recorder {
	return &recorder{
		nc: nc, log: log, addr: addr, stream: protocol.RecordingStream(addr.Room()), inbox: nc.NewRespInbox(),
		byToken:    map[uint64]*unacked{},
		refusedLog: rate.Sometimes{Interval: time.Minute}, lostLog: rate.Sometimes{Interval: 10 * time.Second},
	}
}

// recorded reports whether layer l is recorded.
func (r *recorder) recorded(l protocol.Layer) bool {
	if r == nil {
		return false
	}
	ls := r.layers.Load()
	return ls != nil && slices.Contains(*ls, l)
}

// track prepares msg, a frame of layer l captured at at, for a recording
// of l: it gets a reply subject and a Nats-Msg-Id of its own, and a copy
// is kept until acknowledged. Without a recording of l it does nothing.
// sent says whether msg is being published now (false: the broker is
// unreachable; it goes when it is back).
func (r *recorder) track(msg *nats.Msg, l protocol.Layer, at time.Time, sent bool) {
	if !r.recorded(l) {
		return
	}
	h := make(nats.Header, len(msg.Header)+1)
	for k, v := range msg.Header {
		h[k] = slices.Clone(v)
	}
	h.Set(nats.MsgIdHdr, r.addr.Participant()+"."+string(l)+"."+strconv.FormatInt(at.UnixNano(), 10)+"."+h.Get(protocol.HeaderSeq))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	u := &unacked{token: r.next, msg: nats.Msg{Subject: msg.Subject, Header: h, Data: bytes.Clone(msg.Data)}, at: at}
	if sent {
		u.sent = time.Now()
	}
	r.byToken[u.token] = u
	r.queue = append(r.queue, u)
	r.bytes += len(u.msg.Data)
	msg.Header, msg.Reply = h, r.inbox+"."+strconv.FormatUint(u.token, 10)
	r.trim(at)
}

// trim gives up the oldest frames past MaxUnackedAge or maxUnackedBytes.
func (r *recorder) trim(now time.Time) {
	lost := 0
	for len(r.queue) > 0 {
		u := r.queue[0]
		if !u.done && now.Sub(u.at) <= MaxUnackedAge && r.bytes <= maxUnackedBytes {
			break
		}
		r.queue = r.queue[1:]
		if !u.done {
			delete(r.byToken, u.token)
			r.bytes -= len(u.msg.Data)
			lost++
		}
	}
	if lost > 0 {
		r.lost.Add(uint64(lost))
		r.lostLog.Do(func() {
			r.log.Warn("the recording acknowledged no frame for too long: giving the oldest up",
				"lost", r.lost.Load(), "kept", len(r.byToken), "max_age", MaxUnackedAge)
		})
	}
}

// onAck is the NATS callback on acknowledgements.
func (r *recorder) onAck(m *nats.Msg) {
	token, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil || len(m.Data) == 0 {
		// Not an acknowledgement: a status such as 503, no responders
		// (the recording has no leader to take the frame just now).
		return
	}
	if bytes.Contains(m.Data, []byte(`"error"`)) {
		// The recording refused the frame, for good (a stream that
		// takes no more, a subject it does not keep): sending it again
		// would be refused too.
		r.refused.Add(1)
		r.refusedLog.Do(func() {
			r.log.Warn("the recording refused a frame", "reply", string(m.Data))
		})
	} else {
		r.acked.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastAck = time.Now()
	if u, ok := r.byToken[token]; ok {
		u.done = true
		delete(r.byToken, token)
		r.bytes -= len(u.msg.Data)
	}
	for len(r.queue) > 0 && r.queue[0].done {
		r.queue = r.queue[1:]
	}
}

// run checks every RecordCheckEvery whether the room is recorded, and
// every retryTick sends again what waits too long for its
// acknowledgement, until ctx is done. A question that goes unanswered
// (a broker that does not let this user ask, say) is asked less and less
// often, down to once a minute.
func (r *recorder) run(ctx context.Context) {
	every := RecordCheckEvery
	check := time.NewTimer(0)
	defer check.Stop()
	retry := time.NewTicker(retryTick)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if r.check() {
				every = RecordCheckEvery
			} else {
				every = min(2*every, time.Minute)
			}
			check.Reset(every)
		case <-retry.C:
			r.retry(time.Now())
		}
	}
}

// drain waits, up to timeout, for the recording to acknowledge every frame
// kept for it, sending again what needs to be: a publisher that stops
// leaves nothing of its last moments behind. It reports how many frames
// are still unacknowledged.
func (r *recorder) drain(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(retryTick)
	defer tick.Stop()
	for {
		r.mu.Lock()
		n := len(r.byToken)
		r.mu.Unlock()
		if n == 0 || !time.Now().Before(deadline) {
			return n
		}
		<-tick.C
		r.retry(time.Now())
	}
}

// retry sends again the frames that wait longer than AckWait: all of
// them once the broker acknowledges frames again (in order, so that they
// reach the recording close together), else only the oldest, as a probe.
func (r *recorder) retry(now time.Time) {
	if !r.nc.IsConnected() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trim(now)
	var due []*unacked
	for _, u := range r.queue {
		if !u.done && now.Sub(u.sent) > AckWait {
			due = append(due, u)
		}
	}
	if len(due) == 0 {
		return
	}
	if !r.lastAck.After(due[0].sent) {
		due = due[:1] // nothing answered since: probe with the oldest
	}
	for _, u := range due {
		m := nats.Msg{Subject: protocol.RetrySubject(u.msg.Subject), Reply: r.inbox + "." + strconv.FormatUint(u.token, 10),
			Header: u.msg.Header, Data: u.msg.Data}
		if err := r.nc.PublishMsg(&m); err != nil {
			return
		}
		u.sent = now
		if !u.resent {
			u.resent = true
			r.resent.Add(1)
		}
	}
}

// streamInfo is what a publisher reads of JetStream's stream info.
type streamInfo struct {
	Config struct {
		Subjects []string `json:"subjects"`
	} `json:"config"`
	Error *struct {
		Code    int    `json:"code"`
		ErrCode int    `json:"err_code"`
		Desc    string `json:"description"`
	} `json:"error"`
}

// errStreamNotFound is JetStream's error code for a stream that does not
// exist (nats-server's errors.json, JSStreamNotFoundErr).
const errStreamNotFound = 10059

// check asks the broker whether the room is recorded, and which of the
// publisher's layers: those whose frame subject and retry subject the
// recording's stream both keeps. Only a clear answer changes what is
// known: while a cluster elects the stream's leader, the question may go
// unanswered. It reports whether the broker answered.
func (r *recorder) check() bool {
	resp, err := r.nc.Request(protocol.JSAPIPrefix+"STREAM.INFO."+r.stream, nil, 2*time.Second)
	var si streamInfo
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		r.set(nil) // no JetStream: nothing is recorded
		return true
	case err != nil:
		return false
	case json.Unmarshal(resp.Data, &si) != nil:
		return false
	case si.Error != nil && si.Error.ErrCode == errStreamNotFound:
		r.set(nil)
		return true
	case si.Error != nil:
		return true
	}
	var ls []protocol.Layer
	for _, l := range layerOrder {
		subj := r.addr.FrameSubject(l)
		if keeps(si.Config.Subjects, subj) && keeps(si.Config.Subjects, protocol.RetrySubject(subj)) {
			ls = append(ls, l)
		}
	}
	r.set(ls)
	return true
}

// set records which layers are recorded, and logs a change.
func (r *recorder) set(ls []protocol.Layer) {
	old := r.layers.Swap(&ls)
	if old == nil && len(ls) == 0 || old != nil && slices.Equal(*old, ls) {
		return
	}
	if len(ls) > 0 {
		r.log.Info("the room is recorded: publishing its recorded layers with acknowledgements", "layers", ls, "stream", r.stream)
		return
	}
	r.log.Info("the room is no longer recorded", "stream", r.stream)
	r.mu.Lock()
	clear(r.byToken)
	r.queue, r.bytes = nil, 0
	r.mu.Unlock()
}

// keeps reports whether one of the subject filters matches subject.
func keeps(filters []string, subject string) bool {
	return slices.ContainsFunc(filters, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
}

// RecordStats says how a publisher's recorded frames fared.
type RecordStats struct {
	// Layers are the layers the room's recording keeps of this publisher.
	Layers []protocol.Layer `json:"layers,omitempty"`
	// Acked frames were acknowledged by the recording; Resent were sent
	// again (on the retry subject); Unacked wait for their
	// acknowledgement now.
	Acked, Resent uint64
	Unacked       int
	// Lost were given up after MaxUnackedAge; Refused were refused by
	// the recording.
	Lost, Refused uint64
}

// stats returns the recorder's counters.
func (r *recorder) stats() RecordStats {
	if r == nil {
		return RecordStats{}
	}
	var st RecordStats
	if ls := r.layers.Load(); ls != nil {
		st.Layers = slices.Clone(*ls)
	}
	r.mu.Lock()
	st.Unacked = len(r.byToken)
	r.mu.Unlock()
	st.Acked, st.Resent, st.Lost, st.Refused = r.acked.Load(), r.resent.Load(), r.lost.Load(), r.refused.Load()
	return st
}
