package subscriber

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// benchRoom is a Room as Join leaves it, without a connection: enough for
// the frame callback, which never touches the connection.
func benchRoom(keep bool) *Room {
	return &Room{
		cfg:     Config{Room: "lobby", Name: "viewer", Layer: LayerHi, KeepFrames: keep},
		log:     slog.New(slog.DiscardHandler),
		tiles:   map[string]*Tile{},
		viewers: map[string]time.Time{},
		left:    map[string]time.Time{},
		layer:   protocol.Hi,
		changed: make(chan struct{}, 1),
	}
}

var benchJPEG = append(append([]byte{0xFF, 0xD8}, make([]byte, 40<<10)...), 0xFF, 0xD9)

// frameMsgs returns n frame messages of alice's hi layer, as NATS hands
// them to the callback.
func frameMsgs(n int) []*nats.Msg {
	a, _ := protocol.NewAddress("lobby", "alice")
	msgs := make([]*nats.Msg, n)
	now := time.Now().UnixNano()
	for i := range msgs {
		msgs[i] = &nats.Msg{Subject: a.FrameSubject(protocol.Hi), Data: benchJPEG,
			Header: protocol.FrameHeaders(protocol.FrameMeta{Seq: uint64(i + 1), Time: now, Width: 1280, Height: 720})}
	}
	return msgs
}

// BenchmarkHotRoomOnFrame is the whole NATS callback of a viewer: parse
// the subject and the frame, find the tile, count, swap the slot.
func BenchmarkHotRoomOnFrame(b *testing.B) {
	for _, keep := range []bool{false, true} {
		name := "headless"
		if keep {
			name = "keepframes"
		}
		b.Run(name, func(b *testing.B) {
			r := benchRoom(keep)
			msgs := frameMsgs(1024)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.onFrame(msgs[i%len(msgs)])
				if i%4000 == 0 {
					r.Tiles()[0].roll(time.Now()) // as the stats loop does, so samples do not pile up
				}
			}
		})
	}
}

// BenchmarkHotTileSlotSwap is the latest-frame-wins slot: the callback
// stores, the renderer takes.
func BenchmarkHotTileSlotSwap(b *testing.B) {
	t := newTile("lobby", "alice", false, time.Now())
	m := protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 1280, Height: 720}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Seq = uint64(i + 1)
		t.onFrame(protocol.Hi, m, benchJPEG, time.Now(), true)
		if t.Take() == nil {
			b.Fatal("no frame in the slot")
		}
		if i%4000 == 0 {
			t.roll(time.Now())
		}
	}
}

// TestFrameCallbackAllocs pins the allocations of a viewer's frame
// callback: none for a headless viewer, the one Frame for a renderer.
func TestFrameCallbackAllocs(t *testing.T) {
	for _, c := range []struct {
		keep bool
		max  float64
	}{{false, 0}, {true, 1}} {
		r := benchRoom(c.keep)
		msgs := frameMsgs(256)
		r.onFrame(msgs[0]) // the tile is made once
		i := 1
		got := testing.AllocsPerRun(200, func() {
			r.onFrame(msgs[i%len(msgs)])
			i++
		})
		if got > c.max {
			t.Errorf("keep frames %v: %.1f allocations per frame, want at most %.0f", c.keep, got, c.max)
		}
		if st := r.Stats(); len(st) != 1 || st[0].Frames == 0 {
			t.Fatalf("frames were not counted: %+v", st)
		}
	}
}
