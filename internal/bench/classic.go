package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net"
	"sync"
	"time"
)

// classicHeader is the classic design's framing, made explicit: the
// payload length, then (our addition, for latency) the send time.
const classicHeader = 8 + 8

// maxClassic bounds the frames one classic run sends.
const maxClassic = 1_000_000

// classic runs the design vidhub replaces, in Go: a server writes raw BGR
// frames, length-prefixed, to one TCP client over loopback, paced at fps
// or (0) as fast as the socket takes them. There is no encoding and no
// broker, and there can be only one viewer.
func classic(ctx context.Context, env *runEnv, fps float64) (Result, error) {
	bgr, err := toBGR(env.p.hi[0])
	if err != nil {
		return Result{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		context.AfterFunc(cctx, func() { conn.Close() })
		serveClassic(cctx, conn, bgr, fps)
	})
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return Result{}, err
	}
	context.AfterFunc(cctx, func() { conn.Close() })
	cv := &classicViewer{}
	wg.Go(func() { cv.read(conn) })

	name, note := "classic-30fps", "raw BGR 720p, length-prefixed, one TCP client, paced at 30 fps"
	if fps == 0 {
		name, note = "classic-ceiling", "raw BGR 720p, length-prefixed, one TCP client, unpaced"
	}
	r := Result{Scenario: name, Kind: KindClassic, Impl: "classic", Publishers: 1, Viewers: 1, Note: note}
	r, err = env.measure(ctx, cv, nil, float64(len(bgr)+classicHeader), r)
	cancel()
	return r, err
}

func serveClassic(ctx context.Context, conn net.Conn, bgr []byte, fps float64) {
	var hdr [classicHeader]byte
	var interval time.Duration
	if fps > 0 {
		interval = time.Duration(float64(time.Second) / fps)
	}
	next := time.Now()
	for range maxClassic {
		if ctx.Err() != nil {
			return
		}
		if interval > 0 {
			next = next.Add(interval)
			if err := sleep(ctx, time.Until(next)); err != nil {
				return
			}
		}
		binary.BigEndian.PutUint64(hdr[:8], uint64(len(bgr)))
		binary.BigEndian.PutUint64(hdr[8:], uint64(time.Now().UnixNano()))
		if _, err := conn.Write(hdr[:]); err != nil {
			return
		}
		if _, err := conn.Write(bgr); err != nil {
			return
		}
	}
}

// classicViewer reads frames into one reused buffer.
type classicViewer struct {
	mu     sync.Mutex
	frames uint64
	base   uint64
	rec    bool
	lat    []float64
	t0     time.Time
}

func (c *classicViewer) read(conn net.Conn) {
	var hdr [classicHeader]byte
	var buf []byte
	for range maxClassic {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint64(hdr[:8])
		if n > 64<<20 {
			return
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(conn, buf[:n]); err != nil {
			return
		}
		now := time.Now().UnixNano()
		c.mu.Lock()
		c.frames++
		if c.rec && len(c.lat) < maxSamples {
			c.lat = append(c.lat, float64(now-int64(binary.BigEndian.Uint64(hdr[8:])))/float64(time.Millisecond))
		}
		c.mu.Unlock()
	}
}

func (c *classicViewer) begin() {
	c.mu.Lock()
	c.base, c.rec, c.t0 = c.frames, true, time.Now()
	c.mu.Unlock()
}

func (c *classicViewer) end() window {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec = false
	el := time.Since(c.t0).Seconds()
	d := c.frames - c.base
	var s samples
	s.addAll(c.lat)
	return window{streamFPS: []float64{float64(d) / el}, frames: d, lat: s.sorted(), seconds: el}
}

func (c *classicViewer) close() {}

// toBGR decodes a JPEG into packed BGR bytes, as OpenCV holds a frame.
func toBGR(jpg []byte) ([]byte, error) {
	img, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		return nil, fmt.Errorf("bench: decoding a payload: %w", err)
	}
	b := img.Bounds()
	out := make([]byte, 0, b.Dx()*b.Dy()*3)
	rgba := toRGBA(img)
	for i := 0; i < len(rgba.Pix); i += 4 {
		out = append(out, rgba.Pix[i+2], rgba.Pix[i+1], rgba.Pix[i])
	}
	return out, nil
}

// toRGBA converts any image to RGBA.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			r, g, bl, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8(r>>8), uint8(g>>8), uint8(bl>>8), uint8(a>>8)
		}
	}
	return out
}
