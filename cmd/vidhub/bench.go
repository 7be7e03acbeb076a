package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vidhub/vidhub/internal/bench"
)

// runBench runs the benchmark suite: vidhub against raw NATS and the
// classic design, in one run, on loopback.
func runBench(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("bench")
	out := fs.String("out", "bench-results", "folder for results.json, results.txt and chart.svg")
	duration := fs.Duration("duration", 0, "how long each scenario is measured after its warm-up (default 5s, 1.5s with --quick)")
	quick := fs.Bool("quick", false, "small viewer counts and short scenarios: a smoke test")
	only := fs.String("only", "", "comma-separated scenarios to run: "+strings.Join(bench.Kinds, ", ")+" (default all)")
	inProcess := fs.Bool("in-process", false, "run broker, publishers and gateway in this process (no per-side CPU)")
	markdown := fs.String("markdown", "", "Markdown file whose generated section to update with the figures, e.g. BENCHMARKS.md")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	opts := bench.Options{Duration: *duration, Quick: *quick, Progress: env.stderr}
	for k := range strings.SplitSeq(*only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			opts.Only = append(opts.Only, k)
		}
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding this binary to run the sides as processes: %w; use --in-process", err)
		}
		opts.Exe = exe
	}
	start := time.Now()
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		if errors.Is(err, bench.ErrBadOptions) {
			return usageError{err}
		}
		return err
	}
	if err := rep.WriteTable(env.stdout); err != nil {
		return err
	}
	if err := bench.WriteResults(*out, rep); err != nil {
		return fmt.Errorf("bench: writing results to %s: %w", *out, err)
	}
	if *markdown != "" {
		if err := bench.UpdateMarkdown(*markdown, rep); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "\nresults in %s (results.json, results.txt, chart.svg) after %s\n", *out, time.Since(start).Round(time.Second))
	return nil
}
