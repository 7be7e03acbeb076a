package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// idleLeafKbps is the most the edge profile's leaf link may carry, beyond
// presence, while nobody at the hub watches the edge camera (issue 13's
// target; broker/leaf_test.go holds the embedded brokers to the same).
const idleLeafKbps = 50

// edgeRoom and edgeCamera are the edge profile's camera in
// docker-compose.yml.
const edgeRoom, edgeCamera = "edge", "edge-1"

// leafCounters is what a broker's /leafz says of its leaf links: how
// many, and the messages and bytes (headers and payload) that crossed
// them, summed.
type leafCounters struct {
	Links                              int
	InMsgs, OutMsgs, InBytes, OutBytes int64
}

func (c leafCounters) String() string {
	return fmt.Sprintf("%d link(s), out %d msgs %d bytes, in %d msgs %d bytes", c.Links, c.OutMsgs, c.OutBytes, c.InMsgs, c.InBytes)
}

// leafz reads a broker's leaf counters from its monitoring.
func leafz(monitor string) (leafCounters, error) {
	code, body := httpGet(monitor + "/leafz")
	if code != http.StatusOK {
		return leafCounters{}, fmt.Errorf("%s/leafz: %d %s", monitor, code, body)
	}
	var lz struct {
		Leafs []struct {
			InMsgs   int64 `json:"in_msgs"`
			OutMsgs  int64 `json:"out_msgs"`
			InBytes  int64 `json:"in_bytes"`
			OutBytes int64 `json:"out_bytes"`
		} `json:"leafs"`
	}
	if err := json.Unmarshal([]byte(body), &lz); err != nil {
		return leafCounters{}, fmt.Errorf("%s/leafz: %w", monitor, err)
	}
	c := leafCounters{Links: len(lz.Leafs)}
	for _, l := range lz.Leafs {
		c.InMsgs += l.InMsgs
		c.OutMsgs += l.OutMsgs
		c.InBytes += l.InBytes
		c.OutBytes += l.OutBytes
	}
	return c, nil
}

func mustLeafz(t *testing.T, monitor string) leafCounters {
	t.Helper()
	c, err := leafz(monitor)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafWindow is the edge broker's leaf traffic over a window that lasts
// until until holds (a count of frames somewhere, so that the window is
// video time, not a sleep): the counters at both ends, and the rate of
// bytes both ways in kbit/s.
func leafWindow(t *testing.T, monitor string, until func() bool, what string) (from, to leafCounters, kbps float64) {
	t.Helper()
	from, t0 := mustLeafz(t, monitor), time.Now()
	hubtest.Eventually(t, 30*time.Second, until, "%s: the window did not close", what)
	to, d := mustLeafz(t, monitor), time.Since(t0)
	bytes := (to.OutBytes - from.OutBytes) + (to.InBytes - from.InBytes)
	return from, to, float64(bytes) * 8 / 1000 / d.Seconds()
}

// joinLayer joins room through url as a viewer of layer (a nameless one:
// it announces only what it watches).
func joinLayer(t *testing.T, url, room string, layer subscriber.LayerMode) *viewer {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "test viewer"})
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	r, err := subscriber.Join(nc, subscriber.Config{Room: room, Layer: layer})
	if err != nil {
		t.Fatalf("joining %s through %s: %v", room, url, err)
	}
	t.Cleanup(r.Close)
	return &viewer{nc: nc, room: r}
}

// checkEdgeProfile brings the edge profile's edge-broker and edge-camera
// up on the running default stack, whose broker is the hub, and checks
// the edge's promise through the published ports and the brokers'
// monitoring: the edge broker links to the hub as a leaf node; a hub
// viewer gets the edge camera's H.264; nobody watching at the hub, the
// leaf link carries next to nothing (a viewer at the edge watches lo all
// along, so the camera does encode and publish); when the hub viewer
// leaves, the link is quiet again.
func checkEdgeProfile(t *testing.T, s *stack) {
	t.Helper()
	hubMonitor := s.url("VIDHUB_MONITOR_PORT", "")
	edgeMonitor := s.url("VIDHUB_EDGE_MONITOR_PORT", "")
	hubURL, edgeURL := s.natsURL("VIDHUB_NATS_PORT"), s.natsURL("VIDHUB_EDGE_NATS_PORT")
	if c, err := leafz(hubMonitor); err != nil || c.Links != 0 {
		t.Fatalf("before the edge profile, the hub's /leafz says %v (%v); want no links", c, err)
	}

	start := time.Now()
	s.must(3*time.Minute, "--profile", "edge", "up", "-d", "edge-broker", "edge-camera")
	upReturned := time.Since(start)
	hubtest.Eventually(t, 60*time.Second, func() bool {
		h, err1 := leafz(hubMonitor)
		e, err2 := leafz(edgeMonitor)
		return err1 == nil && err2 == nil && h.Links == 1 && e.Links == 1
	}, "edge-broker did not link to the hub as a leaf node (hub %v, edge %v)",
		hubtest.Lazy(func() any { c, err := leafz(hubMonitor); return fmt.Sprint(c, err) }),
		hubtest.Lazy(func() any { c, err := leafz(edgeMonitor); return fmt.Sprint(c, err) }))
	linked := time.Since(start)

	// The edge camera's presence crosses to the hub, where someone asks
	// for it: a subscriber here, and the web gateway's directory, which
	// lists the camera once it has seen a frame (it announces itself as a
	// viewer of lo in the room until then: an --encode watched publisher
	// sends nothing unasked).
	nc := hubtest.Connect(t, hubURL)
	beats, err := nc.SubscribeSync(protocol.ParticipantPresence(edgeRoom, edgeCamera))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := beats.NextMsg(60 * time.Second); err != nil {
		t.Fatalf("no presence of %s/%s at the hub: %v", edgeRoom, edgeCamera, err)
	}
	heard := time.Since(start)
	_ = beats.Unsubscribe()
	hubtest.Eventually(t, 30*time.Second, func() bool { return slices.Contains(webRooms(s)[edgeRoom], edgeCamera) },
		"the web gateway's /api/rooms does not list %s/%s", edgeRoom, edgeCamera)
	listed := time.Since(start)

	// The edge services run like the others: read-only, no capabilities,
	// not root; the edge broker keeps no store and has no volume.
	for _, svc := range []string{"edge-broker", "edge-camera"} {
		out, _, _ := runCmd(t, time.Minute, nil, "docker", "inspect", "--format",
			"{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|{{.HostConfig.CapDrop}}|{{len .Mounts}}", s.container(svc))
		if got := strings.TrimSpace(out); got != "65532:65532|true|[ALL]|0" {
			t.Errorf("service %s runs as user|read-only|cap_drop|mounts %q, want 65532:65532|true|[ALL]|0", svc, got)
		}
	}

	// A viewer at the edge watches lo all along: the camera encodes and
	// publishes it, the edge broker carries it, the link must not. Its
	// frames are the clock of the idle windows.
	local := joinLayer(t, edgeURL, edgeRoom, subscriber.LayerLo)
	hubtest.Eventually(t, 60*time.Second, func() bool { n, _ := local.frames(edgeCamera); return n >= 10 },
		"the viewer at the edge got no frames of %s", edgeCamera)
	localFrames := func() uint64 { n, _ := local.frames(edgeCamera); return n }

	// Nobody at the hub watches. The web gateway asks for lo for a
	// moment when a publisher appears (it awaits the first frame for its
	// directory), so the link may carry some at first: wait for a quiet
	// window of 45 frames (3 s of the camera's 15 fps), for a minute.
	idle := func(what string) {
		t.Helper()
		var last string
		n := 0
		hubtest.Eventually(t, 90*time.Second, func() bool {
			n++
			f0 := localFrames()
			from, to, kbps := leafWindow(t, edgeMonitor, func() bool { return localFrames() >= f0+45 }, what)
			last = fmt.Sprintf("%.1f kbit/s (out %d msgs %d bytes, in %d msgs %d bytes)", kbps,
				to.OutMsgs-from.OutMsgs, to.OutBytes-from.OutBytes, to.InMsgs-from.InMsgs, to.InBytes-from.InBytes)
			t.Logf("%s, window %d: the edge's leaf link carried %s over 45 frames at the edge; edge /leafz now: %v", what, n, last, to)
			return kbps <= idleLeafKbps
		}, "%s: the leaf link never went quiet: last window %s, want at most %d kbit/s", what, hubtest.Lazy(func() any { return last }), idleLeafKbps)
	}
	idle("nobody at the hub watches")

	// A viewer at the hub, through the hub's published port: the edge
	// camera's H.264 crosses the link to it.
	joined := time.Now()
	remote := mustJoin(t, hubURL, edgeRoom)
	hubtest.Eventually(t, 30*time.Second, func() bool { n, _ := remote.frames(edgeCamera); return n >= 1 },
		"the viewer at the hub got no frames of %s over the leaf link", edgeCamera)
	firstFrame := time.Since(joined)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		ts, _ := remote.tile(edgeCamera)
		return ts.Keyframes > 0 && ts.Layer == protocol.H264 && strings.HasPrefix(ts.Codec, "avc1.42C0")
	}, "the hub viewer does not take %s's h264 layer (Constrained Baseline, a keyframe decoded): %+v",
		edgeCamera, hubtest.Lazy(func() any { ts, _ := remote.tile(edgeCamera); return ts }))
	f0, _ := remote.frames(edgeCamera)
	from, to, kbps := leafWindow(t, edgeMonitor, func() bool { n, _ := remote.frames(edgeCamera); return n >= f0+45 }, "watched")
	t.Logf("a viewer at the hub watches: the edge's leaf link carried %.1f kbit/s (out %d msgs %d bytes, in %d msgs %d bytes) over 45 frames at the hub; edge /leafz now: %v",
		kbps, to.OutMsgs-from.OutMsgs, to.OutBytes-from.OutBytes, to.InMsgs-from.InMsgs, to.InBytes-from.InBytes, to)
	// Every frame the hub viewer took crossed the link.
	if n := to.OutMsgs - from.OutMsgs; n < 45 || kbps <= idleLeafKbps {
		t.Errorf("a viewer at the hub took 45 frames, yet the edge sent %d messages over the leaf link, %.1f kbit/s", n, kbps)
	}
	if ts, _ := remote.tile(edgeCamera); ts.DecodeErrors != 0 || ts.CorruptShown != 0 || remote.room.Bad() != 0 {
		t.Errorf("the hub viewer: %d decode errors, %d corrupt pictures shown, %d bad frames of %s", ts.DecodeErrors, ts.CorruptShown, remote.room.Bad(), edgeCamera)
	}
	t.Logf("edge profile: compose up returned in %v; leaf link up %v after it began, %s/%s's presence at the hub after %v, in the web directory after %v; a hub viewer's first frame %v after it joined",
		upReturned.Round(time.Millisecond), linked.Round(time.Millisecond), edgeRoom, edgeCamera, heard.Round(time.Millisecond), listed.Round(time.Millisecond), firstFrame.Round(time.Millisecond))

	// The hub viewer leaves: the camera stops encoding what only it
	// watched, and the link is quiet again.
	remote.room.Close()
	remote.nc.Close()
	idle("the hub viewer left")
	waitHealthy(t, s, "edge-broker", "edge-camera")
}

// TestMakeUpProfiles: "make up PROFILE=..." starts the profiles asked for
// (several, space-separated), with broker in the cluster only for the
// cluster profile, and "make down" takes down every profile's services.
// A dry run (make -n): it needs no Docker.
func TestMakeUpProfiles(t *testing.T) {
	hubtest.NeedTools(t, "make")
	dry := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCmd(t, time.Minute, nil, "make", append([]string{"-n", "-C", repoRoot(t), "COMPOSE=compose", "IMAGE=vidhub:dry"}, args...)...)
		if code != 0 {
			t.Fatalf("make -n %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	for _, tc := range []struct {
		profile string
		want    string
	}{
		{"", "VIDHUB_IMAGE=vidhub:dry  compose  up -d"},
		{"edge", "VIDHUB_IMAGE=vidhub:dry  compose --profile edge up -d"},
		{"cluster", "VIDHUB_IMAGE=vidhub:dry VIDHUB_CLUSTER_ENV=deploy/compose/cluster.env compose --profile cluster up -d"},
		{"cluster edge", "VIDHUB_IMAGE=vidhub:dry VIDHUB_CLUSTER_ENV=deploy/compose/cluster.env compose --profile cluster --profile edge up -d"},
	} {
		out := dry("up", "PROFILE="+tc.profile)
		if !strings.Contains(out, tc.want+"\n") {
			t.Errorf("make up PROFILE=%q runs\n%s\nwant the line %q", tc.profile, out, tc.want)
		}
		if edge := strings.Contains(out, "/leafz"); edge != strings.Contains(tc.profile, "edge") {
			t.Errorf("make up PROFILE=%q: says where the edge broker is: %v\n%s", tc.profile, edge, out)
		}
	}
	if out := dry("down"); !strings.Contains(out, "compose --profile cluster --profile edge down") {
		t.Errorf("make down runs\n%s\nwant every profile's services down", out)
	}
}
