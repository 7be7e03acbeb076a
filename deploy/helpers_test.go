package deploy_test

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// repoRoot is the module root, where docker-compose.yml and the Makefile
// are.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// vidhubBin builds the static vidhub binary (CGO_ENABLED=0; the image
// holds the lite build, whose broker, health and rooms commands are the
// same); a test that needs it is skipped with -short.
func vidhubBin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the vidhub binary")
	}
	return hubtest.VidhubStatic(t)
}

// runCmd runs a command to its end within timeout (see hubtest.Run) and
// returns its output and exit code (-1 when it timed out).
func runCmd(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := hubtest.Run(t, timeout, env, name, args...)
	return p.Stdout.String(), p.Stderr.String(), p.Code()
}

// viewer is a headless vidhub viewer of one room.
type viewer struct {
	nc   *nats.Conn
	room *subscriber.Room
}

// join joins room through urls (a comma-separated list), as name.
func join(t testing.TB, urls, room, name string, opts ...nats.Option) (*viewer, error) {
	t.Helper()
	return joinCodec(t, urls, room, name, "", opts...)
}

// joinCodec is join taking codec's layers only (empty: H.264 where a
// publisher sends it, as this full build decodes it).
func joinCodec(t testing.TB, urls, room, name string, codec protocol.Codec, opts ...nats.Option) (*viewer, error) {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{URL: urls, Name: "test viewer", Options: opts})
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	r, err := subscriber.Join(nc, subscriber.Config{Room: room, Name: name, Layer: subscriber.LayerHi, Codec: codec})
	if err != nil {
		return nil, err
	}
	t.Cleanup(r.Close)
	return &viewer{nc: nc, room: r}, nil
}

func mustJoin(t testing.TB, urls, room string, opts ...nats.Option) *viewer {
	t.Helper()
	v, err := join(t, urls, room, "", opts...)
	if err != nil {
		t.Fatalf("joining %s through %s: %v", room, urls, err)
	}
	return v
}

// mustJoinCodec is mustJoin taking codec's layers only.
func mustJoinCodec(t testing.TB, urls, room string, codec protocol.Codec) *viewer {
	t.Helper()
	v, err := joinCodec(t, urls, room, "", codec)
	if err != nil {
		t.Fatalf("joining %s through %s for %s: %v", room, urls, codec, err)
	}
	return v
}

// tile is the stats of participant's tile, if the viewer has one.
func (v *viewer) tile(participant string) (subscriber.TileStats, bool) {
	for _, s := range v.room.Stats() {
		if s.Participant == participant {
			return s, true
		}
	}
	return subscriber.TileStats{}, false
}

// frames counts participant's frames, and bad frames of the room.
func (v *viewer) frames(participant string) (n, bad uint64) {
	bad = v.room.Bad()
	for _, s := range v.room.Stats() {
		if s.Participant == participant {
			n = s.Frames
			bad += s.Bad
		}
	}
	return n, bad
}
