package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// publishFlags are the flags of publish and join.
type publishFlags struct {
	room, name, source string
	fps                float64
	size               sizeFlag
	quality            int
	loop               bool
	encode             string
	codec              string
	bitrate            int
	keyint             time.Duration
	adapt              bool
	minBitrate         int
}

func (p *publishFlags) register(fs *flagSet) {
	fs.StringVar(&p.room, "room", "lobby", "room to publish into ("+protocol.NameRule+")")
	fs.StringVar(&p.name, "name", "", "participant name ("+protocol.NameRule+"); defaults to --user, else the host name")
	fs.StringVar(&p.source, "source", "", "what to capture: a camera (0, /dev/video0), a file, a stream URL, gst:<pipeline ending in appsink>, or pattern")
	fs.Float64Var(&p.fps, "fps", publisher.DefaultFPS, "frames per second")
	fs.Var(&p.size, "size", "size of the hi layer, `WxH` (default: the source's own; 1280x720 for pattern)")
	fs.IntVar(&p.quality, "quality", publisher.DefaultQuality, "JPEG quality, 1 to 100")
	fs.BoolVar(&p.loop, "loop", false, "restart a file source at its end")
	fs.StringVar(&p.encode, "encode", string(publisher.EncodeAuto), "which layers to encode: auto (H.264 always, JPEG while some viewer's presence asks for it; with --codec jpeg, all), all, or watched (only layers some viewer's presence asks for: an idle publisher costs next to nothing, but viewers that announce no presence, such as nats sub, get nothing)")
	fs.StringVar(&p.codec, "codec", string(publisher.DefaultCodec()), "h264 (H.264 layers, and JPEG ones on demand) or jpeg (JPEG layers only, as protocol v1); h264 needs the full or lite build")
	fs.IntVar(&p.bitrate, "bitrate", 0, "H.264 target in bits per second (e.g. 1500000); 0 picks one from size and fps (about 1.4 Mbit/s for 720p30)")
	fs.BoolVar(&p.adapt, "adapt", true, "adapt the H.264 layers it encodes to what viewers' receiver reports say of the path: bitrate down to --min-bitrate, then half the frame rate, then half the size, and back (a camera's own H.264 passed through is never re-rated)")
	fs.IntVar(&p.minBitrate, "min-bitrate", 0, "lowest bitrate --adapt takes the h264 layer to, bits per second; 0 means a fifth of --bitrate")
	fs.DurationVar(&p.keyint, "keyint", publisher.DefaultKeyInt, "longest time between two H.264 keyframes (viewers that join or lose a frame ask for one sooner)")
}

// check fills in the default name (the NATS user, whom the broker's
// permissions let publish only under its own name, else the host name)
// and checks the flags.
func (p *publishFlags) check(fs *flagSet, user string) error {
	if p.name == "" && !fs.isSet("name") {
		p.name = user
		if p.name == "" {
			p.name = defaultName()
		}
	}
	if _, err := protocol.NewAddress(p.room, p.name); err != nil {
		return usageError{err}
	}
	if _, err := publisher.ParseEncode(p.encode); err != nil {
		return usageError{err}
	}
	if _, err := publisher.ParseCodec(p.codec); err != nil {
		return usageError{err}
	}
	if protocol.Codec(p.codec) == protocol.CodecH264 && publisher.DefaultCodec() != protocol.CodecH264 {
		return usagef("--codec h264: %v", publisher.ErrNoH264)
	}
	if p.source == "" {
		return usagef("--source is required: a camera (0 or /dev/video0), a file, a stream URL, gst:<pipeline> or pattern")
	}
	return nil
}

func (p *publishFlags) config(log *slog.Logger, views []protocol.Layer) publisher.Config {
	return publisher.Config{
		Room: p.room, Name: p.name, Source: p.source, FPS: p.fps,
		Width: p.size.w, Height: p.size.h, Quality: p.quality, Loop: p.loop,
		Views: views, Encode: publisher.Encode(p.encode), Logger: log,
		Codec: protocol.Codec(p.codec), Bitrate: p.bitrate, KeyInt: p.keyint,
		Adapt: p.adapt, MinBitrate: p.minBitrate,
	}
}

func runPublish(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("publish")
	var pf publishFlags
	var cf clientFlags
	pf.register(fs)
	cf.register(fs)
	if err := env.parse(fs, args); err != nil {
		return err
	}
	if err := pf.check(fs, cf.user); err != nil {
		return err
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	ncfg := cf.config("vidhub publish "+pf.room+"/"+pf.name, log)
	// A publisher runs all day: it waits for a broker that is not up yet.
	ncfg.Wait = true
	nc, err := natsconn.Connect(ncfg)
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	pub, err := publisher.New(nc, pf.config(log, nil))
	if err != nil {
		return badPublisherConfig(err)
	}
	w, h := pub.Size()
	fmt.Fprintf(env.stdout, "publishing %s into room %s as %s: %dx%d at %g fps, %s, to %s\n",
		pf.source, pf.room, pf.name, w, h, pf.fps, pf.codec, natsconn.Redact(cf.url))
	return pub.Run(ctx)
}

// badPublisherConfig marks publisher settings that cannot work (--fps,
// --quality, --size, --loop with a live source) as a usage error.
func badPublisherConfig(err error) error {
	if errors.Is(err, publisher.ErrBadConfig) {
		return usageError{err}
	}
	return err
}
