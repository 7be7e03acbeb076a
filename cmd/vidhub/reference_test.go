package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vidhub/vidhub/internal/bench"
)

// The command reference, docs/commands.md, is checked against the CLI:
//
//   - each subcommand has a section headed "### vidhub <cmd>", and no
//     section names a subcommand the CLI lacks;
//   - each section has one flag table row per flag, starting with
//     "| `--flag` |" (the next cells: environment, default, meaning), and
//     no row names a flag the command lacks;
//   - each section has at least one example line "vidhub <cmd> ...", and
//     every flag an example line passes is one of that command's;
//   - where the usage output names a flag's environment variables
//     ("(env NAME, ...)"), the flag's row names each of them.
const referencePath = "../../docs/commands.md"

var (
	// flag.PrintDefaults writes "  -name type" or "  -name" (a bool).
	usageFlagRe = regexp.MustCompile(`^  -([A-Za-z0-9][-A-Za-z0-9_]*)(\s|$)`)
	usageEnvRe  = regexp.MustCompile(`\(env ([^)]*)\)`)
	envNameRe   = regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b`)
	docCmdRe    = regexp.MustCompile(`^### vidhub ([a-z][-a-z]*)\s*$`)
	docRowRe    = regexp.MustCompile("^\\| `--([A-Za-z0-9][-A-Za-z0-9_]*)` \\|") // the backticks rule out a raw string
	exampleRe   = regexp.MustCompile(`^(?:\$ )?vidhub ([a-z][-a-z]*)(.*)$`)
	argFlagRe   = regexp.MustCompile(`(?:^|\s)--?([A-Za-z0-9][-A-Za-z0-9_]*)`)
)

// cliFlags is one subcommand's flags, each with the environment
// variables its usage names (none until the usage names them).
type cliFlags map[string][]string

// usageFlags runs "vidhub <cmd> --help" and reads the flags from the usage.
func usageFlags(t *testing.T, cmd string) cliFlags {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, &stdout, &stderr)
	usage := stderr.String() + stdout.String()
	if !strings.Contains(usage, "usage: vidhub "+cmd) {
		t.Fatalf("vidhub %s --help: no usage (err %v):\n%s", cmd, err, usage)
	}
	return parseUsage(usage)
}

func parseUsage(usage string) cliFlags {
	flags := cliFlags{}
	cur := ""
	for line := range strings.SplitSeq(usage, "\n") {
		if m := usageFlagRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
			flags[cur] = nil
		}
		if cur == "" {
			continue
		}
		for _, m := range usageEnvRe.FindAllStringSubmatch(line, -1) {
			flags[cur] = append(flags[cur], envNameRe.FindAllString(m[1], -1)...)
		}
	}
	return flags
}

// docSection is one "### vidhub <cmd>" section of the reference.
type docSection struct {
	line     int               // of the heading
	rows     map[string]string // flag: its table row
	examples []string          // lines "vidhub <cmd> ...", without comments
}

// parseReference reads the command sections of the reference: a section
// runs from its heading to the next heading of level 1 to 3.
func parseReference(text string) (map[string]*docSection, []string) {
	secs := map[string]*docSection{}
	var problems []string
	var cur *docSection
	fenced := false
	for i, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if m := docCmdRe.FindStringSubmatch(line); m != nil && !fenced {
			if secs[m[1]] != nil {
				problems = append(problems, fmt.Sprintf("line %d: a second section for vidhub %s", i+1, m[1]))
			}
			cur = &docSection{line: i + 1, rows: map[string]string{}}
			secs[m[1]] = cur
			continue
		}
		if !fenced && (strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### ")) {
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		if m := docRowRe.FindStringSubmatch(line); m != nil {
			if _, dup := cur.rows[m[1]]; dup {
				problems = append(problems, fmt.Sprintf("line %d: --%s listed twice", i+1, m[1]))
			}
			cur.rows[m[1]] = line
			continue
		}
		if ex, _, _ := strings.Cut(strings.TrimSpace(line), " #"); exampleRe.MatchString(ex) {
			cur.examples = append(cur.examples, strings.TrimSpace(ex))
		}
	}
	return secs, problems
}

// checkReference lists where the reference and the CLI disagree.
func checkReference(text string, cli map[string]cliFlags) []string {
	secs, problems := parseReference(text)
	var names []string
	for name := range cli {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		sec := secs[name]
		if sec == nil {
			problems = append(problems, fmt.Sprintf("vidhub %s: no section \"### vidhub %s\"", name, name))
			continue
		}
		for flag, envs := range cli[name] {
			row, ok := sec.rows[flag]
			if !ok {
				problems = append(problems, fmt.Sprintf("vidhub %s: --%s has no row \"| `--%s` | ...\"", name, flag, flag))
				continue
			}
			for _, e := range envs {
				if !strings.Contains(row, e) {
					problems = append(problems, fmt.Sprintf("vidhub %s: the row of --%s does not name its variable %s", name, flag, e))
				}
			}
		}
		for flag := range sec.rows {
			if _, ok := cli[name][flag]; !ok {
				problems = append(problems, fmt.Sprintf("vidhub %s (line %d): the reference lists --%s, which the command lacks", name, sec.line, flag))
			}
		}
		found := false
		for _, ex := range sec.examples {
			m := exampleRe.FindStringSubmatch(ex)
			found = found || m[1] == name
			other, ok := cli[m[1]]
			if !ok {
				problems = append(problems, fmt.Sprintf("vidhub %s: example %q: no subcommand %s", name, ex, m[1]))
				continue
			}
			for _, f := range argFlagRe.FindAllStringSubmatch(m[2], -1) {
				if _, ok := other[f[1]]; !ok && f[1] != "help" && f[1] != "h" {
					problems = append(problems, fmt.Sprintf("vidhub %s: example %q: vidhub %s has no --%s", name, ex, m[1], f[1]))
				}
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("vidhub %s: no example line \"vidhub %s ...\"", name, name))
		}
	}
	for name, sec := range secs {
		if _, ok := cli[name]; !ok {
			problems = append(problems, fmt.Sprintf("line %d: a section for vidhub %s, which is no subcommand", sec.line, name))
		}
	}
	slices.Sort(problems)
	return problems
}

func TestCommandReference(t *testing.T) {
	doc, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	cli := map[string]cliFlags{}
	for _, c := range commands() {
		cli[c.name] = usageFlags(t, c.name)
	}
	if len(cli["publish"]) < 5 || len(cli["broker"]) < 5 {
		t.Fatalf("read too few flags from the usage: %v", cli)
	}
	for _, p := range checkReference(string(doc), cli) {
		t.Errorf("docs/commands.md: %s", p)
	}
}

// TestCommandReferenceCatches shows the check failing where it must.
func TestCommandReferenceCatches(t *testing.T) {
	cli := map[string]cliFlags{
		"room": parseUsage("usage: vidhub room [flags]\n\nflags:\n  -fast\n    \tgo fast (env VIDHUB_FAST)\n  -name string\n    \ta name (env VIDHUB_NAME, NATS_NAME) (default \"x\")\n"),
	}
	if want := (cliFlags{"fast": {"VIDHUB_FAST"}, "name": {"VIDHUB_NAME", "NATS_NAME"}}); fmt.Sprint(cli["room"]) != fmt.Sprint(want) {
		t.Fatalf("parseUsage: %v, want %v", cli["room"], want)
	}
	good := "# x\n\n### vidhub room\n\n```sh\n# a comment, not a heading\nvidhub room --fast   # comment --nope\n```\n\n| Flag | Environment |\n|---|---|\n" +
		"| `--fast` | `VIDHUB_FAST` |\n| `--name` | `VIDHUB_NAME`, `NATS_NAME` |\n\n## Other\n\n| `--other` | x |\n"
	if p := checkReference(good, cli); len(p) != 0 {
		t.Fatalf("a good reference fails: %v", p)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"missing flag", strings.Replace(good, "| `--fast` | `VIDHUB_FAST` |\n", "", 1), "--fast has no row"},
		{"unknown flag", strings.Replace(good, "| `--fast` |", "| `--slow` |", 1), "lists --slow"},
		{"missing section", strings.Replace(good, "### vidhub room", "### vidhub rooms", 1), "no section"},
		{"no example", strings.Replace(good, "vidhub room --fast", "room --fast", 1), "no example line"},
		{"bad example flag", strings.Replace(good, "vidhub room --fast", "vidhub room --quick", 1), "has no --quick"},
		{"missing variable", strings.Replace(good, ", `NATS_NAME`", "", 1), "does not name its variable NATS_NAME"},
	} {
		p := checkReference(tc.doc, cli)
		if !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: got %q, want a problem with %q", tc.name, p, tc.want)
		}
	}
}

// TestDocExamples checks the example lines of the README and every page
// of docs/: a line "vidhub <cmd> ..." in a code block names a subcommand
// and only flags it has.
func TestDocExamples(t *testing.T) {
	cli := map[string]cliFlags{}
	for _, c := range commands() {
		cli[c.name] = usageFlags(t, c.name)
	}
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	n := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fenced := false
		for i, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			ex, _, _ := strings.Cut(strings.TrimSpace(line), " #")
			m := exampleRe.FindStringSubmatch(ex)
			if !fenced || m == nil {
				continue
			}
			n++
			flags, ok := cli[m[1]]
			if !ok {
				t.Errorf("%s:%d: %q: no subcommand %s", filepath.Base(f), i+1, ex, m[1])
				continue
			}
			for _, fl := range argFlagRe.FindAllStringSubmatch(m[2], -1) {
				if _, ok := flags[fl[1]]; !ok {
					t.Errorf("%s:%d: %q: vidhub %s has no --%s", filepath.Base(f), i+1, ex, m[1], fl[1])
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d example lines", n)
	}
}

// TestDocLinks checks that the README and docs/ keep their promises: the
// README is short and says the two commands, relative links and their
// anchors resolve, and BENCHMARKS.md keeps the section vidhub bench writes.
func TestDocLinks(t *testing.T) {
	root := "../.."
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(readme, []byte("\n")); n > 200 {
		t.Errorf("README.md has %d lines; keep it to 200 and move the rest to docs/", n)
	}
	for _, cmd := range []string{"make demo", "make test", "make up"} {
		if !bytes.Contains(readme, []byte(cmd)) {
			t.Errorf("README.md does not say %q", cmd)
		}
	}
	bm, err := os.ReadFile(filepath.Join(root, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bm, []byte(bench.MarkBegin)) || !bytes.Contains(bm, []byte(bench.MarkEnd)) {
		t.Errorf("BENCHMARKS.md lacks the markers of vidhub bench --markdown")
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md"))
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkLinks(f, string(text)) {
			t.Errorf("%s: %s", filepath.Base(f), p)
		}
	}
}

var linkRe = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// checkLinks lists the relative links of the Markdown file at path (with
// its text) that point to no file, or to no heading of it.
func checkLinks(path, text string) []string {
	var problems []string
	for _, m := range linkRe.FindAllStringSubmatch(stripCode(text), -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, anchor, _ := strings.Cut(target, "#")
		full := path
		if file != "" {
			full = filepath.Join(filepath.Dir(path), file)
			if _, err := os.Stat(full); err != nil {
				problems = append(problems, fmt.Sprintf("link %s: no such file", target))
				continue
			}
		}
		if anchor == "" || !strings.HasSuffix(full, ".md") {
			continue
		}
		b, err := os.ReadFile(full)
		if err != nil {
			problems = append(problems, fmt.Sprintf("link %s: %v", target, err))
			continue
		}
		if !slices.Contains(anchors(string(b)), anchor) {
			problems = append(problems, fmt.Sprintf("link %s: no heading with that anchor", target))
		}
	}
	return problems
}

// stripCode drops fenced code blocks, where "](x)" is no link.
func stripCode(text string) string {
	var b strings.Builder
	in := false
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// anchors are the anchors GitHub gives a Markdown file's headings: lower
// case, punctuation dropped, spaces as dashes.
func anchors(text string) []string {
	var out []string
	for line := range strings.SplitSeq(stripCode(text), "\n") {
		h := strings.TrimLeft(line, "#")
		if len(h) == len(line) || !strings.HasPrefix(h, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(h)) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		out = append(out, b.String())
	}
	return out
}
