package protocol

// Chain follows the reference chain of one participant's H.264 frames as
// they arrive, and says which of them can be decoded: latest decodable
// frame wins. A delta refers to the frame before it, so it can be decoded
// only at the end of an unbroken run of frames since a keyframe. A viewer
// that joins mid-GOP, or finds a frame missing from a layer's HeaderSeq
// numbering, drops deltas until the next keyframe, and asks the publisher
// for one (the caller asks, at its own pace: Chain only keeps the count).
//
// A frame of another layer than the last starts a new stream, and so does
// one numbered at or below the last (the publisher started again and
// numbers from 1). A frame numbered 0 is not numbered (a browser may leave
// numbering to the gateway): it neither shows nor makes a gap.
//
// The zero Chain waits for a keyframe. A Chain is not safe for
// concurrent use.
type Chain struct {
	layer Layer
	seq   uint64 // of the last numbered frame offered; 0: none since the stream started
	ok    bool   // the frames passed since the last keyframe are unbroken
	// mended is the last frame of the run a Mend delivered, while frames
	// up to it may still be on their way live (Old); 0: none.
	mended uint64
}

// Offer takes the metadata of the next frame of layer l, in the order
// frames arrive, and reports whether it passes: a keyframe always does, a
// delta only when it continues an unbroken run since a keyframe. A frame
// that does not pass is to be dropped, and the publisher asked for a
// keyframe; everything after it fails too, until a keyframe. restart
// reports that the frame starts a new stream (another layer, or a
// publisher that started again): what is kept of the old one is stale.
func (c *Chain) Offer(l Layer, m FrameMeta) (pass, restart bool) {
	if c.mended != 0 && (l != c.layer || m.Seq > c.mended || m.Key) {
		c.mended = 0
	}
	switch {
	case l != c.layer:
		c.layer, c.seq, c.ok, restart = l, 0, false, true
	case m.Seq == 0 || c.seq == 0:
		// Not numbered, or the first numbered frame: no gap to see.
	case m.Seq <= c.seq:
		c.ok, restart = false, true
	case m.Seq != c.seq+1:
		c.ok = false // a frame is missing: what follows refers to it
	}
	if m.Seq != 0 {
		c.seq = m.Seq
	}
	if m.Key {
		c.ok = true
	}
	return c.ok, restart
}

// Break marks the chain broken where it stands: a frame that passed was
// not delivered or not decoded (a full queue, a decoder error, a failed
// publish), or the stream's parameters changed. Nothing passes until the
// next keyframe.
func (c *Chain) Break() { c.ok = false }

// Mend marks a broken chain whole again without a keyframe offered: the
// caller delivered a run that starts at a keyframe, joins up with the
// frames offered so far and ends at frame last (a GOP reply, which can
// overtake live frames on their way). Numbering goes on from last; the
// live deltas up to it are Old.
func (c *Chain) Mend(last uint64) {
	c.ok = true
	if last > c.seq {
		c.seq, c.mended = last, last
	}
}

// Old reports whether a frame of layer l was delivered already, in the
// run of the last Mend, though it arrives live only now: the caller drops
// it without offering it. A keyframe is never old (offered, it restarts
// the chain there, which decodes cleanly).
func (c *Chain) Old(l Layer, m FrameMeta) bool {
	return c.mended != 0 && l == c.layer && m.Seq != 0 && m.Seq <= c.mended && !m.Key
}

// NeedKey reports whether the chain waits for a keyframe: the next delta
// would not pass.
func (c *Chain) NeedKey() bool { return !c.ok }

// Layer is the layer of the stream the chain follows: that of the last
// frame offered.
func (c *Chain) Layer() Layer { return c.layer }

// Seq is the number of the last numbered frame offered since the stream
// started, 0 if none.
func (c *Chain) Seq() uint64 { return c.seq }
