package publisher_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// A pattern publisher (no camera needed) in room lobby as alice, on an
// embedded broker; a plain NATS subscriber gets its frames: one JPEG per
// message, with protocol v1's headers.
func Example() {
	b, err := broker.Start(broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	nc, err := b.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	a, _ := protocol.NewAddress("lobby", "alice")
	sub, err := nc.SubscribeSync(a.FrameSubject(protocol.Hi))
	if err != nil {
		log.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		log.Fatal(err)
	}

	pub, err := publisher.New(nc, publisher.Config{Room: "lobby", Name: "alice", Source: "pattern", FPS: 10, Width: 640, Height: 360})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	meta, err := protocol.ParseFrame(m.Header, m.Data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Subject, m.Header.Get(protocol.HeaderContentType), meta.Width, meta.Height)
	// Output: vidhub.lobby.alice.hi image/jpeg 640 360
}
