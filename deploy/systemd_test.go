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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// install runs deploy/install-publisher.sh --root root with bin.
func install(t *testing.T, root, bin string) string {
	t.Helper()
	out, errOut, code := runCmd(t, time.Minute, nil, "bash", "install-publisher.sh", "--root", root, "--binary", bin)
	if code != 0 {
		t.Fatalf("install-publisher.sh --root: exit %d\n%s%s", code, out, errOut)
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

// TestInstallPublisherRoot: the installer's --root mode puts binary, unit,
// sysusers file and env template under the root; a second run changes
// nothing, and an env file someone edited is kept.
func TestInstallPublisherRoot(t *testing.T) {
	bin := vidhubBin(t)
	root := t.TempDir()
	install(t, root, bin)
	for _, f := range []struct {
		path string
		mode os.FileMode
		same string // the deploy/ file it must equal
	}{
		{"usr/local/bin/vidhub", 0o755, ""},
		{"etc/systemd/system/vidhub-publisher.service", 0o644, "systemd/vidhub-publisher.service"},
		{"etc/sysusers.d/vidhub.conf", 0o644, "systemd/vidhub.sysusers"},
		{"etc/vidhub/publisher.env", 0o640, "publisher.env.example"},
		{"etc/vidhub/publisher.env.example", 0o644, "publisher.env.example"},
	} {
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
