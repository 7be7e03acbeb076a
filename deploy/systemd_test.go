package deploy_test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// install runs deploy/install-publisher.sh --root root with bin, and
// args.
func install(t *testing.T, root, bin string, args ...string) string {
	t.Helper()
	out, errOut, code := runCmd(t, time.Minute, nil, "bash", append([]string{"install-publisher.sh", "--root", root, "--binary", bin}, args...)...)
	if code != 0 {
		t.Fatalf("install-publisher.sh --root %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// tree lists every file under root with its mode and content hash.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return lines
}

// installed is a file an install must hold under its root: its mode,
// and the deploy/ file it must equal ("" for any content).
type installed struct {
	path string
	mode os.FileMode
	same string
}

// checkInstalled checks that root holds files as they should be.
func checkInstalled(t *testing.T, root string, files []installed) {
	t.Helper()
	for _, f := range files {
		info, err := os.Stat(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if info.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, info.Mode().Perm(), f.mode)
		}
		if f.same != "" {
			got, _ := os.ReadFile(filepath.Join(root, f.path))
			want, _ := os.ReadFile(f.same)
			if string(got) != string(want) {
				t.Errorf("%s differs from deploy/%s", f.path, f.same)
			}
		}
	}
}

// TestInstallPublisherRoot: the installer's --root mode puts binary, unit,
// sysusers file and env template under the root; a second run changes
// nothing, and an env file someone edited is kept.
func TestInstallPublisherRoot(t *testing.T) {
	bin := vidhubBin(t)
	root := t.TempDir()
	install(t, root, bin)
	checkInstalled(t, root, []installed{
		{"usr/local/bin/vidhub", 0o755, ""},
		{"etc/systemd/system/vidhub-publisher.service", 0o644, "systemd/vidhub-publisher.service"},
		{"etc/sysusers.d/vidhub.conf", 0o644, "systemd/vidhub.sysusers"},
		{"etc/vidhub/publisher.env", 0o640, "publisher.env.example"},
		{"etc/vidhub/publisher.env.example", 0o644, "publisher.env.example"},
	})
	// Without --leaf, no edge broker.
	for _, f := range []string{"etc/systemd/system/vidhub-broker.service", "etc/vidhub/broker.env"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("installed %s without --leaf", f)
		}
	}
	first := tree(t, root)
	out := install(t, root, bin)
	if second := tree(t, root); strings.Join(first, "\n") != strings.Join(second, "\n") {
		t.Errorf("a second run changed the install:\nfirst:\n%s\nsecond:\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if strings.Contains(out, "installed /") {
		t.Errorf("a second run reinstalled files:\n%s", out)
	}

	// An edited env file survives a reinstall; the template is refreshed.
	env := filepath.Join(root, "etc/vidhub/publisher.env")
	edited := "VIDHUB_ROOM=garage\nVIDHUB_NAME=door\nVIDHUB_SOURCE=/dev/video0\nNATS_URL=nats://hub:4222\n"
	if err := os.WriteFile(env, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(root, "etc/vidhub/publisher.env.example")
	if err := os.WriteFile(example, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	install(t, root, bin)
	if got, _ := os.ReadFile(env); string(got) != edited {
		t.Errorf("the installer replaced an existing publisher.env:\n%s", got)
	}
	if got, _ := os.ReadFile(example); string(got) == "stale" {
		t.Error("the installer did not refresh publisher.env.example")
	}

	// Bad calls fail with a reason and touch nothing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", filepath.Join(root, "nope"), "--binary", bin}, "no such directory"},
		{[]string{"--root", root, "--binary", filepath.Join(root, "nope")}, "no vidhub binary"},
		{[]string{"--frobnicate"}, "unknown argument"},
	} {
		_, errOut, code := runCmd(t, time.Minute, nil, "bash", append([]string{"install-publisher.sh"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("install-publisher.sh %v: exit %d, stderr %q; want failure saying %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit as
// installed (so its ExecStart binary exists), in a root holding a copy of
// the host's system units for the targets it orders against.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		hubtest.Unavailable(t, "systemd-analyze is not installed (scripts/deps.sh test installs the systemd package)")
	}
	hostUnits := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "multi-user.target")); err == nil {
			hostUnits = d
			break
		}
	}
	if hostUnits == "" {
		t.Fatal("systemd-analyze is installed but no system units (multi-user.target) were found")
	}
	root := t.TempDir()
	install(t, root, vidhubBin(t))
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A copy, not a symlink: verify resolves the units' absolute symlinks
	// inside the root, so they must point into it (merged /usr, as Debian).
	if out, errOut, code := runCmd(t, time.Minute, nil, "cp", "-a", hostUnits, filepath.Join(root, "usr/lib/systemd/system")); code != 0 {
		t.Fatalf("copying %s: %s%s", hostUnits, out, errOut)
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	verify := func(unit string) (string, int) {
		out, errOut, code := runCmd(t, time.Minute, []string{"SYSTEMD_LOG_COLOR=0"}, analyze, "verify", "--root="+root, unit)
		return strings.TrimSpace(out + errOut), code
	}
	if out, code := verify("/etc/systemd/system/vidhub-publisher.service"); code != 0 || out != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%q", code, out)
	}
	// With the edge broker (--leaf): both units, the publisher now
	// ordered after the broker that exists.
	install(t, root, vidhubBin(t), "--leaf", "nats://hub.example.com:7422")
	for _, unit := range []string{"vidhub-broker.service", "vidhub-publisher.service"} {
		if out, code := verify("/etc/systemd/system/" + unit); code != 0 || out != "" {
			t.Errorf("systemd-analyze verify %s (installed with --leaf): exit %d\n%q", unit, code, out)
		}
	}

	// The check itself works: a unit with a mistake fails it.
	bad := filepath.Join(root, "etc/systemd/system/vidhub-broken.service")
	unit, _ := os.ReadFile("systemd/vidhub-publisher.service")
	broken := strings.Replace(string(unit), "ExecStart=/usr/local/bin/vidhub", "ExecStart=/usr/local/bin/vidhub-missing", 1)
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := verify("/etc/systemd/system/vidhub-broken.service"); code == 0 {
		t.Errorf("systemd-analyze verify passed a unit whose binary is missing:\n%s", out)
	}
}

// TestSystemdUnitSettings: the unit does what the VM publisher needs.
func TestSystemdUnitSettings(t *testing.T) {
	keys := unitKeys(t, "systemd/vidhub-publisher.service")
	for _, want := range []string{
		"EnvironmentFile=/etc/vidhub/publisher.env",
		"ExecStart=/usr/local/bin/vidhub publish",
		"Restart=always",
		"StartLimitIntervalSec=0",
		"User=vidhub",
		"SupplementaryGroups=video",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"DeviceAllow=char-video4linux rw",
		"StandardOutput=journal",
		"WantedBy=multi-user.target",
	} {
		if !keys[want] {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// The user the unit runs as is the one sysusers creates.
	sys, _ := os.ReadFile("systemd/vidhub.sysusers")
	if !strings.Contains(string(sys), "u vidhub ") || !strings.Contains(string(sys), "m vidhub video") {
		t.Errorf("vidhub.sysusers does not create user vidhub in group video:\n%s", sys)
	}
}

// TestSystemdBrokerUnitSettings: the edge broker's unit runs "vidhub
// broker" from broker.env, on loopback unless the file says otherwise,
// hardened like the publisher's but with no devices at all; enabling it
// makes the publisher want it, and the publisher starts after it.
func TestSystemdBrokerUnitSettings(t *testing.T) {
	keys := unitKeys(t, "systemd/vidhub-broker.service")
	for _, want := range []string{
		"Environment=VIDHUB_NATS_LISTEN=127.0.0.1:4222",
		"EnvironmentFile=/etc/vidhub/broker.env",
		"ExecStart=/usr/local/bin/vidhub broker",
		"Restart=always",
		"StartLimitIntervalSec=0",
		"User=vidhub",
		"Group=vidhub",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"PrivateDevices=yes",
		"DevicePolicy=closed",
		"CapabilityBoundingSet=",
		"StandardOutput=journal",
		"WantedBy=multi-user.target",
		"WantedBy=vidhub-publisher.service",
	} {
		if !keys[want] {
			t.Errorf("vidhub-broker.service lacks %s", want)
		}
	}
	for k := range keys {
		if strings.HasPrefix(k, "DeviceAllow=") || strings.HasPrefix(k, "SupplementaryGroups=") {
			t.Errorf("vidhub-broker.service has %s; the broker needs no devices", k)
		}
	}
	// Settings from EnvironmentFile= override Environment=: the unit's
	// loopback default comes first.
	unit, _ := os.ReadFile("systemd/vidhub-broker.service")
	if e, f := strings.Index(string(unit), "\nEnvironment="), strings.Index(string(unit), "\nEnvironmentFile="); e < 0 || f < e {
		t.Error("vidhub-broker.service: Environment= must come before EnvironmentFile=")
	}
	if !unitKeys(t, "systemd/vidhub-publisher.service")["After=network-online.target vidhub-broker.service"] {
		t.Error("vidhub-publisher.service is not ordered after vidhub-broker.service")
	}
}

// TestInstallPublisherLeaf: with --leaf the installer adds the edge
// broker: its unit, broker.env naming the hub (never world-readable: the
// URL may hold a password), and a publisher.env that publishes through
// it with --encode watched. A second run changes nothing and keeps an
// edited broker.env; a URL that is not a hub's leaf URL is refused. Then
// the installed files run: "vidhub broker" with broker.env links to a
// real hub as a leaf node, "vidhub publish" with publisher.env publishes
// through it, and a viewer at the hub gets its frames.
func TestInstallPublisherLeaf(t *testing.T) {
	bin := vidhubBin(t)
	hub := hubtest.Broker(t, broker.Config{LeafListen: "127.0.0.1:0"})
	hubLeaf := hub.LeafURL()
	root := t.TempDir()
	out := install(t, root, bin, "--leaf", hubLeaf)
	checkInstalled(t, root, []installed{
		{"etc/systemd/system/vidhub-broker.service", 0o644, "systemd/vidhub-broker.service"},
		{"etc/systemd/system/vidhub-publisher.service", 0o644, "systemd/vidhub-publisher.service"},
		{"etc/vidhub/broker.env.example", 0o644, "broker.env.example"},
		{"etc/vidhub/broker.env", 0o640, ""},
		{"etc/vidhub/publisher.env", 0o640, ""},
	})
	brokerEnv := envFile(t, filepath.Join(root, "etc/vidhub/broker.env"))
	pubEnv := envFile(t, filepath.Join(root, "etc/vidhub/publisher.env"))
	for _, want := range []string{"VIDHUB_LEAF=" + hubLeaf, "VIDHUB_NATS_LISTEN=127.0.0.1:4222"} {
		if !slices.Contains(brokerEnv, want) {
			t.Errorf("broker.env lacks %s: %v", want, brokerEnv)
		}
	}
	for _, want := range []string{"NATS_URL=nats://127.0.0.1:4222", "VIDHUB_ENCODE=watched"} {
		if !slices.Contains(pubEnv, want) {
			t.Errorf("publisher.env written with --leaf lacks %s: %v", want, pubEnv)
		}
	}
	if !strings.Contains(out, "linking to the hub at "+hubLeaf) {
		t.Errorf("the installer does not say which hub it links to:\n%s", out)
	}

	// Idempotent; an edited broker.env is kept.
	first := tree(t, root)
	out = install(t, root, bin, "--leaf", hubLeaf)
	if second := tree(t, root); strings.Join(first, "\n") != strings.Join(second, "\n") {
		t.Errorf("a second run with --leaf changed the install:\nfirst:\n%s\nsecond:\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if strings.Contains(out, "installed /") || strings.Contains(out, "wrote /") {
		t.Errorf("a second run with --leaf reinstalled files:\n%s", out)
	}
	// A password in the URL stays out of the installer's output, and
	// characters sed would take for its own land in broker.env as given.
	pwRoot := t.TempDir()
	pwURL := "nats://edge1:s3cr&t|x@hub.example.com:7422"
	out = install(t, pwRoot, bin, "--leaf", pwURL)
	if strings.Contains(out, "s3cr") || !strings.Contains(out, "nats://edge1:xxxxx@hub.example.com:7422") {
		t.Errorf("the installer's output shows the hub password, or not the redacted URL:\n%s", out)
	}
	if env := envFile(t, filepath.Join(pwRoot, "etc/vidhub/broker.env")); !slices.Contains(env, "VIDHUB_LEAF="+pwURL) {
		t.Errorf("broker.env lacks VIDHUB_LEAF=%s: %v", pwURL, env)
	}
	for _, tc := range []struct{ leaf, want string }{
		{"http://hub.example.com:7422", "not a hub leaf URL"},
		{"nats://hub.example.com", "not a hub leaf URL"},
		{"hub.example.com:7422", "not a hub leaf URL"},
		{"nats://edge1:pw@hub", "nats://edge1:xxxxx@hub"},
		{",", "not a hub leaf URL"},
		{"", "give the hub's leaf URL"},
	} {
		empty := t.TempDir()
		_, errOut, code := runCmd(t, time.Minute, nil, "bash", "install-publisher.sh", "--root", empty, "--binary", bin, "--leaf", tc.leaf)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, ":pw@") {
			t.Errorf("install-publisher.sh --leaf %q: exit %d, stderr %q; want failure saying %q (no password)", tc.leaf, code, errOut, tc.want)
		}
		if left := tree(t, empty); len(left) != 1 {
			t.Errorf("install-publisher.sh --leaf %q failed but installed %v", tc.leaf, left)
		}
	}

	// The installed files at work. Ports of this machine's own, instead
	// of 4222 and 8222, which something else may hold; everything else
	// as installed (the unit's Environment= first, then broker.env).
	ports := hubtest.FreePorts(t, 2)
	edgePort, monPort := ports[0], ports[1]
	edgeURL := "nats://127.0.0.1:" + strconv.Itoa(edgePort)
	edge := hubtest.StartProc(t, hubtest.ProcConfig{Name: "edge broker", Env: append(append([]string{"VIDHUB_NATS_LISTEN=127.0.0.1:4222"}, brokerEnv...),
		"VIDHUB_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(edgePort), "VIDHUB_MONITOR_LISTEN=127.0.0.1:"+strconv.Itoa(monPort))}, bin, "broker")
	hubtest.Eventually(t, 15*time.Second, func() bool { return hub.Server().NumLeafNodes() == 1 },
		"the broker configured by broker.env did not link to the hub at %s", hubLeaf)
	edge.WaitFor(10*time.Second, func() bool { return strings.Contains(edge.Output(), "leaf node of "+hubLeaf) },
		"vidhub broker configured by broker.env does not say it is a leaf node of %s", hubLeaf)
	hubtest.StartProc(t, hubtest.ProcConfig{Name: "edge publisher", Env: append(pubEnv, "VIDHUB_SOURCE=pattern", "VIDHUB_SIZE=320x180", "NATS_URL="+edgeURL)}, bin, "publish")
	v := mustJoin(t, hub.ClientURL(), "lobby")
	hubtest.Eventually(t, 20*time.Second, func() bool { n, _ := v.frames("vm-camera-1"); return n >= 5 },
		"a viewer at the hub got no frames of lobby/vm-camera-1, published through the edge broker: %v", hubtest.Lazy(func() any { return v.room.Stats() }))
	lz, err := hub.Server().Leafz(nil)
	if err != nil || len(lz.Leafs) != 1 {
		t.Fatalf("the hub's leafz: %v %v", lz, err)
	}
	t.Logf("hub viewer got frames through the installed edge broker; the hub's leaf link: in %d msgs %d bytes, out %d msgs %d bytes",
		lz.Leafs[0].InMsgs, lz.Leafs[0].InBytes, lz.Leafs[0].OutMsgs, lz.Leafs[0].OutBytes)
}

// envFile reads a systemd EnvironmentFile's KEY=value lines.
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	return env
}

// TestBrokerEnvExample: every setting in broker.env.example, commented
// or not, is an environment variable of "vidhub broker", and the
// template's values start a broker (hub URL aside: it names an example
// host, which the broker tries in the background while it serves).
func TestBrokerEnvExample(t *testing.T) {
	bin := vidhubBin(t)
	_, usage, _ := runCmd(t, time.Minute, nil, bin, "broker", "-h")
	b, err := os.ReadFile("broker.env.example")
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`^#?(VIDHUB_[A-Z_]+)=(.*)$`)
	var env []string
	for line := range strings.SplitSeq(string(b), "\n") {
		m := setting.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !strings.Contains(usage, m[1]) {
			t.Errorf("broker.env.example sets %s, which vidhub broker -h does not name", m[1])
		}
		if !strings.HasPrefix(line, "#") {
			env = append(env, m[1]+"="+m[2])
		}
	}
	if len(env) < 4 {
		t.Fatalf("found only %v in broker.env.example", env)
	}
	ports := hubtest.FreePorts(t, 2)
	port, mon := ports[0], ports[1]
	env = append(env, "VIDHUB_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(port), "VIDHUB_MONITOR_LISTEN=127.0.0.1:"+strconv.Itoa(mon))
	p := hubtest.StartProc(t, hubtest.ProcConfig{Env: env}, bin, "broker")
	p.WaitFor(15*time.Second, func() bool { return strings.Contains(p.Output(), "leaf node of nats://hub.example.com:7422") },
		"vidhub broker configured by broker.env.example does not run as a leaf node of its example hub")
	// It serves its clients, hub or not.
	hubtest.Connect(t, "nats://127.0.0.1:"+strconv.Itoa(port))
}

func unitKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "[") {
			keys[line] = true
		}
	}
	return keys
}

// TestPublisherEnvExample: every VIDHUB_ setting in the env template is a
// flag of "vidhub publish", and the template's values are accepted by it.
func TestPublisherEnvExample(t *testing.T) {
	bin := vidhubBin(t)
	_, usage, _ := runCmd(t, time.Minute, nil, bin, "publish", "-h")
	b, err := os.ReadFile("publisher.env.example")
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`^#?(VIDHUB_[A-Z_]+|NATS_URL|NATS_CREDS)=(.*)$`)
	var env []string
	for line := range strings.SplitSeq(string(b), "\n") {
		m := setting.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m[1], "VIDHUB_"), "_", "-")); strings.HasPrefix(m[1], "VIDHUB_") &&
			!strings.Contains(usage, "  -"+flag+" ") && !strings.Contains(usage, "  -"+flag+"\n") {
			t.Errorf("publisher.env.example sets %s, but vidhub publish has no --%s flag", m[1], flag)
		}
		if !strings.HasPrefix(line, "#") {
			env = append(env, m[1]+"="+m[2])
		}
	}
	if len(env) < 5 {
		t.Fatalf("found only %v in publisher.env.example", env)
	}
	// With the template's settings (a pattern instead of the camera this
	// machine may not have, and a local broker), the publisher publishes
	// into the template's room under its name.
	brk := hubtest.Broker(t, broker.Config{})
	env = append(env, "VIDHUB_SOURCE=pattern", "NATS_URL="+brk.ClientURL())
	hubtest.StartProc(t, hubtest.ProcConfig{Env: env}, bin, "publish")
	v := mustJoin(t, brk.ClientURL(), "lobby")
	// Sizes are measured once a second.
	hubtest.Eventually(t, 15*time.Second, func() bool {
		for _, s := range v.room.Stats() {
			if s.Participant == "vm-camera-1" && s.Frames >= 3 && s.Width == 1280 && s.Height == 720 {
				return true
			}
		}
		return false
	}, "vidhub publish configured by publisher.env.example sent no 1280x720 frames as lobby/vm-camera-1: %v", hubtest.Lazy(func() any { return v.room.Stats() }))
}
