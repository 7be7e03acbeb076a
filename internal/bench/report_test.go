package bench

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReplaceSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	const soakBegin, soakEnd = "<!-- soak:begin -->", "<!-- soak:end -->"
	orig := "# x\n\n" + MarkBegin + "\nold bench\n" + MarkEnd + "\n\nmiddle\n\n" + soakBegin + "\nold soak\n" + soakEnd + "\n\nafter\n"
	if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceSection(p, soakBegin, soakEnd, "new soak\n"); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceSection(p, MarkBegin, MarkEnd, "new bench"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := "# x\n\n" + MarkBegin + "\n\nnew bench\n\n" + MarkEnd + "\n\nmiddle\n\n" + soakBegin + "\n\nnew soak\n\n" + soakEnd + "\n\nafter\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// Markers missing, or the end before the beginning: the file is left alone.
	for _, body := range []string{"no markers\n", soakEnd + "\n" + soakBegin + "\n"} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ReplaceSection(p, soakBegin, soakEnd, "x"); !errors.Is(err, ErrNoMarkers) {
			t.Errorf("%q: got %v, want ErrNoMarkers", body, err)
		}
		if b, _ := os.ReadFile(p); string(b) != body {
			t.Errorf("%q: file changed to %q", body, b)
		}
	}
}
