package hubtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wire is a WAN between this machine and a site in a network namespace
// of its own: a point-to-point IP link made of two TUN devices, one here
// and one in the namespace, with this process carrying each packet from
// one to the other. Real TCP runs over it, end to end, in the kernel.
//
// This kernel has tc but no netem, so the wire delays and loses packets
// itself; the uplink's rate is tc's (a tbf on the site's TUN device, so
// its queue is the kernel's, as on a router).
type Wire struct {
	t testing.TB
	// NS is the site's namespace; HubIP is this side's address, SiteIP
	// the site's.
	NS, HubIP, SiteIP string

	hubDev, siteDev string
	hub, site       *os.File
	shape           atomic.Pointer[WireShape]
	wg              sync.WaitGroup
	// Carried and Lost count packets per direction: [0] from the site
	// (up), [1] to it (down).
	Carried, Lost [2]atomic.Uint64
}

// WireShape is what the wire does to packets. Delay applies each way
// (a round trip is twice it); Loss is the fraction of uplink packets
// dropped at random; Down drops every packet both ways: the link is dead
// but both ends are up, so nobody learns of it but by silence.
type WireShape struct {
	Delay time.Duration
	Loss  float64
	Down  bool
}

// wireQueue bounds the packets in flight one way: with Delay it is the
// wire's own buffer, far more than any test's rate fills.
const wireQueue = 4096

// NewWire makes the namespace and the link, subnet picking the second
// byte of their addresses (10.subnet.x.1 here, .2 there) so the wires of
// different tests of one process stay apart. It ends the test unless it
// runs as root with ip and tc; everything goes when the test ends.
func NewWire(t testing.TB, tag string, subnet int) *Wire {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "network namespaces and TUN devices need root; CI runs as root")
	}
	NeedTools(t, "ip", "tc")
	pid := os.Getpid()
	n := pid%200 + 20
	w := &Wire{
		t:       t,
		NS:      fmt.Sprintf("vidhub-%s-%d", tag, pid),
		HubIP:   fmt.Sprintf("10.%d.%d.1", subnet, n),
		SiteIP:  fmt.Sprintf("10.%d.%d.2", subnet, n),
		hubDev:  fmt.Sprintf("vw%.1sh%d", tag, pid),
		siteDev: fmt.Sprintf("vw%.1ss%d", tag, pid),
	}
	w.shape.Store(&WireShape{})
	w.run("ip", "netns", "add", w.NS)
	t.Cleanup(w.close)
	var err error
	if w.hub, err = openTUN(w.hubDev, ""); err != nil {
		t.Fatal(err)
	}
	if w.site, err = openTUN(w.siteDev, w.NS); err != nil {
		t.Fatal(err)
	}
	w.run("ip", "addr", "add", w.HubIP, "peer", w.SiteIP, "dev", w.hubDev)
	w.run("ip", "link", "set", w.hubDev, "up")
	w.run(w.In("ip", "addr", "add", w.SiteIP, "peer", w.HubIP, "dev", w.siteDev)...)
	w.run(w.In("ip", "link", "set", w.siteDev, "up")...)
	w.run(w.In("ip", "link", "set", "lo", "up")...)
	w.wg.Add(2)
	go w.carry(w.site, w.hub, 0)
	go w.carry(w.hub, w.site, 1)
	return w
}

// In is args run inside the namespace (by ip netns exec).
func (w *Wire) In(args ...string) []string {
	return append([]string{"ip", "netns", "exec", w.NS}, args...)
}

// Shape changes what the wire does from now on; connections live on.
func (w *Wire) Shape(s WireShape) { w.shape.Store(&s) }

// RateUp lets the site send at most rate (tc's syntax: 5mbit), queueing
// at most 200 ms of it, a modest router's buffer; called again, it
// changes the rate in place.
func (w *Wire) RateUp(rate string) {
	w.t.Helper()
	w.run(w.In(tbf(w.siteDev, rate)...)...)
}

// RateDown is RateUp towards the site.
func (w *Wire) RateDown(rate string) {
	w.t.Helper()
	w.run(tbf(w.hubDev, rate)...)
}

// tbf is the tc command that limits dev's sending to rate.
func tbf(dev, rate string) []string {
	return []string{"tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "200ms"}
}

func (w *Wire) run(args ...string) {
	w.t.Helper()
	if p := Run(w.t, 30*time.Second, nil, args[0], args[1:]...); p.Code() != 0 {
		w.t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), p.Code(), p.Output())
	}
}

func (w *Wire) close() {
	for _, f := range []*os.File{w.hub, w.site} {
		if f != nil {
			f.Close() // a TUN device that is not persistent goes with its file
		}
	}
	w.wg.Wait()
	Run(w.t, 30*time.Second, nil, "ip", "netns", "del", w.NS)
}

// packet is one IP packet on the wire, due at the far end at due.
type packet struct {
	b   []byte
	due time.Time
}

// carry reads packets from one end and writes them to the other after
// the shape's delay, dropping what it says to; dir indexes the counters.
func (w *Wire) carry(from, to *os.File, dir int) {
	defer w.wg.Done()
	q := make(chan packet, wireQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range q {
			if d := time.Until(p.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := to.Write(p.b); err != nil && errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	defer func() { close(q); <-done }()
	for {
		b := make([]byte, 65536)
		n, err := from.Read(b)
		if err != nil {
			return
		}
		s := w.shape.Load()
		if s.Down || (dir == 0 && s.Loss > 0 && rand.Float64() < s.Loss) {
			w.Lost[dir].Add(1)
			continue
		}
		select {
		case q <- packet{b[:n], time.Now().Add(s.Delay)}:
			w.Carried[dir].Add(1)
		default:
			w.Lost[dir].Add(1)
		}
	}
}

// openTUN creates TUN device name (IP packets, no extra header) in
// namespace ns ("" for this process's) and returns its file, which
// non-blocking reads and Close serve through Go's poller. The device is
// not persistent: it goes when the file is closed.
func openTUN(name, ns string) (*os.File, error) {
	if ns != "" {
		runtime.LockOSThread()
		// The thread is not unlocked if it cannot go back to its own
		// namespace: the runtime then ends it with the goroutine.
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer self.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("entering namespace %s: %w", ns, err)
		}
		defer func() {
			if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("creating TUN device %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
