package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

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

// withRight runs do, which works on recordings through JetStream, so that
// the broker refusing one of its requests ends it at once (a refused
// request gets no answer and would wait out its timeout) with an error
// that names the right of the access file to grant: right in room, or
// for listing (room "") in any room.
func withRight(ctx context.Context, nc *nats.Conn, cf clientFlags, right access.Right, room string, do func(context.Context) error) error {
	wctx, w := access.WatchJetStream(ctx, nc, right, room, cf.user)
	defer w.Stop()
	return w.Err(do(wctx))
}
