package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ReportEvery is how often a viewer reports on each H.264 layer it
// receives.
const ReportEvery = 500 * time.Millisecond

// MaxReportSize bounds a receiver report; anything larger is refused
// before it is parsed.
const MaxReportSize = 256

// ErrBadReport is returned (wrapped) for a receiver report that breaks
// the protocol.
var ErrBadReport = errors.New("bad receiver report")

// Report is a receiver report (protocol v2): what one viewer received of
// one H.264 layer of one publisher over the last interval, sent every
// ReportEvery on the publisher's ParticipantReport subject as a small
// JSON document. The publisher adapts its bitrate to it. Who sent it is
// the subject's last token (Subject.From), which the broker's
// permissions can hold to the sender's own name, never the document.
//
// DelayMin and DelayMax are receipt time minus the frames' capture time
// (HeaderTime) in milliseconds. The two clocks may be machines apart: a
// reader uses them only relative to the lowest the same viewer reported
// lately (the queueing delay), never as they are.
type Report struct {
	From     string `json:"-"`    // the viewer's participant name, from the subject
	Layer    Layer  `json:"l"`    // an H.264 layer
	Interval int    `json:"ms"`   // the interval's length, ms
	Frames   int    `json:"n"`    // frames received in it
	Missed   int    `json:"miss"` // frames missing from HeaderSeq's numbering in it
	Bytes    int    `json:"b"`    // frame bytes received in it
	DelayMin int    `json:"dmin"` // lowest receipt - capture time of its frames, ms
	DelayMax int    `json:"dmax"` // highest, ms
}

// Encode marshals r.
func (r Report) Encode() ([]byte, error) { return json.Marshal(r) }

// maxReportCount bounds a report's counts: far beyond what an interval
// holds, and an int on 32-bit platforms too.
const maxReportCount = math.MaxInt32

// DecodeReport parses and checks a receiver report.
func DecodeReport(b []byte) (Report, error) {
	if len(b) > MaxReportSize {
		return Report{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadReport, len(b), MaxReportSize)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadReport, err)
	}
	if r.Layer.Codec() != CodecH264 {
		return Report{}, fmt.Errorf("%w: layer %q is not an H.264 layer (h264 or h264lo)", ErrBadReport, r.Layer)
	}
	if r.Interval <= 0 || r.Interval > 60_000 {
		return Report{}, fmt.Errorf("%w: interval %d ms is outside 1 to 60000", ErrBadReport, r.Interval)
	}
	if r.Frames < 0 || r.Missed < 0 || r.Bytes < 0 || r.Frames > maxReportCount || r.Missed > maxReportCount || r.Bytes > maxReportCount {
		return Report{}, fmt.Errorf("%w: counts %d frames, %d missed, %d bytes are out of range", ErrBadReport, r.Frames, r.Missed, r.Bytes)
	}
	const day = 86_400_000
	if r.DelayMin > r.DelayMax || r.DelayMin < -day || r.DelayMax > day {
		return Report{}, fmt.Errorf("%w: delay %d to %d ms is out of range", ErrBadReport, r.DelayMin, r.DelayMax)
	}
	return r, nil
}

// ParseReport parses a receiver report as received on subject: the
// document (DecodeReport), and From, its sender, from the subject.
func ParseReport(subject string, b []byte) (Report, error) {
	s, err := ParseSubject(subject)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadReport, err)
	}
	if !s.Report {
		return Report{}, fmt.Errorf("%w: %q is not a receiver report subject", ErrBadReport, subject)
	}
	r, err := DecodeReport(b)
	r.From = s.From
	return r, err
}

// Count adds one received frame to r: the frames missing from the
// numbering just before it, its delay (receipt - capture time) and its
// bytes.
func (r *Report) Count(missed uint64, delay time.Duration, bytes int) {
	d := int(delay.Milliseconds())
	if r.Frames == 0 || d < r.DelayMin {
		r.DelayMin = d
	}
	if r.Frames == 0 || d > r.DelayMax {
		r.DelayMax = d
	}
	r.Frames++
	r.Missed += int(min(missed, 1<<20))
	r.Bytes += bytes
}

// ReceiveRate is the rate the viewer received the layer at, in bits per
// second.
func (r Report) ReceiveRate() float64 {
	return float64(r.Bytes) * 8 * 1000 / float64(r.Interval)
}

// RefusedReport reports whether err, a connection's last error, is the
// broker refusing a receiver report: a permissions violation that names
// a report subject.
func RefusedReport(err error) bool {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	msg := err.Error()
	end := strings.LastIndexByte(msg, '"')
	if end < 0 {
		return false
	}
	start := strings.LastIndexByte(msg[:end], '"')
	if start < 0 {
		return false
	}
	s, err := ParseSubject(msg[start+1 : end])
	return err == nil && s.Report
}
