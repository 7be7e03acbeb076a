package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is stamped at build time with -ldflags "-X main.version=...";
// otherwise it comes from the module's build info.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && v == "(devel)" && len(s.Value) >= 12 {
				v = "devel-" + s.Value[:12]
			}
		}
		return v
	}
	return "devel"
}

func runVersion(_ context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("version")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "vidhub %s (%s, %s/%s, %s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH, opencvVersion())
	return nil
}
