package main

import (
	"context"
	"fmt"

	"github.com/vidhub/vidhub/internal/access"
)

// runAccess works on access files: "nats-config FILE" prints the
// authorization block for a stock nats-server, "check FILE" checks it.
func runAccess(_ context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("access")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fs.Usage()
		return errHelp
	}
	if len(args) != 2 || (args[0] != "nats-config" && args[0] != "check") {
		fs.Usage()
		return usagef("access: want nats-config FILE or check FILE")
	}
	f, err := access.Load(args[1])
	if err != nil {
		return err
	}
	if args[0] == "check" {
		fmt.Fprintf(env.stdout, "%s: %d users, ok\n", args[1], len(f.Users))
		return nil
	}
	_, err = fmt.Fprint(env.stdout, f.NATSConfig())
	return err
}
