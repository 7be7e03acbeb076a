package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebugStats(t *testing.T) {
	if stop := startDebugStats(env()); stop == nil {
		t.Fatal("nil stop without the variable")
	} else {
		stop()
	}
	path := filepath.Join(t.TempDir(), "stats.jsonl")
	stop := startDebugStats(env(debugStatsEnv, path))
	stop()
	stop() // twice is fine
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a first and a final line, got %q", data)
	}
	var first, last debugStats
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if first.Final || !last.Final {
		t.Errorf("final flags: first %v, last %v", first.Final, last.Final)
	}
	if last.Goroutines < 1 || last.Heap == 0 || last.PID != os.Getpid() {
		t.Errorf("implausible stats: %+v", last)
	}
}
