package bench

import (
	"fmt"
	"strings"

	"github.com/vidhub/vidhub/protocol"
)

// Targets of the H.264 work (issue: H.264 layers).
const (
	targetPublisherCores = 0.30 // every layer watched, 720p30
	targetViewers        = 50   // decoding viewers of one 720p30 publisher
	targetViewerFPS      = 29.5 // each of them
	targetJoinP95        = 300  // ms, late join to the first decoded picture
	targetLatencyDelta   = 10   // ms, H.264 p50 over JPEG's
	targetStallMS        = 500  // ms, stall to live pictures
	targetWebSockets     = 100  // WebSocket viewers of the gateway target
	targetWebCores       = 0.5  // gateway, targetWebSockets viewers of an H.264 room
	targetWebFPS         = 27   // fps median: the sockets keep up with 30 fps
	targetRTSPCores      = 0.05 // an RTSP H.264 camera passed through, no JPEG watched
)

func (h *H264Report) quality(prefix string) (QualityResult, bool) {
	for _, q := range h.Quality {
		if strings.HasPrefix(q.Setting, prefix) {
			return q, true
		}
	}
	return QualityResult{}, false
}

func (h *H264Report) latency(codec string) (LatencyResult, bool) {
	for _, l := range h.Latency {
		if l.Codec == codec {
			return l, true
		}
	}
	return LatencyResult{}, false
}

func h264Targets(h *H264Report) []Target {
	names := []struct{ name, want string }{
		{"H.264 quality: SSIM at a tenth of JPEG q80's bitrate", "SSIM >= JPEG q80's, measured bitrate <= 1/10 of JPEG's"},
		{"publisher CPU, 720p30, H.264 with every layer watched", fmt.Sprintf("<= %.2f cores", targetPublisherCores)},
		{"late join to the first decoded picture", fmt.Sprintf("p95 <= %d ms", targetJoinP95)},
		{"latency capture to picture, H.264 against JPEG", fmt.Sprintf("p50 within %d ms of JPEG's", targetLatencyDelta)},
		{"stalled viewer back to live pictures", fmt.Sprintf("<= %d ms, no corrupt picture shown", targetStallMS)},
		{fmt.Sprintf("gateway, %d WebSocket viewers of an H.264 room (grid: h264lo)", targetWebSockets),
			fmt.Sprintf("<= %.2f cores, median socket >= %d fps, no undecodable frame", targetWebCores, targetWebFPS)},
		{"RTSP H.264 camera passed through, no JPEG layer watched", fmt.Sprintf("publisher <= %.2f cores", targetRTSPCores)},
		{fmt.Sprintf("%d viewers of 720p30 H.264, each decoding the full layer", targetViewers), fmt.Sprintf("each >= %.1f fps", targetViewerFPS)},
	}
	out := make([]Target, len(names))
	for i, n := range names {
		out[i] = Target{Name: n.name, Want: n.want, Status: NotMeasured, Got: "not measured"}
	}
	if h.NotMeasured != "" {
		for i := range out {
			out[i].Got = h.NotMeasured
		}
		return out
	}
	j, ok1 := h.quality("jpeg")
	t, ok2 := h.quality("h264 at 1/10")
	if ok1 && ok2 && j.Kbps > 0 {
		x := t.Kbps / j.Kbps
		out[0].Got = fmt.Sprintf("SSIM %.4f at %.0f kbit/s (%.3f of JPEG's) against JPEG's %.4f at %.0f kbit/s", t.SSIM, t.Kbps, x, j.SSIM, j.Kbps)
		out[0].Status = status(t.SSIM >= j.SSIM && x <= 0.1)
	}
	for _, p := range h.Publisher {
		if p.Codec == "h264" && len(p.Watched) == 4 {
			if p.Cores < 0 {
				out[1].Got = "needs separate processes (vidhub bench, not the in-process test run)"
				break
			}
			out[1].Got, out[1].Status = fmt.Sprintf("%.2f cores", p.Cores), status(p.Cores <= targetPublisherCores)
		}
	}
	for _, p := range h.Publisher {
		if p.Codec == "h264" && len(p.Watched) == 2 && p.Cores >= 0 && out[1].Got != "not measured" {
			out[1].Got += fmt.Sprintf(" (%.2f with only h264 and h264lo watched, the JPEG layers unencoded)", p.Cores)
		}
	}
	for _, jr := range h.Join {
		if jr.Codec == "h264" && len(jr.Samples) > 0 {
			out[2].Got = fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms over %d joins (%d without a picture in %v)",
				jr.P50, jr.P95, jr.Max, jr.Joins, jr.Failed, joinWait)
			out[2].Status = status(jr.P95 <= targetJoinP95 && jr.Failed == 0)
		}
	}
	hl, ok1 := h.latency("h264")
	jl, ok2 := h.latency("jpeg")
	if ok1 && ok2 {
		d := hl.SubP50 - jl.SubP50
		out[3].Got = fmt.Sprintf("subscriber p50 %.1f ms against %.1f ms (%+.1f); renderer p50 %.1f against %.1f ms (%+.1f)",
			hl.SubP50, jl.SubP50, d, hl.RenderP50, jl.RenderP50, hl.RenderP50-jl.RenderP50)
		out[3].Status = status(d <= targetLatencyDelta)
	}
	for _, s := range h.Stall {
		if s.Codec == "h264" {
			out[4].Got = fmt.Sprintf("live after %.0f ms (first picture after %.0f ms), corrupt pictures shown %d", s.LiveMS, s.FirstMS, s.CorruptShown)
			out[4].Status = status(s.LiveMS >= 0 && s.LiveMS <= targetStallMS && s.CorruptShown == 0)
		}
	}
	out[5].Got, out[5].Status = h.webTarget()
	out[6].Got, out[6].Status = h.rtspTarget()
	for _, v := range h.Viewers {
		if v.Codec == "h264" && v.Layer == protocol.H264 {
			out[7].Got = fmt.Sprintf("%d viewers: fps min %.1f, median %.1f, all decoding in one process", v.Viewers, v.FPSMin, v.FPSMedian)
			if v.Viewers < targetViewers {
				out[7].Got += " (quick run)"
				break
			}
			out[7].Status = status(v.FPSMin >= targetViewerFPS)
		}
	}
	return out
}

func (h *H264Report) web(l protocol.Layer) (WebH264Result, bool) {
	for _, w := range h.Web {
		if w.Layer == l {
			return w, true
		}
	}
	return WebH264Result{}, false
}

// webTarget is the gateway target's figures: the grid view against its
// JPEG reference.
func (h *H264Report) webTarget() (got, st string) {
	w, ok := h.web(protocol.H264Lo)
	if !ok {
		return "not measured", NotMeasured
	}
	got = fmt.Sprintf("%d sockets: fps min %.1f, median %.1f, %d skipped, %d undecodable", w.Sockets, w.FPSMin, w.FPSMedian, w.Skipped, w.Unkeyed)
	if j, ok := h.web(protocol.Lo); ok {
		got += fmt.Sprintf("; JPEG lo: fps median %.1f", j.FPSMedian)
		if j.Cores >= 0 {
			got += fmt.Sprintf(", %.2f cores", j.Cores)
		}
	}
	switch {
	case w.Cores < 0:
		return "gateway ran in the bench process; " + got, NotMeasured
	case w.Sockets < targetWebSockets:
		return fmt.Sprintf("%.2f cores with only %d sockets (quick run); %s", w.Cores, w.Sockets, got), NotMeasured
	}
	return fmt.Sprintf("%.2f cores, %s", w.Cores, got), status(w.Cores <= targetWebCores && w.FPSMedian >= targetWebFPS && w.Unkeyed == 0)
}

// rtspTarget is the passthrough target's figures, against the same
// camera encoded again, else the 720p30 pattern publisher with its H.264
// layers watched.
func (h *H264Report) rtspTarget() (got, st string) {
	var pass, enc *RTSPResult
	for i := range h.RTSP {
		switch h.RTSP[i].Case {
		case "passthrough":
			pass = &h.RTSP[i]
		case "re-encode":
			enc = &h.RTSP[i]
		}
	}
	if pass == nil {
		return "not measured", NotMeasured
	}
	if pass.Skipped != "" {
		return "skipped: " + mdCell(pass.Skipped), NotMeasured
	}
	if pass.Cores < 0 {
		return "needs separate processes (vidhub bench, not the in-process test run)", NotMeasured
	}
	got = fmt.Sprintf("%.3f cores (%s at %.0f fps, the camera's size)", pass.Cores, pass.Size, pass.FPS)
	switch {
	case enc != nil && enc.Skipped == "" && enc.Cores >= 0:
		got += fmt.Sprintf(" against %.3f re-encoding the same camera", enc.Cores)
	default:
		for _, p := range h.Publisher {
			if p.Codec == "h264" && len(p.Watched) == 2 && p.Cores >= 0 {
				got += fmt.Sprintf(" against %.2f for the 720p30 pattern publisher with its H.264 layers watched", p.Cores)
			}
		}
	}
	return got, status(pass.Cores <= targetRTSPCores)
}

// markdown writes the H.264 figures as Markdown tables.
func (h *H264Report) markdown(b *strings.Builder) {
	if h.NotMeasured != "" {
		fmt.Fprintf(b, "H.264 %s.\n\n", h.NotMeasured)
	}
	if len(h.Quality) > 0 {
		fmt.Fprintf(b, "Bitrate and quality, clip: %s.\n\n", h.Clip)
		b.WriteString("| setting | target kbit/s | kbit/s | bytes / frame | SSIM mean | SSIM min | encode ms / frame |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, q := range h.Quality {
			tgt := ""
			if q.TargetKbps > 0 {
				tgt = fmt.Sprintf("%.0f", q.TargetKbps)
			}
			fmt.Fprintf(b, "| %s | %s | %.0f | %.0f | %.4f | %.4f | %.1f |\n", q.Setting, tgt, q.Kbps, q.BytesFrame, q.SSIM, q.SSIMMin, q.EncodeMs)
		}
		b.WriteString("\n")
	}
	if len(h.Publisher) > 0 {
		b.WriteString("| publisher (720p30 pattern) | layers watched | fps of each | CPU (cores) | CPU ms per frame |\n|---|---|---|--:|--:|\n")
		for _, p := range h.Publisher {
			per := "-"
			if p.Cores >= 0 && len(p.FPS) > 0 && p.FPS[0] > 0 {
				per = fmt.Sprintf("%.1f", p.Cores*1000/p.FPS[0])
			}
			fmt.Fprintf(b, "| --codec %s | %s | %s | %s | %s |\n", p.Codec, layerList(p.Watched), floatList(p.FPS), cores(p.Cores), per)
		}
		b.WriteString("\n")
	}
	if len(h.Join) > 0 {
		b.WriteString("| late join | keyint | joins | first frame p50 ms | p95 ms | max ms | failed |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, j := range h.Join {
			ki := "every frame"
			if j.KeyInt > 0 {
				ki = fmt.Sprintf("%g s", j.KeyInt)
			}
			fmt.Fprintf(b, "| %s | %s | %d | %.0f | %.0f | %.0f | %d |\n", j.Codec, ki, j.Joins, j.P50, j.P95, j.Max, j.Failed)
		}
		b.WriteString("\n")
	}
	if len(h.Latency) > 0 {
		b.WriteString("| latency (hi, same publisher) | subscriber p50 ms | subscriber p99 ms | renderer p50 ms | renderer p99 ms | fps |\n|---|--:|--:|--:|--:|--:|\n")
		for _, l := range h.Latency {
			fmt.Fprintf(b, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", l.Codec, l.SubP50, l.SubP99, l.RenderP50, l.RenderP99, l.FPS)
		}
		b.WriteString("\n")
	}
	if len(h.Stall) > 0 {
		b.WriteString("| stall (connection not read) | paused s | first picture ms | live picture ms | fps after | corrupt shown | decode errors | waited for a keyframe |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, s := range h.Stall {
			fmt.Fprintf(b, "| %s | %.0f | %.0f | %.0f | %.0f | %d | %d | %d |\n", s.Codec, s.Paused, s.FirstMS, s.LiveMS, s.FPSAfter, s.CorruptShown, s.DecodeErrors, s.Waited)
		}
		b.WriteString("\n")
	}
	if len(h.Viewers) > 0 {
		b.WriteString("| viewers of one 720p30 publisher | layer | viewers | fps min | fps median | fps mean | latency p50 ms | CPU (cores) |\n|---|---|--:|--:|--:|--:|--:|---|\n")
		for _, v := range h.Viewers {
			fmt.Fprintf(b, "| %s | %s | %d | %.1f | %.1f | %.1f | %.0f | %s |\n", v.Codec, v.Layer, v.Viewers, v.FPSMin, v.FPSMedian, v.FPSMean, v.LatP50, cpuString(Result{CPU: v.CPU}))
		}
		b.WriteString("\n")
	}
	if len(h.Web) > 0 {
		b.WriteString("| WebSocket viewers through the gateway, one 720p30 H.264 publisher | layer | sockets | gateway CPU (cores) | fps min | fps median | kbit/s per socket | latency p50 ms | skipped | undecodable |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, w := range h.Web {
			fmt.Fprintf(b, "| %s | %s | %d | %s | %.1f | %.1f | %.0f | %.0f | %d | %d |\n", w.View, w.Layer, w.Sockets, cores(w.Cores), w.FPSMin, w.FPSMedian, w.Kbps, w.LatP50, w.Skipped, w.Unkeyed)
		}
		b.WriteString("\n")
	}
	if len(h.RTSP) > 0 {
		b.WriteString("| RTSP H.264 camera (GStreamer, x264), one viewer of h264 | size | codec | fps | publisher CPU (cores) |\n|---|---|---|--:|--:|\n")
		for _, r := range h.RTSP {
			if r.Skipped != "" && r.FPS == 0 {
				fmt.Fprintf(b, "| %s | skipped: %s | | | |\n", r.Case, mdCell(r.Skipped))
				continue
			}
			name := r.Case
			if r.Skipped != "" {
				name += " (" + mdCell(r.Skipped) + ")"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %.1f | %s |\n", name, r.Size, r.Codec, r.FPS, cores(r.Cores))
		}
		b.WriteString("\n")
	}
	b.WriteString("| target | want | got | status |\n|---|---|---|---|\n")
	for _, t := range h.Targets {
		fmt.Fprintf(b, "| %s | %s | %s | **%s** |\n", t.Name, t.Want, t.Got, t.Status)
	}
}

// mdCell makes s fit in a Markdown table cell: one line, no pipes.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	return strings.Join(strings.Fields(s), " ")
}

func layerList(ls []protocol.Layer) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l)
	}
	return strings.Join(s, ", ")
}

func floatList(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = fmt.Sprintf("%.1f", f)
	}
	return strings.Join(s, ", ")
}

func cores(c float64) string {
	if c < 0 {
		return "not measured (in process)"
	}
	return fmt.Sprintf("%.2f", c)
}
