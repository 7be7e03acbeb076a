package bench

import (
	"fmt"
	"strings"
)

// Targets of recording (issue 12: recording rooms on JetStream).
const (
	targetRecordCores    = 0.15 // broker cores, recording 4 720p30 H.264 publishers against not
	targetRecordBytes    = 0.10 // the store within this fraction of the bytes published
	targetSeekP95        = 300  // ms, a replay's Join to its first decoded picture
	targetReplayJitterMS = 5    // ms, p99 of |arrival interval - capture interval| at 1x
	targetExportMinuteMS = 2000 // ms to export a minute of video
	// exportMinSpan is the shortest span whose export time is scaled to a
	// minute: below it, fixed costs would dominate the figure.
	exportMinSpan = 5.0 // s
)

func recordTargets(r *RecordReport) []Target {
	names := []struct{ name, want string }{
		{fmt.Sprintf("broker CPU recording %d publishers of 720p30 H.264, against not recording", recordPublishers),
			fmt.Sprintf("<= %.2f cores more", targetRecordCores)},
		{"bytes the store holds, against the bytes published", fmt.Sprintf("within %.0f%%", targetRecordBytes*100)},
		{fmt.Sprintf("seek: a replay from now-%v to its first decoded picture", recordSeekBack), fmt.Sprintf("p95 <= %d ms", targetSeekP95)},
		{"replay at 1x: each interval between frames against their capture interval", fmt.Sprintf("p99 of the difference <= %d ms", targetReplayJitterMS)},
		{"exporting a minute of one participant's H.264 to MP4", fmt.Sprintf("<= %d ms", targetExportMinuteMS)},
	}
	out := make([]Target, len(names))
	for i, n := range names {
		out[i] = Target{Name: n.name, Want: n.want, Status: NotMeasured, Got: "not measured"}
	}
	if r.NotMeasured != "" {
		for i := range out {
			out[i].Got = r.NotMeasured
		}
		return out
	}
	switch {
	case r.CPUOn < 0 || r.CPUOff < 0:
		out[0].Got = "needs separate processes (vidhub bench, not the in-process test run)"
	default:
		d := r.CPUOn - r.CPUOff
		out[0].Got = fmt.Sprintf("%+.3f cores (%.3f recording against %.3f not, %d publishers, %.0f s each)", d, r.CPUOn, r.CPUOff, r.Publishers, r.Window)
		out[0].Status = status(d <= targetRecordCores)
		if r.Publishers < recordPublishers {
			out[0].Got += " (quick run)"
			out[0].Status = NotMeasured
		}
	}
	if r.PublishedBytes > 0 {
		x := float64(r.StoredBytes) / float64(r.PublishedBytes)
		out[1].Got = fmt.Sprintf("%.3f of it: stored %d bytes in %d messages, published %d bytes in %d", x, r.StoredBytes, r.StoredMsgs, r.PublishedBytes, r.PublishedMsgs)
		out[1].Status = status(x >= 1-targetRecordBytes && x <= 1+targetRecordBytes)
	}
	if s := r.Seek; len(s.Samples) > 0 || s.Failed > 0 {
		out[2].Got = fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms over %d replays (%d without a picture in %v)",
			s.P50, s.P95, s.Max, s.Joins, s.Failed, joinWait)
		if l := r.LiveJoin; len(l.Samples) > 0 {
			out[2].Got += fmt.Sprintf("; live join p50 %.0f ms, p95 %.0f ms", l.P50, l.P95)
		}
		out[2].Status = status(len(s.Samples) > 0 && s.P95 <= targetSeekP95 && s.Failed == 0)
		if r.SeekBack < recordSeekBack.Seconds() {
			out[2].Got = fmt.Sprintf("from now-%gs (quick run): %s", r.SeekBack, out[2].Got)
			out[2].Status = NotMeasured
		}
	}
	// The target is read on the replay's own pacing where it was
	// measured apart from decoding, else on the viewers'; with the
	// publishers' encoders on the same cores at their normal priority,
	// and with them niced (deployed, they run on the cameras) beside it.
	var replay, live, niced *TimingResult
	for i := range r.Timing {
		switch r.Timing[i].Path {
		case "replay 1x":
			if replay == nil {
				replay = &r.Timing[i]
			}
		case "live":
			if live == nil {
				live = &r.Timing[i]
			}
		case pathReplayReader:
			replay = &r.Timing[i]
		case pathLiveSub:
			live = &r.Timing[i]
		case pathReplayNiced:
			niced = &r.Timing[i]
		}
	}
	if replay != nil && replay.Pairs > 0 {
		out[3].Got = fmt.Sprintf("%s: p50 %.2f ms, p99 %.2f ms over %d intervals", replay.Path, replay.P50, replay.P99, replay.Pairs)
		if live != nil && live.Pairs > 0 {
			out[3].Got += fmt.Sprintf("; %s p50 %.2f ms, p99 %.2f ms", live.Path, live.P50, live.P99)
		}
		if niced != nil && niced.Pairs > 0 {
			out[3].Got += fmt.Sprintf("; %s: p50 %.2f ms, p99 %.2f ms", niced.Path, niced.P50, niced.P99)
		}
		out[3].Status = status(replay.P99 <= targetReplayJitterMS)
	}
	if e := r.Export; e != nil && e.Frames > 0 {
		out[4].Got = fmt.Sprintf("%.0f ms per minute: %.0f ms for %.1f s of video (%d frames, %d bytes), scaled",
			e.PerMinuteMS, e.MS, e.Span, e.Frames, e.Bytes)
		out[4].Status = status(e.PerMinuteMS <= targetExportMinuteMS)
		if e.Span < exportMinSpan {
			out[4].Got += fmt.Sprintf(" (a span under %g s: too short to scale)", exportMinSpan)
			out[4].Status = NotMeasured
		}
	}
	return out
}

// markdown writes the recording figures as Markdown tables.
func (r *RecordReport) markdown(b *strings.Builder) {
	if r.NotMeasured != "" {
		fmt.Fprintf(b, "Recording %s.\n\n", r.NotMeasured)
	} else {
		b.WriteString("| recording (720p30 H.264 publishers, h264 + h264lo + presence kept) | publishers | window s | broker CPU (cores) | published bytes | messages | stored bytes | messages | stored / published |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		x := 0.0
		if r.PublishedBytes > 0 {
			x = float64(r.StoredBytes) / float64(r.PublishedBytes)
		}
		fmt.Fprintf(b, "| not recording | %d | %.0f | %s | | | | | |\n", r.Publishers, r.Window, cores(r.CPUOff))
		fmt.Fprintf(b, "| recording | %d | %.0f | %s | %d | %d | %d | %d | %.3f |\n\n", r.Publishers, r.Window, cores(r.CPUOn),
			r.PublishedBytes, r.PublishedMsgs, r.StoredBytes, r.StoredMsgs, x)
		b.WriteString("| join (hi) | joins | first picture p50 ms | p95 ms | max ms | failed |\n|---|--:|--:|--:|--:|--:|\n")
		for _, j := range []JoinResult{r.Seek, r.LiveJoin} {
			name := j.Codec
			if name == "replay" {
				name = fmt.Sprintf("replay from now-%gs", r.SeekBack)
			}
			fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.0f | %d |\n", name, j.Joins, j.P50, j.P95, j.Max, j.Failed)
		}
		b.WriteString("\n")
	}
	if len(r.Timing) > 0 {
		b.WriteString("| frame timing (viewers: hi, decoded; reader and subscription: h264, not decoded) | intervals | \\|arrival - capture interval\\| p50 ms | p99 ms | max ms | fps per publisher |\n|---|--:|--:|--:|--:|--:|\n")
		for _, t := range r.Timing {
			fmt.Fprintf(b, "| %s | %d | %.2f | %.2f | %.2f | %.1f |\n", t.Path, t.Pairs, t.P50, t.P99, t.Max, t.FPS)
		}
		b.WriteString("\n")
	}
	if e := r.Export; e != nil {
		b.WriteString("| export to MP4 | span s | frames | bytes | ms | ms per minute of video |\n|---|--:|--:|--:|--:|--:|\n")
		fmt.Fprintf(b, "| %s, h264 | %.1f | %d | %d | %.0f | %.0f |\n\n", e.Participant, e.Span, e.Frames, e.Bytes, e.MS, e.PerMinuteMS)
	}
	b.WriteString("| target | want | got | status |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(b, "| %s | %s | %s | **%s** |\n", t.Name, t.Want, t.Got, t.Status)
	}
}
