// Package record keeps rooms on JetStream: a recording is a stream that
// holds a room's frames and presence as they were published, headers and
// all, within limits of age and size that always apply (the oldest goes
// first), on any broker with JetStream (vidhub broker --store DIR, or a
// stock nats-server with jetstream enabled).
//
// A recording is named after its room (VIDHUB_<room>), so that there is
// at most one per room and any NATS tool sees it (nats stream ls).
// Starting one that exists updates its layers and limits.
package record

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/protocol"
)

// StreamPrefix starts the name of every recording's stream.
const StreamPrefix = protocol.RecordingPrefix

// Defaults of Config.
const (
	DefaultMaxAge   = 24 * time.Hour
	DefaultMaxBytes = 10 << 30 // 10 GiB
)

// DefaultLayers are what a recording keeps when Config.Layers is empty:
// the H.264 layers, a tenth of JPEG's bytes for the same picture.
var DefaultLayers = []protocol.Layer{protocol.H264, protocol.H264Lo}

// Errors, returned wrapped, so that callers can tell them apart.
var (
	// ErrBadConfig: the Config breaks a rule; the message says which.
	ErrBadConfig = errors.New("bad recording settings")
	// ErrNoJetStream: the broker has no JetStream to record on.
	ErrNoJetStream = errors.New("the broker has no JetStream: start it with vidhub broker --store DIR, or give nats-server a jetstream block (docs/deployment.md)")
	// ErrNotRecording: the room has no recording.
	ErrNotRecording = errors.New("the room is not being recorded")
)

// Config says what to record.
type Config struct {
	Room string
	// Layers to keep; empty means DefaultLayers. Presence is always kept,
	// so that a replay knows who was there.
	Layers []protocol.Layer
	// MaxAge and MaxBytes bound what the recording keeps: past either,
	// the oldest messages go. 0 means the defaults.
	MaxAge   time.Duration
	MaxBytes int64
	// Replicas is how many brokers of a cluster keep a copy; 0 means 1.
	Replicas int
}

// Info describes a recording.
type Info struct {
	Room     string           `json:"room"`
	Stream   string           `json:"stream"`
	Layers   []protocol.Layer `json:"layers"`
	MaxAge   time.Duration    `json:"max_age_ns"`
	MaxBytes int64            `json:"max_bytes"`
	Replicas int              `json:"replicas"`
	Msgs     uint64           `json:"messages"`
	Bytes    uint64           `json:"bytes"`
	First    time.Time        `json:"first"` // the oldest message kept; zero when empty
	Last     time.Time        `json:"last"`
}

// StreamName is the name of room's recording.
func StreamName(room string) string { return protocol.RecordingStream(room) }

// Check validates cfg and returns it with its defaults filled in.
func (cfg Config) Check() (Config, error) {
	if err := protocol.ValidRoom(cfg.Room); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if len(cfg.Layers) == 0 {
		cfg.Layers = DefaultLayers
	}
	seen := map[protocol.Layer]bool{}
	for _, l := range cfg.Layers {
		if _, err := protocol.ParseLayer(string(l)); err != nil {
			return cfg, fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
		if seen[l] {
			return cfg, fmt.Errorf("%w: layer %s is listed twice", ErrBadConfig, l)
		}
		seen[l] = true
	}
	switch {
	case cfg.MaxAge < 0:
		return cfg, fmt.Errorf("%w: max age %v: use a duration above 0 such as 24h (0 means %v)", ErrBadConfig, cfg.MaxAge, DefaultMaxAge)
	case cfg.MaxBytes < 0:
		return cfg, fmt.Errorf("%w: max bytes %d: use a size above 0 such as 10GB (0 means %d)", ErrBadConfig, cfg.MaxBytes, int64(DefaultMaxBytes))
	case cfg.Replicas < 0 || cfg.Replicas > 5:
		return cfg, fmt.Errorf("%w: %d replicas: use 1 to 5 (JetStream's limit), and no more than the cluster has brokers", ErrBadConfig, cfg.Replicas)
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	return cfg, nil
}

// Duplicates is how long a recording remembers the Nats-Msg-Id of each
// frame, so that a frame sent again is stored once: well past the time a
// cluster takes to elect a new leader, and a publisher to reconnect.
const Duplicates = 2 * time.Minute

// subjects are what a recording of room with layers stores: the layers,
// their frames sent again (protocol.RetrySubject) and presence.
func subjects(room string, layers []protocol.Layer) []string {
	out := make([]string, 0, len(layers)+2)
	for _, l := range layers {
		out = append(out, protocol.RoomFrames(room, l))
	}
	return append(out, protocol.RoomRetries(room), protocol.RoomPresence(room))
}

// Start starts recording cfg.Room, or updates the layers and limits of
// its recording, and returns it as the broker has it.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (Info, error) {
	cfg, err := cfg.Check()
	if err != nil {
		return Info{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Info{}, fmt.Errorf("recording room %s: %w", cfg.Room, err)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName(cfg.Room),
		Description: "vidhub recording of room " + cfg.Room,
		Subjects:    subjects(cfg.Room, cfg.Layers),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// A publisher sends a frame the recording did not acknowledge
		// again, on its retry subject: stored under the frame's own
		// subject, and once only (Nats-Msg-Id).
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      protocol.RoomRetries(cfg.Room),
			Destination: protocol.RoomPrefix(cfg.Room) + "{{wildcard(1)}}.{{wildcard(2)}}",
		},
		Duplicates: Duplicates,
	})
	if err != nil {
		return Info{}, fmt.Errorf("recording room %s: %w", cfg.Room, explain(err))
	}
	return info(s.CachedInfo())
}

// Stop ends the recording of room and deletes what it holds.
func Stop(ctx context.Context, nc *nats.Conn, room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := js.DeleteStream(ctx, StreamName(room)); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("room %s: %w", room, ErrNotRecording)
		}
		return fmt.Errorf("stopping the recording of room %s: %w", room, explain(err))
	}
	return nil
}

// Get returns the recording of room.
func Get(ctx context.Context, nc *nats.Conn, room string) (Info, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Info{}, err
	}
	s, err := js.Stream(ctx, StreamName(room))
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return Info{}, fmt.Errorf("room %s: %w", room, ErrNotRecording)
		}
		return Info{}, explain(err)
	}
	return info(s.CachedInfo())
}

// List returns every recording on the broker, by room.
func List(ctx context.Context, nc *nats.Conn) ([]Info, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	l := js.ListStreams(ctx, jetstream.WithStreamListSubject(protocol.Prefix+".>"))
	var out []Info
	for si := range l.Info() {
		if !strings.HasPrefix(si.Config.Name, StreamPrefix) {
			continue
		}
		if i, err := info(si); err == nil {
			out = append(out, i)
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("listing recordings: %w", explain(err))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}

// info reads a recording's stream info.
func info(si *jetstream.StreamInfo) (Info, error) {
	room := strings.TrimPrefix(si.Config.Name, StreamPrefix)
	i := Info{
		Room: room, Stream: si.Config.Name,
		MaxAge: si.Config.MaxAge, MaxBytes: si.Config.MaxBytes, Replicas: si.Config.Replicas,
		Msgs: si.State.Msgs, Bytes: si.State.Bytes,
	}
	if si.State.Msgs > 0 {
		i.First, i.Last = si.State.FirstTime, si.State.LastTime
	}
	for _, subj := range si.Config.Subjects {
		s, err := protocol.ParseSubject(strings.Replace(subj, "*", "x", 1))
		if err == nil && !s.Presence && s.Layer != "" {
			i.Layers = append(i.Layers, s.Layer)
		}
	}
	return i, nil
}

// JetStream API error codes that nats.go does not name (nats-server's
// errors.json): the server's storage is short, and replicas on a server
// that is not in a JetStream cluster.
const (
	errInsufficientResources jetstream.ErrorCode = 10023
	errReplicasNotSupported  jetstream.ErrorCode = 10074
)

// explain turns JetStream's errors into what to do about them.
func explain(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w (%w)", ErrNoJetStream, err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errInsufficientResources:
		return fmt.Errorf("%w: the broker's JetStream has not that much storage left; lower --max-bytes or give the broker more (jetstream max_file_store)", err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errReplicasNotSupported:
		return fmt.Errorf("%w: more replicas than this broker can keep: replicas need a JetStream cluster of that many brokers", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		// The broker answers a request it refuses with nothing: nats.go
		// tells only the connection's error handler.
		return fmt.Errorf("%w: JetStream did not answer; if the broker refused the request (\"Permissions Violation\" for $JS.API... in its log or this client's), the user lacks the replay or record right for the room: see docs/security.md", err)
	}
	return err
}
