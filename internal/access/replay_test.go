package access_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
	"github.com/vidhub/vidhub/subscriber"
)

// rightsFile has a user for each right, and one with every right of the
// replay and record kind in every room.
const rightsFile = `
users:
  - {name: admin, password: a, record: ["*"]}
  - {name: rec, password: r, record: [lobby]}
  - {name: cam, password: c, publish: [lobby, hall]}
  - {name: viewer, password: v, view: [lobby, hall]}
  - {name: replayer, password: p, replay: [lobby]}
  - {name: gateway, password: g, view: ["*"], replay: ["*"]}
`

// TestRecordingRightsSubjects: each right becomes exactly the JetStream
// API subjects its code paths use (TestRecordingRights shows they are
// enough), scoped to the room's stream; viewing gives none.
func TestRecordingRightsSubjects(t *testing.T) {
	f, err := access.Parse([]byte(rightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if access.StreamPrefix != record.StreamPrefix {
		t.Fatalf("access.StreamPrefix %q, record.StreamPrefix %q", access.StreamPrefix, record.StreamPrefix)
	}
	js := func(u access.User) []string {
		var out []string
		for _, s := range u.Permissions().Publish.Allow {
			if strings.HasPrefix(s, "$JS.") {
				out = append(out, s)
			}
		}
		return out
	}
	want := map[string][]string{
		"admin": {"$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.STREAM.DELETE.*", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.LIST"},
		"rec": {"$JS.API.STREAM.CREATE.VIDHUB_lobby", "$JS.API.STREAM.UPDATE.VIDHUB_lobby", "$JS.API.STREAM.DELETE.VIDHUB_lobby",
			"$JS.API.STREAM.INFO.VIDHUB_lobby", "$JS.API.STREAM.LIST"},
		"cam":    {"$JS.API.STREAM.INFO.VIDHUB_lobby", "$JS.API.STREAM.INFO.VIDHUB_hall"},
		"viewer": nil,
		"replayer": {"$JS.API.STREAM.INFO.VIDHUB_lobby", "$JS.API.CONSUMER.CREATE.VIDHUB_lobby.>",
			"$JS.API.CONSUMER.MSG.NEXT.VIDHUB_lobby.*", "$JS.API.CONSUMER.DELETE.VIDHUB_lobby.*"},
		"gateway": {"$JS.API.STREAM.INFO.*", "$JS.API.CONSUMER.CREATE.*.>", "$JS.API.CONSUMER.MSG.NEXT.*.*", "$JS.API.CONSUMER.DELETE.*.*"},
	}
	for _, u := range f.Users {
		if got := js(u); !slices.Equal(got, want[u.Name]) {
			t.Errorf("%s may publish %q on JetStream's API, want %q", u.Name, got, want[u.Name])
		}
		// Replies, JetStream's included, come on the inbox; nothing else
		// is subscribed for recordings.
		for _, s := range u.Permissions().Subscribe.Allow {
			if strings.HasPrefix(s, "$JS") {
				t.Errorf("%s may subscribe %s", u.Name, s)
			}
		}
	}
	conf := f.NATSConfig()
	for _, s := range slices.Concat(want["rec"], want["replayer"]) {
		if !strings.Contains(conf, fmt.Sprintf("%q", s)) {
			t.Errorf("the nats-server configuration lacks %s:\n%s", s, conf)
		}
	}
}

// TestRecordingRights runs recording, replay, export and snapshot as
// users of an access file, on the embedded broker and on a stock
// nats-server running the configuration vidhub prints: each works with
// its right, and without it is refused at once with an error that names
// the right to grant. Watching live gives no right to the recording,
// nor the replay right a right to watch live.
func TestRecordingRights(t *testing.T) {
	f, err := access.Parse([]byte(rightsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"embedded", "nats-server"} {
		t.Run(kind, func(t *testing.T) {
			var url string
			if kind == "embedded" {
				url = hubtest.Broker(t, broker.Config{Access: f, StoreDir: t.TempDir()}).ClientURL()
			} else {
				conf := filepath.Join(t.TempDir(), "nats.conf")
				body := fmt.Sprintf("max_payload: 8MB\njetstream { store_dir: %q }\n%s", t.TempDir(), f.NATSConfig())
				if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				url = hubtest.StartNatsServer(t, 0, "-c", conf).URL
			}
			checkRecordingRights(t, url)
		})
	}
}

// refusedWithin bounds a refusal: the watch ends the request as soon as
// the broker refuses it, not after the request's timeout.
const refusedWithin = 5 * time.Second

func checkRecordingRights(t *testing.T, url string) {
	conn := func(user string) *nats.Conn {
		return hubtest.Connect(t, url, nats.UserInfo(user, map[string]string{
			"admin": "a", "rec": "r", "cam": "c", "viewer": "v", "replayer": "p", "gateway": "g",
		}[user]))
	}
	// as runs do as user on a connection of its own, watched for
	// JetStream refusals as the commands are; it returns the watch's
	// error and checks a refusal is quick. When do succeeds, nothing it
	// did may have been refused, not even what nats.go does on the side
	// (an ordered consumer deletes the consumer it starts over from).
	as := func(user string, right access.Right, room string, do func(context.Context, *nats.Conn) error) error {
		t.Helper()
		nc := conn(user)
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wctx, w := access.WatchJetStream(ctx, nc, right, room, user)
		defer w.Stop()
		start := time.Now()
		err := w.Err(do(wctx, nc))
		if errors.Is(err, access.ErrNoRight) && time.Since(start) > refusedWithin {
			t.Errorf("%s: the refusal took %v", user, time.Since(start))
		}
		if err == nil {
			// The broker's refusals come before its answer to a flush,
			// and nats.go notes each before it reads the next message.
			if ferr := nc.Flush(); ferr != nil {
				return ferr
			}
			if le := nc.LastError(); errors.Is(le, nats.ErrPermissionViolation) {
				return fmt.Errorf("it worked, but the broker refused a part of it: %w", le)
			}
		}
		return err
	}
	refused := func(what string, err error, user string, right access.Right, room string) {
		t.Helper()
		want := fmt.Sprintf("user %s lacks the %s right for room %s: add the room to its %s: list", user, right, room, right)
		if !errors.Is(err, access.ErrNoRight) || !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s, %s in room %s: %v; want a refusal saying %q", user, what, room, err, want)
		}
	}

	// Recording: rec in lobby only; admin everywhere.
	h264 := media.H264Available()
	layers := []protocol.Layer{protocol.Lo}
	codec := protocol.CodecJPEG
	if h264 {
		layers, codec = []protocol.Layer{protocol.H264, protocol.Lo}, protocol.CodecH264
	}
	if err := as("rec", access.RightRecord, "lobby", func(ctx context.Context, nc *nats.Conn) error {
		_, err := record.Start(ctx, nc, record.Config{Room: "lobby", Layers: layers})
		return err
	}); err != nil {
		t.Fatalf("rec recording lobby: %v", err)
	}
	err := as("rec", access.RightRecord, "hall", func(ctx context.Context, nc *nats.Conn) error {
		_, err := record.Start(ctx, nc, record.Config{Room: "hall", Layers: layers})
		return err
	})
	refused("start", err, "rec", access.RightRecord, "hall")
	if err := as("admin", access.RightRecord, "hall", func(ctx context.Context, nc *nats.Conn) error {
		_, err := record.Start(ctx, nc, record.Config{Room: "hall", Layers: layers})
		return err
	}); err != nil {
		t.Fatalf("admin recording hall: %v", err)
	}
	err = as("rec", access.RightRecord, "hall", func(ctx context.Context, nc *nats.Conn) error { return record.Stop(ctx, nc, "hall") })
	refused("stop", err, "rec", access.RightRecord, "hall")
	if err := as("rec", access.RightRecord, "", func(ctx context.Context, nc *nats.Conn) error {
		l, err := record.List(ctx, nc)
		if err == nil && len(l) != 2 {
			err = fmt.Errorf("listed %+v, want lobby and hall", l)
		}
		return err
	}); err != nil {
		t.Errorf("rec listing the recordings: %v", err)
	}

	// A publisher may ask for its rooms' recordings' info, and no other's.
	cam := conn("cam")
	for _, room := range []string{"lobby", "hall"} {
		hubtest.Publish(t, cam, publisher.Config{Room: room, Name: "cam", Source: "pattern", FPS: 15, Width: 160, Height: 90,
			Codec: codec, KeyInt: time.Second, Encode: publisher.EncodeAll})
	}
	for _, room := range []string{"lobby", "hall", "secret"} {
		err := as("cam", access.RightPublish, room, func(ctx context.Context, nc *nats.Conn) error {
			m, err := nc.RequestWithContext(ctx, access.JSAPIPrefix+"STREAM.INFO."+record.StreamName(room), nil)
			if err == nil && !strings.Contains(string(m.Data), `"config"`) {
				err = fmt.Errorf("answer %s", m.Data)
			}
			return err
		})
		if room == "secret" {
			refused("stream info", err, "cam", access.RightPublish, room)
		} else if err != nil {
			t.Errorf("cam asking for the recording of %s: %v", room, err)
		}
	}
	admin := conn("admin")
	hubtest.WaitRecorded(t, admin, "lobby", 2*time.Second)
	hubtest.WaitRecorded(t, admin, "hall", 2*time.Second)
	from := time.Now().Add(-time.Second)

	// What a replay, an export and a snapshot of room do, as user.
	replay := func(room string) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error {
			r, err := subscriber.Join(nc, subscriber.Config{Room: room, From: from})
			if err != nil {
				return err
			}
			defer r.Close()
			for ctx.Err() == nil {
				if ts := r.Tiles(); len(ts) == 1 && ts[0].Stats().Frames >= 3 {
					return nil
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			return fmt.Errorf("no frames replayed: %w", ctx.Err())
		}
	}
	export := func(room string) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error {
			if !h264 {
				// Without an MP4 writer, export stops at the recording's
				// info: what the right must still allow or refuse.
				_, err := record.Get(ctx, nc, room)
				return err
			}
			_, err := record.Export(ctx, nc, record.ExportConfig{Room: room, Name: "cam", From: from, To: from.Add(500 * time.Millisecond),
				Out: filepath.Join(t.TempDir(), "clip.mp4")})
			return err
		}
	}
	snapshot := func(room string) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error {
			s, err := record.TakeSnapshot(ctx, nc, record.SnapshotConfig{Room: room, Name: "cam", Layer: protocol.Lo, At: from})
			if err == nil && len(s.JPEG) == 0 {
				err = errors.New("no picture")
			}
			return err
		}
	}

	// The viewer watches lobby live, but may not read its recording. A
	// replay (whose Join takes no context) is refused after its own
	// timeout, with a hint; the commands ask for the recording's info
	// first, under the watch, which is refused at once.
	live, err := subscriber.Join(conn("viewer"), subscriber.Config{Room: "lobby", Name: "viewer"})
	if err != nil {
		t.Fatalf("viewer watching lobby live: %v", err)
	}
	defer live.Close()
	hubtest.Eventually(t, 10*time.Second, func() bool { ts := live.Tiles(); return len(ts) == 1 && ts[0].Stats().Frames >= 3 },
		"the viewer sees nothing live")
	slowReplay := make(chan error, 1)
	go func() {
		_, err := subscriber.Join(conn("viewer"), subscriber.Config{Room: "lobby", From: from})
		slowReplay <- err
	}()
	for what, do := range map[string]func(string) func(context.Context, *nats.Conn) error{
		"info": func(room string) func(context.Context, *nats.Conn) error {
			return func(ctx context.Context, nc *nats.Conn) error { _, err := record.Get(ctx, nc, room); return err }
		},
		"export": export, "snapshot": snapshot,
	} {
		refused(what, as("viewer", access.RightReplay, "lobby", do("lobby")), "viewer", access.RightReplay, "lobby")
	}

	// The replayer reads lobby's recording, not hall's, and may not watch
	// lobby live nor stop its recording.
	for what, do := range map[string]func(string) func(context.Context, *nats.Conn) error{"replay": replay, "export": export, "snapshot": snapshot} {
		if err := as("replayer", access.RightReplay, "lobby", do("lobby")); err != nil {
			t.Errorf("replayer, %s of lobby: %v", what, err)
		}
		if what == "replay" {
			continue // hall's is below: Join takes no context
		}
		refused(what, as("replayer", access.RightReplay, "hall", do("hall")), "replayer", access.RightReplay, "hall")
	}
	if _, err := subscriber.Join(conn("replayer"), subscriber.Config{Room: "lobby", Name: "replayer"}); !errors.Is(err, subscriber.ErrNotAllowed) {
		t.Errorf("replayer watching lobby live: %v, want not allowed", err)
	}
	err = as("replayer", access.RightRecord, "lobby", func(ctx context.Context, nc *nats.Conn) error { return record.Stop(ctx, nc, "lobby") })
	refused("stop", err, "replayer", access.RightRecord, "lobby")

	// "*": the gateway replays every room.
	for _, room := range []string{"lobby", "hall"} {
		if err := as("gateway", access.RightReplay, room, replay(room)); err != nil {
			t.Errorf("gateway replaying %s: %v", room, err)
		}
	}

	// Stopping: rec stops lobby's recording.
	if err := as("rec", access.RightRecord, "lobby", func(ctx context.Context, nc *nats.Conn) error { return record.Stop(ctx, nc, "lobby") }); err != nil {
		t.Errorf("rec stopping lobby's recording: %v", err)
	}

	select {
	case err := <-slowReplay:
		if err == nil || !strings.Contains(err.Error(), "replay or record right") {
			t.Errorf("viewer replaying lobby: %v; want a timeout that says which right may be missing", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("viewer replaying lobby: no answer")
	}
}
