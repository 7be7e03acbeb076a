package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/internal/web"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

var demoNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

// runDemo starts everything in one process: an embedded broker, pattern
// publishers in one room, and a viewer (a window where a display exists,
// stats in the terminal otherwise).
func runDemo(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("demo")
	listen := fs.String("listen", "127.0.0.1:4222", "broker address; a free port is picked if it is taken")
	room := fs.String("room", "lobby", "room of the demo")
	n := fs.Int("publishers", 2, "number of pattern publishers (1 to 8)")
	var size sizeFlag
	size.w, size.h = publisher.DefaultWidth, publisher.DefaultHeight
	fs.Var(&size, "size", "size of the publishers' hi layer, `WxH`")
	fps := fs.Float64("fps", publisher.DefaultFPS, "frames per second of each publisher")
	webAddr := fs.String("web", "127.0.0.1:8080", "web gateway address; a free port is picked if it is taken; empty turns it off")
	var vf viewFlags
	vf.register(fs)
	var level string
	registerLogLevel(fs, &level)
	fs.envVar("listen", "VIDHUB_NATS_LISTEN")
	fs.envVar("web", "VIDHUB_WEB_LISTEN")
	fs.retire("VIDHUB_LISTEN", "listen")
	fs.retire("VIDHUB_WEB", "web")
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if err := protocol.ValidRoom(*room); err != nil {
		return usageError{err}
	}
	if *n < 1 || *n > len(demoNames) {
		return usagef("--publishers %d: use 1 to %d", *n, len(demoNames))
	}
	mode, err := vf.mode()
	if err != nil {
		return err
	}
	log, err := env.logger(level)
	if err != nil {
		return err
	}
	windowErr := subscriber.WindowAvailable(env.getenv)
	headless := vf.headless || windowErr != nil

	b, err := broker.Start(broker.Config{Listen: *listen, Logger: log})
	if errors.Is(err, broker.ErrListen) {
		log.Warn("demo broker address taken; picking a free port", "listen", *listen)
		b, err = broker.Start(broker.Config{Listen: "127.0.0.1:0", Logger: log})
	}
	if err != nil {
		return err
	}
	defer b.Close()
	url := b.ClientURL()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	names := demoNames[:*n]
	for _, name := range names {
		nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "vidhub demo " + name, Logger: log})
		if err != nil {
			return err
		}
		pub, err := publisher.New(nc, publisher.Config{
			Room: *room, Name: name, Source: "pattern", FPS: *fps, Width: size.w, Height: size.h, Logger: log,
			Codec: publisher.DefaultCodec(),
		})
		if err != nil {
			nc.Close()
			return badPublisherConfig(err)
		}
		wg.Go(func() {
			defer natsconn.Close(nc)
			if err := pub.Run(ctx); err != nil {
				log.Error("demo publisher stopped", "name", name, "err", err)
			}
		})
	}

	webLine := "off (--web \"\")"
	if *webAddr != "" {
		g, err := startDemoWeb(url, *webAddr, log)
		if err != nil {
			return err
		}
		defer g.close()
		webLine = g.URL() + "/rooms/" + *room + "  (all rooms: " + g.URL() + "/)"
	}

	viewer := "window (press q or Esc in it to quit)"
	if headless {
		viewer = "stats in this terminal, every second (Ctrl-C quits)"
		if !vf.headless {
			viewer += "; no window because: " + windowErr.Error()
		}
	}
	fmt.Fprintf(env.stdout, `vidhub demo
  broker      %s (embedded NATS)
  room        %s: %s publishing a %dx%d pattern at %g fps
  viewer      %s
  browser     %s

Connect more to it from another terminal:
  vidhub view    --nats %[1]s --room %[2]s
  vidhub view    --nats %[1]s --room %[2]s --headless --json
  vidhub publish --nats %[1]s --room %[2]s --name you --source 0      (a camera)
  vidhub join    --nats %[1]s --room %[2]s --name you --source 0      (publish and view: a video chat)
  vidhub rooms   --nats %[1]s
  nats sub --server %[1]s 'vidhub.%[2]s.*.presence'                (any NATS client can watch)

`, url, *room, strings.Join(names, ", "), size.w, size.h, *fps, viewer, webLine)

	vnc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "vidhub demo viewer", Logger: log})
	if err != nil {
		return err
	}
	defer natsconn.Close(vnc)
	vf.headless = headless
	err = watch(ctx, env, vnc, subscriber.Config{Room: *room, Layer: mode, Logger: log}, vf)
	cancel()
	return err
}

// demoWeb is the demo's web gateway and its connection.
type demoWeb struct {
	*web.Gateway
	nc *nats.Conn
}

func (d demoWeb) close() {
	d.Close()
	natsconn.Close(d.nc)
}

// startDemoWeb starts a web gateway on addr, or on a free port of the same
// host when addr is taken.
func startDemoWeb(url, addr string, log *slog.Logger) (demoWeb, error) {
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "vidhub demo web", Logger: log})
	if err != nil {
		return demoWeb{}, err
	}
	g, err := startWeb(nc, addr, log)
	if errors.Is(err, web.ErrListen) {
		host, _, _ := net.SplitHostPort(addr)
		log.Warn("demo web address taken; picking a free port", "listen", addr)
		g, err = startWeb(nc, net.JoinHostPort(host, "0"), log)
	}
	if err != nil {
		natsconn.Close(nc)
		return demoWeb{}, err
	}
	return demoWeb{g, nc}, nil
}

func startWeb(nc *nats.Conn, addr string, log *slog.Logger) (*web.Gateway, error) {
	g, err := web.New(web.Config{Conn: nc, Listen: addr, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := g.Start(); err != nil {
		return nil, err
	}
	return g, nil
}
