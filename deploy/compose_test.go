package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// The image the compose tests build, once per test process, under a tag
// of their own; TestMain removes it.
var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageTag != "" {
		cmd := exec.Command("docker", "rmi", "-f", imageTag)
		cmd.Env = hubtest.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "removing test image %s: %v\n%s", imageTag, err, out)
		}
	}
	os.Exit(code)
}

// needDocker skips in -short mode and where Docker is not installed;
// Docker installed but not running is a failure.
func needDocker(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("brings up the compose stack in Docker")
	}
	hubtest.NeedTools(t, "docker")
	if out, errOut, code := runCmd(t, 30*time.Second, nil, "docker", "info", "--format", "{{.ServerVersion}}"); code != 0 {
		t.Fatalf("docker is installed but its engine does not answer: %s%s", out, errOut)
	}
	// Compose v2 (the docker plugin) when present, else Debian's v1.
	if _, _, code := runCmd(t, 30*time.Second, nil, "docker", "compose", "version"); code == 0 {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	t.Fatal("docker is installed but neither \"docker compose\" nor docker-compose is")
	return nil
}

// buildImage runs "make image" once, with a tag unique to this run.
func buildImage(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		tag := "vidhub-test-" + randHex(4) + ":test"
		dir, err := os.MkdirTemp("", "vidhub-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(dir)
		start := time.Now()
		out, errOut, code := runCmd(t, 10*time.Minute, nil, "make", "-C", repoRoot(t), "image", "IMAGE="+tag, "IMAGE_DIR="+dir)
		// Tagged even on a late failure: TestMain removes it.
		imageTag = tag
		if code != 0 {
			imageErr = fmt.Errorf("make image: exit %d\n%s%s", code, out, errOut)
			return
		}
		t.Logf("make image built %s in %v", tag, time.Since(start).Round(time.Millisecond))
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageTag
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stack is one compose project of a test.
type stack struct {
	t       *testing.T
	compose []string
	project string
	env     []string
	ports   map[string]int
}

// newStack prepares a compose project with a unique name, its own image
// and free host ports, and removes all of it when the test ends.
func newStack(t *testing.T) *stack {
	compose := needDocker(t)
	image := buildImage(t)
	s := &stack{t: t, compose: compose, project: "vidhubtest" + randHex(4), ports: map[string]int{}}
	s.env = []string{"VIDHUB_IMAGE=" + image, "COMPOSE_PROFILES=", "VIDHUB_NATS_URLS=", "VIDHUB_LOG_LEVEL=info", "VIDHUB_CLUSTER_ENV=", "VIDHUB_EDGE_HUB="}
	vars := []string{"VIDHUB_NATS_PORT", "VIDHUB_MONITOR_PORT", "VIDHUB_WEB_PORT", "VIDHUB_LEAF_PORT",
		"VIDHUB_NATS_PORT_2", "VIDHUB_MONITOR_PORT_2", "VIDHUB_NATS_PORT_3", "VIDHUB_MONITOR_PORT_3",
		"VIDHUB_EDGE_NATS_PORT", "VIDHUB_EDGE_MONITOR_PORT"}
	ports := hubtest.FreePorts(t, len(vars)) // ten different ports: two services never get the same
	for i, v := range vars {
		s.ports[v] = ports[i]
		s.env = append(s.env, v+"=127.0.0.1:"+strconv.Itoa(s.ports[v]))
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, errOut, _ := s.run(2*time.Minute, append(allProfiles(), "logs", "--no-color", "--tail", "60")...)
			t.Logf("compose logs:\n%s%s", out, errOut)
		}
		s.down()
	})
	return s
}

// clustered makes the stack's broker a member of the cluster profile's
// cluster, as "make up PROFILE=cluster" does.
func (s *stack) clustered() {
	for i, kv := range s.env {
		if strings.HasPrefix(kv, "VIDHUB_CLUSTER_ENV=") {
			s.env[i] = "VIDHUB_CLUSTER_ENV=deploy/compose/cluster.env"
		}
	}
}

// run runs a compose subcommand of the project.
func (s *stack) run(timeout time.Duration, args ...string) (string, string, int) {
	s.t.Helper()
	full := append(append(s.compose[1:], "-p", s.project, "-f", filepath.Join(repoRoot(s.t), "docker-compose.yml")), args...)
	return runCmd(s.t, timeout, s.env, s.compose[0], full...)
}

func (s *stack) must(timeout time.Duration, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.run(timeout, args...)
	if code != 0 {
		s.t.Fatalf("compose %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// allProfiles names every profile of docker-compose.yml, for the
// commands that must see all of the project's services (down, ps, logs).
func allProfiles() []string {
	return []string{"--profile", "cluster", "--profile", "edge"}
}

// down removes the project's containers and networks.
func (s *stack) down() {
	s.t.Helper()
	if out, errOut, code := s.run(3*time.Minute, append(allProfiles(), "down", "--remove-orphans", "--volumes", "--timeout", "5")...); code != 0 {
		s.t.Errorf("compose down: exit %d\n%s%s", code, out, errOut)
	}
}

// leftovers lists the project's containers and networks still in Docker.
func (s *stack) leftovers() []string {
	s.t.Helper()
	var left []string
	for _, what := range [][]string{{"ps", "-a"}, {"network", "ls"}, {"volume", "ls"}} {
		args := append(what, "-q", "--filter", "label=com.docker.compose.project="+s.project)
		out, errOut, code := runCmd(s.t, time.Minute, nil, "docker", args...)
		if code != 0 {
			s.t.Fatalf("docker %v: %s", args, errOut)
		}
		for _, id := range strings.Fields(out) {
			left = append(left, what[0]+" "+id)
		}
	}
	return left
}

func (s *stack) url(port string, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.ports[port]) + path
}

func (s *stack) natsURL(port string) string {
	return "nats://127.0.0.1:" + strconv.Itoa(s.ports[port])
}

// container is the ID of a service's container.
func (s *stack) container(service string) string {
	s.t.Helper()
	id := strings.TrimSpace(s.must(time.Minute, append(allProfiles(), "ps", "-q", service)...))
	if id == "" {
		s.t.Fatalf("service %s has no container", service)
	}
	return id
}

// health is a container's health status (healthy, starting, unhealthy).
func (s *stack) health(service string) string {
	out, _, _ := runCmd(s.t, time.Minute, nil, "docker", "inspect", "--format", "{{.State.Health.Status}}", s.container(service))
	return strings.TrimSpace(out)
}

func httpGet(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// checkFrames subscribes to a room's hi frames on nc and checks a few are
// complete vidhub frames: valid headers, a JPEG that decodes to the
// announced size. The demo publishers send JPEG only while a viewer asks
// for it: the caller has one in the room.
func checkFrames(t *testing.T, nc *nats.Conn, room string) {
	t.Helper()
	sub, err := nc.SubscribeSync(protocol.RoomFrames(room, protocol.Hi))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for range 3 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no JPEG frame in room %s: %v", room, err)
		}
		meta, err := protocol.ParseLayerFrame(protocol.Hi, m.Header, m.Data)
		if err != nil {
			t.Fatalf("room %s: not a vidhub JPEG frame: %v", room, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("room %s: the frame's JPEG does not decode: %v", room, err)
		}
		if b := img.Bounds(); b.Dx() != meta.Width || b.Dy() != meta.Height {
			t.Fatalf("room %s: JPEG of %dx%d, header says %dx%d", room, b.Dx(), b.Dy(), meta.Width, meta.Height)
		}
	}
}

// demoW and demoH are the demo publishers' picture size in
// docker-compose.yml.
const demoW, demoH = 640, 360

// checkH264Frames subscribes to a room's h264 layer on nc and checks
// what the demo publisher sends there: Content-Type video/h264, v2's
// headers, access units that pass CheckH264, the demo size, numbers
// without gaps, and a keyframe (with SPS and PPS) within two seconds'
// worth, whose codec string is Constrained Baseline.
func checkH264Frames(t *testing.T, nc *nats.Conn, room string) {
	t.Helper()
	sub, err := nc.SubscribeSync(protocol.RoomFrames(room, protocol.H264))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var last uint64
	for i := 0; ; i++ {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no H.264 frame in room %s (on %s): %v", room, protocol.RoomFrames(room, protocol.H264), err)
		}
		if ct := m.Header.Get(protocol.HeaderContentType); ct != protocol.ContentTypeH264 {
			t.Fatalf("room %s: frame on %s with Content-Type %q, want %q", room, m.Subject, ct, protocol.ContentTypeH264)
		}
		meta, err := protocol.ParseLayerFrame(protocol.H264, m.Header, m.Data)
		if err != nil {
			t.Fatalf("room %s: not a vidhub H.264 frame: %v", room, err)
		}
		if meta.Width != demoW || meta.Height != demoH {
			t.Fatalf("room %s: H.264 frame of %dx%d, want the demo's %dx%d", room, meta.Width, meta.Height, demoW, demoH)
		}
		if last != 0 && meta.Seq != last+1 {
			t.Errorf("room %s: H.264 frame %d after %d: the sequence has a gap", room, meta.Seq, last)
		}
		last = meta.Seq
		if meta.Key {
			if c, err := protocol.H264CodecString(m.Data); err != nil || !strings.HasPrefix(c, "avc1.42C0") {
				t.Errorf("room %s: keyframe's codec string %q (%v), want Constrained Baseline avc1.42C0xx", room, c, err)
			}
			return
		}
		// Two seconds between keyframes at the demo's 15 fps, and a
		// margin.
		if i > 45 {
			t.Fatalf("room %s: no H.264 keyframe in %d frames", room, i+1)
		}
	}
}

// roomsCommand runs "vidhub rooms --json" against url and returns room ->
// participants.
func roomsCommand(t *testing.T, url string) map[string][]string {
	t.Helper()
	out, errOut, code := runCmd(t, 30*time.Second, nil, vidhubBin(t), "rooms", "--json", "--nats", url)
	if code != 0 {
		t.Fatalf("vidhub rooms: exit %d: %s", code, errOut)
	}
	var rooms []protocol.RoomInfo
	if err := json.Unmarshal([]byte(out), &rooms); err != nil {
		t.Fatalf("vidhub rooms --json: %v\n%s", err, out)
	}
	got := map[string][]string{}
	for _, r := range rooms {
		for _, m := range r.Members {
			got[r.Room] = append(got[r.Room], m.Name)
		}
	}
	return got
}

// webRooms is the web gateway's directory: room -> participants.
func webRooms(s *stack) map[string][]string {
	code, body := httpGet(s.url("VIDHUB_WEB_PORT", "/api/rooms"))
	got := map[string][]string{}
	if code != http.StatusOK {
		return got
	}
	var rooms []protocol.RoomInfo
	if json.Unmarshal([]byte(body), &rooms) != nil {
		return got
	}
	for _, r := range rooms {
		for _, m := range r.Members {
			got[r.Room] = append(got[r.Room], m.Name)
		}
	}
	return got
}

func hasDemoRooms(rooms map[string][]string) bool {
	return slices.Contains(rooms["lobby"], "demo-1") && slices.Contains(rooms["studio"], "demo-2")
}

// upAndCheck brings the stack up and checks it from the host as a user
// would: web and monitoring answer, frames of both demo rooms arrive,
// vidhub rooms and the web directory list them, every service turns
// healthy. It returns how long the stack took to serve frames.
func upAndCheck(t *testing.T, s *stack, profileArgs ...string) time.Duration {
	t.Helper()
	start := time.Now()
	s.must(5*time.Minute, append(profileArgs, "up", "-d")...)
	hubtest.Eventually(t, 60*time.Second, func() bool {
		code, _ := httpGet(s.url("VIDHUB_WEB_PORT", "/healthz"))
		return code == http.StatusOK
	}, "the web gateway's /healthz does not answer 200 on the published port")
	if code, body := httpGet(s.url("VIDHUB_MONITOR_PORT", "/healthz")); code != http.StatusOK {
		t.Errorf("NATS monitoring /healthz: %d %s", code, body)
	}
	if code, body := httpGet(s.url("VIDHUB_WEB_PORT", "/")); code != http.StatusOK || !strings.Contains(strings.ToLower(body), "<html") {
		t.Errorf("the web page at / is %d, not a page", code)
	}

	// The demo publishers send H.264: a viewer of the full build (this
	// test's) takes and decodes it.
	nc := hubtest.Connect(t, s.natsURL("VIDHUB_NATS_PORT"))
	lobby := mustJoin(t, s.natsURL("VIDHUB_NATS_PORT"), "lobby")
	studio := mustJoin(t, s.natsURL("VIDHUB_NATS_PORT"), "studio")
	hubtest.Eventually(t, 60*time.Second, func() bool {
		a, _ := lobby.frames("demo-1")
		b, _ := studio.frames("demo-2")
		return a >= 5 && b >= 5
	}, "no frames of demo-1 in lobby and demo-2 in studio on the published NATS port")
	upTime := time.Since(start)
	for _, v := range []*viewer{lobby, studio} {
		if v.room.Bad() != 0 {
			t.Errorf("room %s: %d bad frames", v.room.Name(), v.room.Bad())
		}
	}
	for v, who := range map[*viewer]string{lobby: "demo-1", studio: "demo-2"} {
		// The layer and the codec string (from presence) show in the
		// stats of the next interval.
		hubtest.Eventually(t, 10*time.Second, func() bool {
			ts, _ := v.tile(who)
			return ts.Keyframes > 0 && ts.Layer == protocol.H264 && strings.HasPrefix(ts.Codec, "avc1.42C0")
		}, "%s's viewer does not take %s's h264 layer (Constrained Baseline, a keyframe decoded)", v.room.Name(), who)
		if ts, _ := v.tile(who); ts.DecodeErrors != 0 || ts.CorruptShown != 0 {
			t.Errorf("%s's viewer: %d decode errors, %d corrupt pictures shown of %s", v.room.Name(), ts.DecodeErrors, ts.CorruptShown, who)
		}
	}
	checkH264Frames(t, nc, "lobby")
	checkH264Frames(t, nc, "studio")

	// JPEG, on demand: a viewer that takes JPEG only (a static or lite
	// build's, or protocol v1's) gets it.
	lobbyJPEG := mustJoinCodec(t, s.natsURL("VIDHUB_NATS_PORT"), "lobby", protocol.CodecJPEG)
	studioJPEG := mustJoinCodec(t, s.natsURL("VIDHUB_NATS_PORT"), "studio", protocol.CodecJPEG)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		a, _ := lobbyJPEG.frames("demo-1")
		b, _ := studioJPEG.frames("demo-2")
		return a >= 3 && b >= 3
	}, "no JPEG frames of demo-1 and demo-2 for viewers that ask for JPEG")
	checkFrames(t, nc, "lobby")
	checkFrames(t, nc, "studio")

	if rooms := roomsCommand(t, s.natsURL("VIDHUB_NATS_PORT")); !hasDemoRooms(rooms) {
		t.Errorf("vidhub rooms lists %v; want lobby with demo-1 and studio with demo-2", rooms)
	}
	hubtest.Eventually(t, 15*time.Second, func() bool { return hasDemoRooms(webRooms(s)) },
		"the web gateway's /api/rooms does not list lobby and studio: %v", webRooms(s))
	return upTime
}

// waitHealthy waits until Docker reports each service healthy: each
// image healthcheck (vidhub health) passes inside its container.
func waitHealthy(t *testing.T, s *stack, services ...string) {
	t.Helper()
	for _, svc := range services {
		hubtest.Eventually(t, 90*time.Second, func() bool { return s.health(svc) == "healthy" },
			"service %s is not healthy (%s)", svc, s.health(svc))
	}
}

// downClean takes the stack down and checks nothing of it is left.
func downClean(t *testing.T, s *stack) {
	t.Helper()
	s.down()
	if left := s.leftovers(); len(left) > 0 {
		t.Errorf("compose down left %v behind", left)
	}
}

// TestComposeDefaultStack: "make image" and the default stack come up and
// serve both demo rooms to the host; a recording outlasts the broker's
// container; the edge profile's broker and camera, brought up on the
// same project, link to the stack's broker as a leaf node and send video
// over the link only while the hub watches; down leaves nothing behind.
func TestComposeDefaultStack(t *testing.T) {
	s := newStack(t)
	upTime := upAndCheck(t, s)
	t.Logf("default stack serving frames %v after compose up", upTime.Round(time.Millisecond))
	waitHealthy(t, s, "broker", "web", "pattern-lobby", "pattern-studio")

	// The image: scratch, non-root, labelled as the lite build, with a
	// healthcheck, and small.
	out, errOut, code := runCmd(t, time.Minute, nil, "docker", "image", "inspect", "--format",
		"{{.Config.User}}|{{index .Config.Labels \"org.opencontainers.image.title\"}}|{{index .Config.Labels \"io.vidhub.build\"}}|{{json .Config.Healthcheck.Test}}|{{json .Config.ExposedPorts}}|{{len .RootFS.Layers}}|{{.Size}}", imageTag)
	if code != 0 {
		t.Fatalf("docker image inspect: %s", errOut)
	}
	for _, want := range []string{"65532:65532|", "|vidhub|", "|lite|", `"/vidhub","health"`, `"4222/tcp"`, `"8222/tcp"`, `"8080/tcp"`, "|2|"} {
		if !strings.Contains(out, want) {
			t.Errorf("image config %s lacks %s", out, want)
		}
	}
	fields := strings.Split(strings.TrimSpace(out), "|")
	size, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil || size > 40e6 {
		t.Errorf("image size %q (%v): want at most 40 MB (a static binary and a CA bundle)", fields[len(fields)-1], err)
	}
	t.Logf("image %s: %.1f MB", imageTag, float64(size)/1e6)
	// Its binary is the lite build, and runs read-only, without
	// capabilities, as 65532.
	out, errOut, code = runCmd(t, time.Minute, nil, "docker", "run", "--rm", "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges:true", imageTag, "version")
	if code != 0 || !strings.Contains(out, "lite build") {
		t.Errorf("vidhub version in the image: exit %d, %s%s; want the lite build", code, out, errOut)
	}
	for _, svc := range []string{"pattern-lobby", "web", "broker"} {
		out, _, _ := runCmd(t, time.Minute, nil, "docker", "inspect", "--format", "{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}", s.container(svc))
		if strings.TrimSpace(out) != "65532:65532|true" {
			t.Errorf("service %s runs as user|read-only %q, want 65532:65532|true", svc, strings.TrimSpace(out))
		}
	}

	// Recording: the broker keeps its store on its volume, and a
	// recording outlasts the broker's container.
	start := time.Now()
	checkRecordingKept(t, s)
	t.Logf("recording kept across the broker's re-created container: checked in %v", time.Since(start).Round(time.Millisecond))

	// The edge profile, on the stack that is up: its broker links to
	// broker as a leaf node, and only watched video crosses.
	start = time.Now()
	checkEdgeProfile(t, s)
	t.Logf("edge profile on the running stack: checked in %v", time.Since(start).Round(time.Millisecond))
	downClean(t, s)
}

// recordRoom runs "vidhub record" against url (a comma-separated list of
// brokers) for room, with args.
func recordRoom(t *testing.T, url, room string, args ...string) {
	t.Helper()
	out, errOut, code := runCmd(t, time.Minute, nil, vidhubBin(t), append([]string{"record", "--nats", url, "--room", room}, args...)...)
	if code != 0 {
		t.Fatalf("vidhub record --room %s %v: exit %d\n%s%s", room, args, code, out, errOut)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// recording is the recording of room; it fails the test after a minute
// of errors.
func recording(t *testing.T, nc *nats.Conn, room string) record.Info {
	t.Helper()
	var (
		i   record.Info
		err error
	)
	hubtest.Eventually(t, time.Minute, func() bool {
		i, err = getRecording(nc, room)
		return err == nil
	}, "the recording of room %s: %v", room, hubtest.Lazy(func() any { return err }))
	return i
}

// getRecording asks for the recording of room, for at most 5 seconds.
func getRecording(nc *nats.Conn, room string) (record.Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return record.Get(ctx, nc, room)
}

// connectRetry connects to url, trying for a minute (a broker that is
// starting).
func connectRetry(t *testing.T, url string) *nats.Conn {
	t.Helper()
	var (
		nc  *nats.Conn
		err error
	)
	hubtest.Eventually(t, time.Minute, func() bool {
		nc, err = nats.Connect(url, nats.Name("compose test"), nats.IgnoreDiscoveredServers(),
			nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Timeout(2*time.Second))
		return err == nil
	}, "cannot connect to %s: %v", url, hubtest.Lazy(func() any { return err }))
	t.Cleanup(nc.Close)
	return nc
}

// checkRecordingKept records lobby on the default stack's broker, re-creates
// the broker's container (as a new image or "docker compose down" and
// "up" would), and checks the recording is still there, whole, and goes
// on.
func checkRecordingKept(t *testing.T, s *stack) {
	t.Helper()
	// The store is the broker's named volume, on a read-only root.
	out, _, _ := runCmd(t, time.Minute, nil, "docker", "inspect", "--format",
		"{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}};{{end}}", s.container("broker"))
	if want := "volume " + s.project + "_broker-data /data true;"; !strings.Contains(out, want) {
		t.Errorf("broker's mounts are %q, want %q", strings.TrimSpace(out), want)
	}
	url := s.natsURL("VIDHUB_NATS_PORT")
	recordRoom(t, url, "lobby")
	nc := connectRetry(t, url)
	hubtest.WaitRecorded(t, nc, "lobby", 2*time.Second)
	before := recording(t, nc, "lobby")
	nc.Close()

	old := s.container("broker")
	recreated := time.Now()
	s.must(3*time.Minute, "up", "-d", "--no-deps", "--force-recreate", "--timeout", "5", "broker")
	if s.container("broker") == old {
		t.Fatalf("compose up --force-recreate kept the broker's container %s", old)
	}
	nc = connectRetry(t, url)
	after := recording(t, nc, "lobby")
	if after.Msgs < before.Msgs || !after.First.Equal(before.First) {
		t.Errorf("the recording of lobby before the broker's new container: %d messages from %v; after: %d from %v",
			before.Msgs, before.First, after.Msgs, after.First)
	}
	// The publisher comes back to the broker, and its frames are recorded
	// again.
	hubtest.Eventually(t, time.Minute, func() bool {
		i, err := getRecording(nc, "lobby")
		return err == nil && i.Msgs > after.Msgs+10 && i.Last.After(recreated)
	}, "nothing recorded in lobby since the broker's new container started")
	t.Logf("lobby's recording: %d messages before the broker's container was re-created, %d after",
		before.Msgs, recording(t, nc, "lobby").Msgs)
}

// connz lists the names of the client connections of a broker.
func connz(monitor string) []string {
	code, body := httpGet(monitor + "/connz?limit=1000")
	if code != http.StatusOK {
		return nil
	}
	var c struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if json.Unmarshal([]byte(body), &c) != nil {
		return nil
	}
	var names []string
	for _, cn := range c.Connections {
		names = append(names, cn.Name)
	}
	return names
}

// TestComposeClusterProfile: the cluster profile runs three brokers in one
// NATS cluster; stopping the broker that serves the web gateway moves it,
// and the publishers that were there, to the others within a few seconds.
// A recording with three replicas loses no frame to SIGKILL of its
// leader, and goes on.
func TestComposeClusterProfile(t *testing.T) {
	s := newStack(t)
	s.clustered()
	upTime := upAndCheck(t, s, "--profile", "cluster")
	t.Logf("cluster stack serving frames %v after compose up", upTime.Round(time.Millisecond))
	waitHealthy(t, s, "broker", "broker-2", "broker-3", "web", "pattern-lobby", "pattern-studio")

	monitors := map[string]string{
		"broker":   s.url("VIDHUB_MONITOR_PORT", ""),
		"broker-2": s.url("VIDHUB_MONITOR_PORT_2", ""),
		"broker-3": s.url("VIDHUB_MONITOR_PORT_3", ""),
	}
	for name, m := range monitors {
		hubtest.Eventually(t, 30*time.Second, func() bool { return routePeers(m) == 2 },
			"%s does not route to the two other brokers", name)
	}

	// Stop the broker the web gateway is connected to (and, of those, the
	// one with the most publishers), so the stop really moves the gateway.
	victim, most := "", -1
	for name, m := range monitors {
		n := 0
		for _, c := range connz(m) {
			switch {
			case c == "vidhub web":
				n += 100
			case strings.HasPrefix(c, "vidhub publish"):
				n++
			}
		}
		if n > most {
			victim, most = name, n
		}
	}
	if most < 100 {
		t.Fatalf("the web gateway is connected to none of the three brokers")
	}
	most -= 100
	t.Logf("stopping %s, which serves the web gateway and %d publishers", victim, most)

	// The host watches through the brokers that stay.
	var survivors []string
	for name := range monitors {
		if name != victim {
			survivors = append(survivors, name)
		}
	}
	natsPort := map[string]string{"broker": "VIDHUB_NATS_PORT", "broker-2": "VIDHUB_NATS_PORT_2", "broker-3": "VIDHUB_NATS_PORT_3"}
	urls := s.natsURL(natsPort[survivors[0]]) + "," + s.natsURL(natsPort[survivors[1]])
	lobby := mustJoin(t, urls, "lobby")
	studio := mustJoin(t, urls, "studio")
	hubtest.Eventually(t, 30*time.Second, func() bool {
		a, _ := lobby.frames("demo-1")
		b, _ := studio.frames("demo-2")
		return a >= 3 && b >= 3
	}, "no frames of both demo rooms through %v", survivors)

	start := time.Now()
	s.must(time.Minute, "--profile", "cluster", "stop", "--timeout", "5", victim)
	stopped := time.Since(start)
	a0, _ := lobby.frames("demo-1")
	b0, _ := studio.frames("demo-2")
	hubtest.Eventually(t, 10*time.Second, func() bool {
		a, _ := lobby.frames("demo-1")
		b, _ := studio.frames("demo-2")
		return a > a0+5 && b > b0+5
	}, "frames of the demo rooms did not resume after %s stopped", victim)
	resumed := time.Since(start)
	hubtest.Eventually(t, 10*time.Second, func() bool {
		code, _ := httpGet(s.url("VIDHUB_WEB_PORT", "/healthz"))
		return code == http.StatusOK && hasDemoRooms(webRooms(s))
	}, "the web gateway did not recover after %s stopped", victim)
	webBack := time.Since(start)
	t.Logf("%s stopped in %v; publishers' frames flowing again %v after the stop began; web healthy with both rooms after %v",
		victim, stopped.Round(time.Millisecond), resumed.Round(time.Millisecond), webBack.Round(time.Millisecond))
	// Everything that was on the victim is now on the survivors.
	hubtest.Eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, name := range survivors {
			for _, c := range connz(monitors[name]) {
				if c == "vidhub web" || strings.HasPrefix(c, "vidhub publish") {
					n++
				}
			}
		}
		return n == 3
	}, "web and the two publishers are not all connected to the surviving brokers")

	// Recording on three brokers: the stopped one comes back, lobby is
	// recorded with a copy on each, and SIGKILL of the recording's leader
	// loses no frame of it.
	start = time.Now()
	s.must(time.Minute, "--profile", "cluster", "start", victim)
	for name, m := range monitors {
		hubtest.Eventually(t, 60*time.Second, func() bool { return routePeers(m) == 2 },
			"%s does not route to the two other brokers after %s started again", name, victim)
	}
	waitHealthy(t, s, victim)
	all := s.natsURL("VIDHUB_NATS_PORT") + "," + s.natsURL("VIDHUB_NATS_PORT_2") + "," + s.natsURL("VIDHUB_NATS_PORT_3")
	checkLeaderKill(t, s, all, monitors, natsPort)
	t.Logf("recording across the leader's SIGKILL: checked in %v (with %s started again)", time.Since(start).Round(time.Millisecond), victim)
	downClean(t, s)
}

// streamInfo is the stream of room's recording as the brokers at nc see
// it.
func streamInfo(js jetstream.JetStream, room string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, record.StreamName(room))
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// checkLeaderKill records lobby with three replicas, kills the broker
// that leads its stream (SIGKILL: no goodbye to the cluster), and checks
// that the recording goes on under a new leader and lost no frame:
// demo-1's h264 layer has every Vidhub-Seq from the first recorded to the
// last.
func checkLeaderKill(t *testing.T, s *stack, all string, monitors, natsPort map[string]string) {
	t.Helper()
	recordRoom(t, all, "lobby", "--replicas", "3")
	nc := connectRetry(t, all)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	hubtest.WaitRecorded(t, nc, "lobby", 3*time.Second)
	// A leader, and both followers current.
	var si *jetstream.StreamInfo
	hubtest.Eventually(t, 30*time.Second, func() bool {
		si, err = streamInfo(js, "lobby")
		if err != nil || si.Cluster == nil || si.Cluster.Leader == "" || len(si.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range si.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	}, "lobby's recording has no leader with two current replicas: %v %+v", hubtest.Lazy(func() any { return err }), hubtest.Lazy(func() any { return si }))
	leader := si.Cluster.Leader
	if _, ok := monitors[leader]; !ok {
		t.Fatalf("lobby's recording is led by %q, not one of the stack's brokers", leader)
	}
	// demo-1 publishes into the recording with acknowledgements once it
	// has heard the room is recorded (publisher.RecordCheckEvery): its
	// frames then carry a Nats-Msg-Id.
	hubtest.Eventually(t, 30*time.Second, func() bool {
		s, err := js.Stream(context.Background(), record.StreamName("lobby"))
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(context.Background(), "vidhub.lobby.demo-1.h264")
		return err == nil && m.Header.Get(jetstream.MsgIDHeader) != ""
	}, "demo-1 does not publish into lobby's recording with acknowledgements (no Nats-Msg-Id on its frames)")
	pubOnLeader := slices.Contains(connz(monitors[leader]), "vidhub publish lobby/demo-1")
	t.Logf("killing %s (SIGKILL), the leader of lobby's recording; demo-1's publisher connected to it: %v", leader, pubOnLeader)

	killed := time.Now()
	if out, errOut, code := runCmd(t, time.Minute, nil, "docker", "kill", "--signal", "KILL", s.container(leader)); code != 0 {
		t.Fatalf("docker kill %s: exit %d %s%s", leader, code, out, errOut)
	}
	// A new leader, and more recorded under it.
	var newLeader string
	hubtest.Eventually(t, 60*time.Second, func() bool {
		si, err = streamInfo(js, "lobby")
		if err != nil || si.Cluster == nil || si.Cluster.Leader == "" || si.Cluster.Leader == leader {
			return false
		}
		newLeader = si.Cluster.Leader
		return true
	}, "lobby's recording has no new leader after %s's SIGKILL: %v", leader, hubtest.Lazy(func() any { return err }))
	elected := time.Since(killed)
	hubtest.Eventually(t, 60*time.Second, func() bool {
		si, err = streamInfo(js, "lobby")
		return err == nil && si.State.LastTime.After(killed.Add(elected+3*time.Second))
	}, "lobby's recording did not go on under %s: %v", newLeader, hubtest.Lazy(func() any { return err }))
	t.Logf("%s leads lobby's recording %v after %s's SIGKILL; %d messages recorded",
		newLeader, elected.Round(time.Millisecond), leader, si.State.Msgs)

	// Every frame of the h264 layer, in whatever order it comes.
	seqs := readSeqs(t, js, "lobby", protocol.H264)
	if len(seqs) == 0 {
		t.Fatalf("lobby's recording holds no %s frames", protocol.H264)
	}
	for subject, got := range seqs {
		lo, hi := uint64(1<<64-1), uint64(0)
		for n := range got {
			lo, hi = min(lo, n), max(hi, n)
		}
		lost := (hi - lo + 1) - uint64(len(got))
		if lost == 0 {
			t.Logf("%s: Vidhub-Seq %d to %d, none missing", subject, lo, hi)
			continue
		}
		var gaps []string
		for n := lo; n <= hi && len(gaps) < 5; n++ {
			if got[n] {
				continue
			}
			m := n
			for m+1 <= hi && !got[m+1] {
				m++
			}
			gaps = append(gaps, fmt.Sprintf("%d-%d", n, m))
			n = m
		}
		t.Errorf("%s: %d frames lost from the recording across %s's SIGKILL (publisher on it: %v): Vidhub-Seq %d to %d has %d; missing %s",
			subject, lost, leader, pubOnLeader, lo, hi, len(got), strings.Join(gaps, ", "))
	}
}

// readSeqs reads every message of room's recording on layer, with an
// ordered consumer, and returns each subject's (each publisher's)
// Vidhub-Seq numbers. A read that fails (the cluster still settling after
// losing a broker) starts again, for a minute and a half.
func readSeqs(t *testing.T, js jetstream.JetStream, room string, layer protocol.Layer) map[string]map[uint64]bool {
	t.Helper()
	var (
		seqs map[string]map[uint64]bool
		err  error
		n    int
	)
	hubtest.Eventually(t, 90*time.Second, func() bool {
		n++
		if seqs, err = readSeqsOnce(js, room, layer); err != nil {
			t.Logf("reading %s's recording, attempt %d: %v", room, n, err)
		}
		return err == nil
	}, "cannot read %s's recording: %v", room, hubtest.Lazy(func() any { return err }))
	return seqs
}

func readSeqsOnce(js jetstream.JetStream, room string, layer protocol.Layer) (map[string]map[uint64]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, record.StreamName(room), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.RoomFrames(room, layer)},
	})
	if err != nil {
		return nil, err
	}
	seqs := map[string]map[uint64]bool{}
	for {
		b, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range b.Messages() {
			got++
			n, err := strconv.ParseUint(m.Headers().Get(protocol.HeaderSeq), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("a message on %s with %s %q", m.Subject(), protocol.HeaderSeq, m.Headers().Get(protocol.HeaderSeq))
			}
			if seqs[m.Subject()] == nil {
				seqs[m.Subject()] = map[uint64]bool{}
			}
			seqs[m.Subject()][n] = true
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if md.NumPending == 0 {
				return seqs, nil
			}
		}
		if err := b.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("no message in 5 s, with more pending (%d subjects so far)", len(seqs))
		}
	}
}
