package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/webtoken"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
)

// recordedHub is a hub whose broker has JetStream, a recording of room
// and a pattern publisher cam in it (H.264 where this build encodes it,
// else JPEG), recorded for at least span.
type recordedHub struct {
	*testHub
	pub   *hubtest.Publisher
	layer protocol.Layer // the small layer recorded: h264lo, or lo
}

const recFPS = 25

func startRecorded(t *testing.T, gcfg Config, room string, span time.Duration) *recordedHub {
	t.Helper()
	h := startHub(t, broker.Config{StoreDir: t.TempDir()}, gcfg)
	codec := publisher.DefaultCodec()
	rcfg := record.Config{Room: room}
	layer := protocol.H264Lo
	if codec != protocol.CodecH264 {
		rcfg.Layers, layer = []protocol.Layer{protocol.Hi, protocol.Lo}, protocol.Lo
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, h.nc, rcfg); err != nil {
		t.Fatal(err)
	}
	pub := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{
		Room: room, Name: "cam", Source: "pattern", FPS: recFPS, Width: 320, Height: 180, Codec: codec, Encode: publisher.EncodeAll})
	if span > 0 {
		hubtest.WaitRecorded(t, h.nc, room, span)
	}
	return &recordedHub{testHub: h, pub: pub, layer: layer}
}

// takeSmall is the control message of a page that takes cam on the
// recorded small layer only.
func (h *recordedHub) takeSmall() control {
	if h.layer == protocol.Lo {
		return control{Hi: []string{}}
	}
	no := false
	return control{Hi: []string{}, H264: []string{"cam"}, JPEG: &no}
}

// takeFull is the control message of a page that focuses cam.
func (h *recordedHub) takeFull() control {
	if h.layer == protocol.Lo {
		return control{Hi: []string{"cam"}}
	}
	return h264Only("cam")
}

// got is one message read from a socket, and when it came.
type got struct {
	f    WireFrame
	text []byte
	at   time.Time
}

// collect reads a socket's messages into a channel until it fails.
func collect(ctx context.Context, c *websocket.Conn) <-chan got {
	ch := make(chan got, 4096)
	go func() {
		defer close(ch)
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			g := got{at: time.Now()}
			if typ == websocket.MessageText {
				g.text = b
			} else if g.f, err = ParseWire(b); err != nil {
				return
			}
			ch <- g
		}
	}()
	return ch
}

// dialReplay opens a replaying socket and reads its hello.
func dialReplay(t *testing.T, ctx context.Context, base, path string) (*websocket.Conn, viewHello) {
	t.Helper()
	c := dial(t, ctx, base, path)
	_, b, err := c.Read(ctx)
	var hello viewHello
	if err != nil || json.Unmarshal(b, &hello) != nil || hello.Type != "hello" || hello.Replay == nil {
		t.Fatalf("%s: first message %q %v, want a hello with replay", path, b, err)
	}
	if hello.Viewer != "" {
		t.Errorf("a replaying socket is named %q: it must announce no one", hello.Viewer)
	}
	return c, hello
}

// TestRecordingAPI: /api/rooms/{room}/recording says whether a room is
// recorded, the window it keeps and its layers; a room without a
// recording, and a broker without JetStream, are a 404 with recording
// false and the reason.
func TestRecordingAPI(t *testing.T) {
	h := startHub(t, broker.Config{StoreDir: t.TempDir()}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, h.nc, record.Config{Room: "kept"}); err != nil {
		t.Fatal(err)
	}
	a, _ := protocol.NewAddress("kept", "cam")
	before := time.Now()
	for range 2 {
		b, _ := protocol.Presence{Role: protocol.RolePublisher, Started: before}.Encode()
		if err := h.nc.Publish(a.PresenceSubject(), b); err != nil {
			t.Fatal(err)
		}
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		i, err := record.Get(ctx, h.nc, "kept")
		return err == nil && i.Msgs == 2
	}, "the recording did not take the presence")

	var doc recordingDoc
	code, body := get(t, h.url+"/api/rooms/kept/recording")
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("recorded room: %d %s", code, body)
	}
	if !doc.Recording || !doc.Replay || doc.First == nil || doc.Last == nil || doc.Last.Before(*doc.First) ||
		doc.First.Before(before.Add(-time.Second)) || !slices.Equal(doc.Layers, record.DefaultLayers) {
		t.Errorf("recorded room: %s", body)
	}
	if !strings.Contains(body, `"first": "`+doc.First.Format(time.RFC3339Nano)) {
		t.Errorf("first is not RFC 3339 in UTC: %s", body)
	}

	for _, tc := range []struct {
		base, room, says string
	}{
		{h.url, "other", "room other is not recorded"},
		{startHub(t, broker.Config{}, Config{}).url, "kept", "no JetStream"},
	} {
		code, body := get(t, tc.base+"/api/rooms/"+tc.room+"/recording")
		var doc recordingDoc
		if code != 404 || json.Unmarshal([]byte(body), &doc) != nil || doc.Recording || !strings.Contains(doc.Reason, tc.says) {
			t.Errorf("%s: %d %s, want 404, recording false, saying %q", tc.says, code, body, tc.says)
		}
	}
	if code, body := get(t, h.url+"/api/rooms/a.b/recording"); code != 400 {
		t.Errorf("a bad room name: %d %s", code, body)
	}
}

// TestReplaySocket replays a recorded room on a viewing socket: frames
// come from the recording, the first of cam a keyframe captured at or
// before the moment asked for, then paced as they were recorded; the
// room state lists cam from the recorded presence. Focusing cam brings
// its full-size layer from a keyframe, served from the replay's own run
// (no keyframe request reaches the publisher). The replay subscribes to
// nothing live and announces no one. A live viewer of the same room
// meanwhile gets cam's newest frames, unbroken.
func TestReplaySocket(t *testing.T) {
	checkGoroutines(t)
	// Keyframes come every 2 s from the publisher's start: 3 s ago is
	// about mid-GOP, so the replay starts with a run before the moment.
	h := startRecorded(t, Config{}, "studio", 6*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	spy := hubtest.Connect(t, h.b.ClientURL())
	announced := make(chan string, 64)
	if _, err := spy.Subscribe(protocol.RoomPresence("studio"), func(m *nats.Msg) {
		if s, err := protocol.ParseSubject(m.Subject); err == nil && s.Participant() != "cam" {
			select {
			case announced <- s.Participant():
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = spy.Flush()
	keysBefore := h.pub.Stats().KeyRequests

	from := time.Now().Add(-3 * time.Second)
	path := "/ws/view/studio?from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&speed=1"
	rc, hello := dialReplay(t, ctx, h.url, path)
	if hello.Replay.From != from.UnixMilli() || hello.Replay.Speed != 1 {
		t.Errorf("hello says replay %+v, want from %d speed 1", *hello.Replay, from.UnixMilli())
	}
	sendJSON(t, ctx, rc, h.takeSmall())
	replayed := collect(ctx, rc)

	// The first frame of cam, then about two seconds of them.
	var frames []got
	listed := false
	deadline := time.After(30 * time.Second)
	for len(frames) == 0 || frames[len(frames)-1].at.Sub(frames[0].at) < 2500*time.Millisecond {
		select {
		case g, ok := <-replayed:
			if !ok {
				t.Fatalf("the replaying socket ended after %d frames", len(frames))
			}
			if g.text != nil {
				var st roomState
				if json.Unmarshal(g.text, &st) == nil && st.Type == "room" {
					for _, p := range st.Publishers {
						listed = listed || p.Name == "cam"
					}
				}
				continue
			}
			if g.f.Participant == "cam" && g.f.Layer == h.layer {
				frames = append(frames, g)
			}
		case <-deadline:
			t.Fatalf("%d frames of cam replayed in 30 s", len(frames))
		}
	}
	first := frames[0].f
	if !first.Meta.Key {
		t.Errorf("the replay starts with a delta (seq %d): a browser could not decode it", first.Meta.Seq)
	}
	if at := first.Meta.CaptureTime(); at.After(from) || at.Before(from.Add(-record.LookBack)) {
		t.Errorf("the first frame was captured at %v, %v from the moment asked: want at or before it, from the keyframe leading into it",
			at.Format(time.RFC3339Nano), at.Sub(from))
	}
	if !listed {
		t.Error("no room state of the replay lists cam: recorded presence makes the tiles")
	}
	var paced []got
	for i, g := range frames {
		if i > 0 && g.f.Meta.Seq != frames[i-1].f.Meta.Seq+1 {
			t.Errorf("replayed seq %d after %d: a gap", g.f.Meta.Seq, frames[i-1].f.Meta.Seq)
		}
		if g.f.Meta.CaptureTime().After(from.Add(200 * time.Millisecond)) {
			paced = append(paced, g)
		}
		if d := time.Since(g.f.Meta.CaptureTime()); d < 2*time.Second {
			t.Fatalf("replayed frame %d was captured %v ago: live, not from the recording", g.f.Meta.Seq, d)
		}
	}
	if len(paced) < recFPS {
		t.Fatalf("%d frames after the moment asked in %v", len(paced), frames[len(frames)-1].at.Sub(frames[0].at))
	}
	p0, p1 := paced[0], paced[len(paced)-1]
	video, wall := p1.f.Meta.CaptureTime().Sub(p0.f.Meta.CaptureTime()), p1.at.Sub(p0.at)
	t.Logf("replay: %d frames, the first %v before the moment; %v of video in %v", len(frames),
		from.Sub(first.Meta.CaptureTime()).Round(time.Millisecond), video.Round(time.Millisecond), wall.Round(time.Millisecond))
	if r := float64(video) / float64(wall); r < 0.75 || r > 1.33 {
		t.Errorf("%v of video came in %v: want about real time", video, wall)
	}

	// Focus cam: its full-size layer, from a keyframe, without asking
	// the publisher for one.
	sendJSON(t, ctx, rc, h.takeFull())
	full := protocol.Hi.As(h.layer.Codec())
	var fullFirst *WireFrame
	for fullFirst == nil {
		select {
		case g, ok := <-replayed:
			if !ok {
				t.Fatal("the replaying socket ended")
			}
			if g.text == nil && g.f.Layer == full {
				fullFirst = &g.f
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s frame 10 s after the focus", full)
		}
	}
	if !fullFirst.Meta.Key {
		t.Errorf("after the focus, %s starts with a delta", full)
	}
	if d := time.Since(fullFirst.Meta.CaptureTime()); d < 2*time.Second {
		t.Errorf("after the focus, a %s frame captured %v ago: live", full, d)
	}

	if n := h.pub.Stats().KeyRequests; n != keysBefore {
		t.Errorf("the publisher heard %d keyframe requests during the replay: a replay asks no one", n-keysBefore)
	}
	if n := metric(t, h.url, `vidhub_web_frames_in_total{layer="lo"}`) + metric(t, h.url, `vidhub_web_frames_in_total{layer="h264lo"}`) +
		metric(t, h.url, `vidhub_web_frames_in_total{layer="hi"}`) + metric(t, h.url, `vidhub_web_frames_in_total{layer="h264"}`); n != 0 {
		t.Errorf("the gateway took %v live frames with only a replay open: it subscribed", n)
	}
	select {
	case name := <-announced:
		t.Errorf("presence of %s heard while only a replay was open: a replay announces no one", name)
	default:
	}

	// A live viewer now: it gets the newest frames, unbroken, while the
	// replay goes on.
	lc, _ := dialViewer(t, ctx, h.url, "/ws/view/studio")
	sendJSON(t, ctx, lc, h.takeSmall())
	live := collect(ctx, lc)
	var lastLive, lastReplay WireFrame
	nLive, nReplay := 0, 0
	for end := time.After(3 * time.Second); nLive < 2*recFPS || nReplay < recFPS; {
		select {
		case g, ok := <-live:
			if !ok {
				t.Fatal("the live socket ended")
			}
			if g.text != nil || g.f.Layer != h.layer {
				continue
			}
			if nLive > 0 && g.f.Meta.Seq != lastLive.Meta.Seq+1 {
				t.Errorf("live seq %d after %d: a gap", g.f.Meta.Seq, lastLive.Meta.Seq)
			}
			if d := time.Since(g.f.Meta.CaptureTime()); nLive > 0 && d > time.Second {
				t.Errorf("a live frame captured %v ago", d)
			}
			lastLive = g.f
			nLive++
		case g, ok := <-replayed:
			if !ok {
				t.Fatal("the replaying socket ended")
			}
			if g.text == nil && g.f.Layer == full {
				if d := time.Since(g.f.Meta.CaptureTime()); d < 2*time.Second {
					t.Errorf("a replayed frame captured %v ago", d)
				}
				lastReplay = g.f
				nReplay++
			}
		case <-end:
			t.Fatalf("in 3 s: %d live frames, %d replayed", nLive, nReplay)
		}
	}
	t.Logf("live and replay side by side: %d live frames (last %v old), %d replayed (last %v old)",
		nLive, time.Since(lastLive.Meta.CaptureTime()).Round(time.Millisecond), nReplay, time.Since(lastReplay.Meta.CaptureTime()).Round(time.Millisecond))

	if n := metric(t, h.url, fmt.Sprintf(`vidhub_web_subscription_viewers{room="studio",layer=%q}`, h.layer)); n != 1 {
		t.Errorf("%v sockets on the live %s subscription, want the live viewer's alone", n, h.layer)
	}
	if n := metric(t, h.url, fmt.Sprintf(`vidhub_web_subscription_viewers{room="studio",layer=%q}`, full)); n != -1 {
		t.Errorf("%v sockets on a live %s subscription: the replay's focus subscribed", n, full)
	}
	if n := metric(t, h.url, "vidhub_web_replays"); n != 1 {
		t.Errorf("vidhub_web_replays %v, want 1", n)
	}
	_ = lc.Close(websocket.StatusNormalClosure, "")
	_ = rc.Close(websocket.StatusNormalClosure, "")
}

// TestReplayRefused: a viewing socket refuses replay parameters it
// cannot honour, before the upgrade, with what a good value looks like,
// and a replay of a room without a recording, or on a broker without
// JetStream, with why.
func TestReplayRefused(t *testing.T) {
	h := startHub(t, broker.Config{StoreDir: t.TempDir()}, Config{})
	bare := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, h.nc, record.Config{Room: "kept"}); err != nil {
		t.Fatal(err)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	for _, tc := range []struct {
		base, path string
		status     int
		says       string
	}{
		{h.url, "/ws/view/kept?from=yesterday", 400, "use a moment past, as a negative duration such as -30s"},
		{h.url, "/ws/view/kept?from=30s", 400, "a duration goes back from now, so it is negative"},
		{h.url, "/ws/view/kept?from=" + future, 400, "is in the future"},
		{h.url, "/ws/view/kept?from=-5s&speed=0", 400, "speed=\"0\": use a number above 0, at most 16"},
		{h.url, "/ws/view/kept?from=-5s&speed=-1", 400, "above 0, at most 16"},
		{h.url, "/ws/view/kept?from=-5s&speed=17", 400, "above 0, at most 16"},
		{h.url, "/ws/view/kept?from=-5s&speed=NaN", 400, "above 0, at most 16"},
		{h.url, "/ws/view/kept?from=-5s&speed=fast", 400, "above 0, at most 16"},
		{h.url, "/ws/view/kept?speed=2", 400, "speed=2 without from="},
		{h.url, "/ws/view/other?from=-5s", 404, "room other is not recorded"},
		{bare.url, "/ws/view/kept?from=-5s", 404, "no JetStream"},
	} {
		_, status, body := dialStatus(t, ctx, wsURL(tc.base, tc.path), nil)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.path, status, body, tc.status, tc.says)
		}
	}
	// A recording that keeps nothing yet replays from its start: the
	// socket opens, and the room is empty.
	c, hello := dialReplay(t, ctx, h.url, "/ws/view/kept?from=-1m&speed=2")
	if hello.Replay.Speed != 2 {
		t.Errorf("hello says speed %v", hello.Replay.Speed)
	}
	_, b, err := c.Read(ctx)
	var st roomState
	if err != nil || json.Unmarshal(b, &st) != nil || st.Type != "room" || len(st.Publishers) != 0 {
		t.Errorf("an empty recording's room state: %s %v", b, err)
	}
}

// TestReplayNeedsRight: with room tokens, replaying a room needs a token
// with the replay right for it. A view-only token gets the live room, a
// recording API that says it may not replay (the page hides its
// timeline), and a 403 with the reason at a replaying socket's upgrade.
func TestReplayNeedsRight(t *testing.T) {
	key, _ := tokenKey(t)
	h := startHub(t, broker.Config{StoreDir: t.TempDir()}, Config{Tokens: key})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, h.nc, record.Config{Room: "kept"}); err != nil {
		t.Fatal(err)
	}
	viewOnly := mint(t, key, webtoken.Claims{Room: "kept", View: true})
	replay := mint(t, key, webtoken.Claims{Room: "kept", View: true, Replay: true})
	otherRoom := mint(t, key, webtoken.Claims{Room: "hall", View: true, Replay: true})

	for _, tc := range []struct {
		tok    string
		replay bool
	}{{viewOnly, false}, {replay, true}} {
		code, body := get(t, h.url+"/api/rooms/kept/recording?token="+tc.tok)
		var doc recordingDoc
		if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || !doc.Recording || doc.Replay != tc.replay {
			t.Errorf("recording API with replay right %v: %d %s", tc.replay, code, body)
		}
		if !tc.replay && !strings.Contains(doc.Reason, "does not allow replaying room kept") {
			t.Errorf("the recording API does not say why the token may not replay: %s", body)
		}
	}
	for _, tc := range []struct {
		tok    string
		status int
		says   string
	}{
		{viewOnly, 403, "does not allow replaying room kept"},
		{otherRoom, 403, "for room hall, not kept"},
		{"", 401, "needs a room token"},
	} {
		_, status, body := dialStatus(t, ctx, wsURL(h.url, "/ws/view/kept?from=-5s&token="+tc.tok), nil)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("replay with %q: %d %q, want %d saying %q", tc.says, status, body, tc.status, tc.says)
		}
	}
	if _, status, body := dialStatus(t, ctx, wsURL(h.url, "/ws/view/kept?token="+viewOnly), nil); status != 0 {
		t.Errorf("a view-only token watching live: %d %s", status, body)
	}
	c, _ := dialReplay(t, ctx, h.url, "/ws/view/kept?from=-5s&token="+replay)
	_ = c.Close(websocket.StatusNormalClosure, "")
}
