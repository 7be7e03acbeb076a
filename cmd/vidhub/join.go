package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// runJoin publishes and views one room at once: a video chat. The
// participant's own tile is marked in the window.
func runJoin(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("join")
	var pf publishFlags
	var vf viewFlags
	var cf clientFlags
	pf.register(fs)
	vf.register(fs)
	cf.register(fs)
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if err := pf.check(fs, cf.user); err != nil {
		return err
	}
	mode, err := vf.mode()
	if err != nil {
		return err
	}
	if !vf.headless {
		if err := subscriber.WindowAvailable(env.getenv); err != nil {
			return err
		}
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub join "+pf.room+"/"+pf.name, log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	// A chat shows at least two tiles, so auto means lo.
	views := []protocol.Layer{protocol.Lo}
	if mode == subscriber.LayerHi {
		views = []protocol.Layer{protocol.Hi}
	}
	if subscriber.DecodesH264() {
		// The room takes H.264 from publishers that send it; one that
		// sends only JPEG sends it whether watched or not.
		views = []protocol.Layer{views[0].As(protocol.CodecH264)}
	}
	pub, err := publisher.New(nc, pf.config(log, views))
	if err != nil {
		return badPublisherConfig(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var pubErr error
	wg.Go(func() {
		defer cancel()
		pubErr = pub.Run(ctx)
	})
	fmt.Fprintf(env.stdout, "joined room %s as %s, publishing %s\n", pf.room, pf.name, pf.source)
	rcfg := subscriber.Config{Room: pf.room, Name: pf.name, Layer: mode, NoPresence: true, Self: pf.name, Logger: log}
	viewErr := watch(ctx, env, nc, rcfg, vf)
	cancel()
	wg.Wait()
	if viewErr != nil {
		return viewErr
	}
	return pubErr
}
