package subscriber_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// A viewer joins room lobby, where a pattern publisher sends, and gets
// alice's thumbnails (the lo layer, about 320 px wide).
func Example() {
	b, err := broker.Start(broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	pnc, err := b.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer pnc.Close()
	pub, err := publisher.New(pnc, publisher.Config{Room: "lobby", Name: "alice", Source: "pattern", FPS: 10, Width: 640, Height: 360})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	vnc, err := b.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer vnc.Close()
	got := make(chan subscriber.TileStats, 1)
	room, err := subscriber.Join(vnc, subscriber.Config{
		Room: "lobby", Name: "bob", Layer: subscriber.LayerLo, StatsEvery: 100 * time.Millisecond,
		OnStats: func(tiles []subscriber.TileStats) {
			for _, t := range tiles {
				if t.Frames > 0 {
					select {
					case got <- t:
					default:
					}
				}
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer room.Close()

	select {
	case t := <-got:
		fmt.Printf("%s watches %s in room %s: %s %dx%d\n", room.ViewerName(), t.Participant, room.Name(), t.Layer, t.Width, t.Height)
	case <-time.After(10 * time.Second):
		fmt.Println("no frame")
	}
	// Output: bob watches alice in room lobby: lo 320x180
}
