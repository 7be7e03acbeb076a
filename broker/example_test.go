package broker_test

import (
	"fmt"
	"log"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/protocol"
)

// An embedded broker on a free loopback port (port -1), and
// one message through it.
func Example() {
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	nc, err := b.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	sub, err := nc.SubscribeSync(protocol.RoomAll("lobby"))
	if err != nil {
		log.Fatal(err)
	}
	a, _ := protocol.NewAddress("lobby", "alice")
	if err := nc.Publish(a.PresenceSubject(), []byte(`{"v":1,"role":"viewer"}`)); err != nil {
		log.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Subject, string(m.Data))
	// Output: vidhub.lobby.alice.presence {"v":1,"role":"viewer"}
}
