package record

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/protocol"
)

// Reorder is how long, in the recording's own time (when the broker
// stored each message), a Reader holds what it reads before handing it
// on in capture order. A frame that a publisher had to send again (its
// broker did not acknowledge it in time, for instance while a cluster
// elected a new leader for the recording) is stored after newer ones; it
// is stored well within Reorder of them, because a publisher resends as
// soon as the broker answers again.
const Reorder = 2 * time.Second

// consumerWait bounds one attempt to open a recording for reading;
// quietEnd is how long a Reader without Follow waits for a message the
// broker did not say was the last (each message says how many follow).
const (
	consumerWait = 5 * time.Second
	quietEnd     = 2 * time.Second
)

// MaxSpeed is the fastest a recording plays: Play's speed is above 0 and
// at most MaxSpeed.
const MaxSpeed = 16

// ValidSpeed reports whether a recording can play at speed: above 0, at
// most MaxSpeed.
func ValidSpeed(speed float64) bool { return speed > 0 && speed <= MaxSpeed }

// ReadConfig says what a Reader reads.
type ReadConfig struct {
	Room string
	// From is the moment to read from. What was recorded before it is
	// handed on first, flagged Before: per subject, from the last keyframe
	// at or before From (a JPEG: the last frame; presence: the last beat),
	// so that a picture can be decoded at From.
	From time.Time
	// Subjects to read; empty means everything the recording keeps.
	Subjects []string
	// Follow keeps reading as the recording grows; otherwise Next
	// returns io.EOF at the recording's end.
	Follow bool
}

// Item is one message read from a recording.
type Item struct {
	Msg *nats.Msg
	// At is a frame's capture time; for anything else, when the broker
	// stored it.
	At time.Time
	// Frame is set for frames; Meta is then the frame's metadata.
	Frame bool
	Meta  protocol.FrameMeta
	// Before marks what leads into From: the GOP (or last frame, or last
	// beat) of a subject recorded before it.
	Before bool

	stored time.Time // when the broker stored it
	read   time.Time // when the Reader read it
	seq    uint64    // its sequence number in the stream
}

// Reader reads a room's recording from a moment on, in capture order per
// publisher: frames a publisher sent again after a broker's failover are
// put back in their place, and frames stored twice are dropped. A gap
// that remains (a publisher was offline) stays a gap. A Reader is not
// safe for concurrent use, but for Close.
type Reader struct {
	cfg   ReadConfig
	it    jetstream.MessagesContext
	msgs  chan jetstream.Msg // what the pull goroutine read
	errc  chan error         // why it stopped
	done  chan struct{}      // closed by Close
	close sync.Once
	quiet time.Time // when a message last came (not Follow: quietEnd of quiet is the end)

	pending itemHeap  // read, not yet handed on
	newest  time.Time // the latest store time read
	eof     bool      // the recording's end was read (not Follow)

	started bool                 // an item at or after From was handed on
	held    map[string][]Item    // by subject, before From
	order   []string             // subjects in the order first held
	last    map[string]time.Time // per frame subject, the capture time handed on last
	lastSeq map[string]uint64    // per frame subject, the stream sequence handed on last
	number  map[string]uint64    // per frame subject, the Vidhub-Seq handed on last
	ready   []Item               // to hand on, in order
	stats   ReadStats
}

// ReadStats counts what a Reader dropped or put back in order.
type ReadStats struct {
	// Reordered frames were stored before older frames of their subject
	// (frames sent again) and handed on after them.
	Reordered uint64
	// Dropped frames were stored twice, or reached the Reader too late
	// to be put in their place.
	Dropped uint64
}

// NewReader opens the recording of cfg.Room for reading from cfg.From.
func NewReader(ctx context.Context, nc *nats.Conn, cfg ReadConfig) (*Reader, error) {
	if _, err := Get(ctx, nc, cfg.Room); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	start := cfg.From.Add(-LookBack)
	var cons jetstream.Consumer
	for {
		// Right after a broker of a cluster is lost, a consumer can be
		// placed on it and never answer: ask again, elsewhere.
		actx, cancel := context.WithTimeout(ctx, consumerWait)
		cons, err = js.OrderedConsumer(actx, StreamName(cfg.Room), jetstream.OrderedConsumerConfig{
			FilterSubjects: cfg.Subjects,
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		})
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the recording of room %s: %w", cfg.Room, explain(err))
	}
	// One pipelined pull, not a Fetch per batch: each Fetch of an
	// ordered consumer makes it a new consumer on the broker.
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("reading the recording of room %s: %w", cfg.Room, explain(err))
	}
	r := &Reader{
		cfg: cfg, it: it, msgs: make(chan jetstream.Msg), errc: make(chan error, 1), done: make(chan struct{}),
		quiet: time.Now(),
		held:  map[string][]Item{}, last: map[string]time.Time{}, lastSeq: map[string]uint64{}, number: map[string]uint64{},
	}
	if ci := cons.CachedInfo(); !cfg.Follow && ci != nil && ci.NumPending == 0 {
		r.eof = true // nothing recorded from there on
	}
	go r.pull()
	return r, nil
}

// pull hands the messages of the recording to Next until Close.
func (r *Reader) pull() {
	for {
		m, err := r.it.Next()
		if err != nil {
			r.errc <- err
			return
		}
		select {
		case r.msgs <- m:
		case <-r.done:
			return
		}
	}
}

// Close stops reading and lets the broker forget the Reader's consumer.
func (r *Reader) Close() {
	r.close.Do(func() {
		close(r.done)
		r.it.Stop()
	})
}

// Stats returns what the Reader dropped and reordered so far.
func (r *Reader) Stats() ReadStats { return r.stats }

// Next returns the next item: first what leads into From (Before), then
// everything from From on, in capture order per subject. Without Follow
// it returns io.EOF after the recording's last message; with Follow it
// waits for more until ctx is done.
func (r *Reader) Next(ctx context.Context) (Item, error) {
	for {
		if len(r.ready) > 0 {
			it := r.ready[0]
			r.ready = r.ready[1:]
			return it, nil
		}
		if len(r.pending) > 0 {
			top := r.pending[0]
			if r.eof || r.next(top) || r.newest.Sub(top.stored) > Reorder || time.Since(top.read) > Reorder {
				r.take(heap.Pop(&r.pending).(Item))
				continue
			}
		}
		if r.eof {
			if r.flushHeld() {
				continue
			}
			return Item{}, io.EOF
		}
		wait := time.Second
		if len(r.pending) > 0 {
			wait = max(Reorder-time.Since(r.pending[0].read), 10*time.Millisecond)
		}
		if err := r.read(ctx, wait); err != nil {
			return Item{}, err
		}
	}
}

// read reads at most one message, waiting up to wait for it. Without
// Follow, quietEnd without a message is the recording's end.
func (r *Reader) read(ctx context.Context, wait time.Duration) error {
	if !r.cfg.Follow {
		wait = min(wait, time.Until(r.quiet.Add(quietEnd)))
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-r.errc:
		r.errc <- err // for the next call
		return fmt.Errorf("reading the recording of room %s: %w", r.cfg.Room, explain(err))
	case <-timer.C:
		if !r.cfg.Follow && time.Since(r.quiet) >= quietEnd {
			r.eof = true
		}
		return nil
	case m := <-r.msgs:
		r.quiet = time.Now()
		r.add(m)
		return nil
	}
}

// add takes one message off the stream.
func (r *Reader) add(m jetstream.Msg) {
	it := Item{Msg: &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}, read: time.Now()}
	md, err := m.Metadata()
	if err == nil {
		it.stored, it.seq = md.Timestamp, md.Sequence.Stream
		if !r.cfg.Follow && md.NumPending == 0 {
			r.eof = true
		}
	}
	if it.stored.After(r.newest) {
		r.newest = it.stored
	}
	it.At = it.stored
	if s, err := protocol.ParseSubject(it.Msg.Subject); err == nil && s.Frame() {
		if meta, err := protocol.ParseLayerFrame(s.Layer, it.Msg.Header, it.Msg.Data); err == nil {
			it.Frame, it.Meta, it.At = true, meta, meta.CaptureTime()
		}
	}
	heap.Push(&r.pending, it)
}

// next reports whether it can be handed on without waiting out Reorder:
// anything but a frame, the first frame of its subject, or the frame
// numbered next. A frame after a gap waits, in case the missing ones were
// sent again and are stored a little later.
func (r *Reader) next(it Item) bool {
	if !it.Frame {
		return true
	}
	n, ok := r.number[it.Msg.Subject]
	return !ok || (it.Meta.Seq != 0 && it.Meta.Seq == n+1)
}

// take hands on an item that has waited out Reorder, in capture order.
func (r *Reader) take(it Item) {
	subj := it.Msg.Subject
	if it.Frame {
		if last, ok := r.last[subj]; ok && !it.At.After(last) {
			r.stats.Dropped++ // stored twice, or too late for its place
			return
		}
		if it.seq < r.lastSeq[subj] {
			r.stats.Reordered++
		}
		r.last[subj], r.lastSeq[subj], r.number[subj] = it.At, max(it.seq, r.lastSeq[subj]), it.Meta.Seq
	}
	if it.At.Before(r.cfg.From) {
		r.hold(it)
		return
	}
	if r.started {
		// A subject whose lead-in was read after another's first item
		// from From on: its own lead-in goes first.
		if run := r.held[subj]; len(run) > 0 {
			r.ready = append(r.ready, run...)
			r.held[subj] = run[len(run):]
		}
	} else {
		r.flushHeld()
		r.started = true
	}
	r.ready = append(r.ready, it)
}

// hold keeps what leads into From: per subject, the run since the last
// keyframe (H.264), the last frame (JPEG) or the last beat (presence). A
// gap in an H.264 run empties it until the next keyframe.
func (r *Reader) hold(it Item) {
	subj := it.Msg.Subject
	run, seen := r.held[subj]
	if !seen {
		r.order = append(r.order, subj)
	}
	it.Before = true
	switch {
	case !it.Frame || it.Meta.Key:
		r.held[subj] = append(run[:0], it)
	case len(run) > 0 && (it.Meta.Seq == 0 || it.Meta.Seq == run[len(run)-1].Meta.Seq+1):
		r.held[subj] = append(run, it)
	default:
		r.held[subj] = run[:0]
	}
}

// flushHeld moves what was held to ready, subject by subject; it reports
// whether there was anything.
func (r *Reader) flushHeld() bool {
	any := false
	for _, subj := range r.order {
		if run := r.held[subj]; len(run) > 0 {
			r.ready = append(r.ready, run...)
			any = true
		}
	}
	clear(r.held)
	r.order = r.order[:0]
	return any
}

// itemHeap orders items by capture time, then by stream order.
type itemHeap []Item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if !h[i].At.Equal(h[j].At) {
		return h[i].At.Before(h[j].At)
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(Item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// playAhead is how far, in capture time, Play reads beyond the next item
// it hands on: publishers' frames reach a recording in capture order
// each, but out of order between publishers (one encodes or sends more
// slowly, or its broker answers late), and Play hands them on in capture
// order across the whole room. A frame that reaches the recording later
// than this behind another publisher's is handed on late, at once.
const playAhead = time.Second

// playBuffer is how many items Play's reading goroutine may have read
// that Play has not taken yet.
const playBuffer = 64

// Play hands each item of rd to deliver at its time: what leads into
// from at once, then everything else paced by capture time from from on,
// speed times as fast as it was recorded. It returns at the recording's
// end (nil), or when ctx is done or reading fails.
//
// Play reads on a goroutine of its own, so that reading, which waits on
// the broker, never delays an item that is due: the goroutine that
// hands items on only waits for the next one's time. Play calls deliver
// on the goroutine that called it, and returns only once its reading
// goroutine is done with rd.
func Play(ctx context.Context, rd *Reader, from time.Time, speed float64, deliver func(Item)) error {
	if !ValidSpeed(speed) {
		return fmt.Errorf("replay speed %v: use more than 0 and at most %d", speed, MaxSpeed)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // rd is the caller's again once Play returns
	defer cancel()
	items := make(chan Item, playBuffer)
	errc := make(chan error, 1)
	wg.Go(func() {
		defer close(items)
		for {
			it, err := rd.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errc <- err
				}
				return
			}
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	})
	var (
		h      itemHeap
		wall   time.Time // when the replay reached from
		newest time.Time // the latest capture time read
		end    bool      // the recording's end was read
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Take what was read until a second past the next item is known.
		in := items
		if end || (len(h) > 0 && newest.Sub(h[0].At) >= playAhead) {
			in = nil
		}
		var wake <-chan time.Time
		if len(h) > 0 {
			top := h[0]
			due := time.Now()
			if !top.Before {
				if wall.IsZero() {
					wall = due
				}
				due = wall.Add(time.Duration(float64(top.At.Sub(from)) / speed))
			}
			d := time.Until(due)
			if d <= 0 {
				heap.Pop(&h)
				deliver(top)
				continue
			}
			timer.Reset(d)
			wake = timer.C
		} else if end {
			select {
			case err := <-errc:
				return err
			default:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it, ok := <-in:
			if !ok {
				end = true
			} else {
				if it.At.After(newest) {
					newest = it.At
				}
				heap.Push(&h, it)
			}
		case <-wake:
		}
	}
}
