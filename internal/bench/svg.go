package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart draws the report as an SVG, written by hand: on the left the
// latency distribution (CDF, log scale) of each paced scenario, vidhub
// solid and raw NATS dashed; on the right every viewer's frame rate.
func Chart(rep *Report) []byte {
	const (
		W, H           = 1100, 460
		pad            = 60
		panelW, panelH = 440, 330
		top            = 60
	)
	// One colour per scenario, in the order they ran.
	colors := map[string]string{}
	palette := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39"}
	for _, r := range rep.Results {
		if _, ok := colors[r.Scenario]; !ok {
			colors[r.Scenario] = palette[len(colors)%len(palette)]
		}
	}
	color := func(scenario string) string { return colors[scenario] }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">vidhub bench: %d CPUs, %.1f s per scenario, %s</text>`+"\n",
		pad, rep.Machine.CPUs, rep.Duration, html.EscapeString(rep.Started.UTC().Format("2006-01-02 15:04 UTC")))

	// Left: latency CDF.
	x0, y0 := pad, top
	var curves []Result
	lo, hi := math.Inf(1), 0.0
	for _, r := range rep.Results {
		if (r.Kind == KindFanout || r.Kind == KindWeb || r.Kind == KindClassic && r.Scenario == "classic-30fps") && len(r.LatCDF) == 101 {
			curves = append(curves, r)
			lo = math.Min(lo, math.Max(r.LatCDF[0], 0.05))
			hi = math.Max(hi, r.LatCDF[100])
		}
	}
	if len(curves) == 0 {
		lo, hi = 0.1, 100
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, lo*10))))
	xs := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, lo), hi)
		return float64(x0) + float64(panelW)*(math.Log10(ms)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	ys := func(p float64) float64 { return float64(y0+panelH) - float64(panelH)*p/100 }
	axes(&b, x0, y0, panelW, panelH, "latency from capture (ms, log scale)", "viewers' frames at or below (%)")
	for d := lo; d <= hi*1.001; d *= 10 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			xs(d), y0, xs(d), y0+panelH, xs(d), y0+panelH+16, trimFloat(d))
	}
	for p := 0; p <= 100; p += 25 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%d</text>`+"\n",
			x0, ys(float64(p)), x0+panelW, ys(float64(p)), x0-6, ys(float64(p))+4, p)
	}
	for i, r := range curves {
		var pts []string
		for q, ms := range r.LatCDF {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(ms), ys(float64(q))))
		}
		dash := ""
		if r.Impl != "vidhub" {
			dash = ` stroke-dasharray="6 4"`
		}
		c := color(r.Scenario)
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, dash, strings.Join(pts, " "))
		ly := y0 + 8 + 16*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s %s p50 %.1f p99 %.1f</text>`+"\n",
			x0+panelW+12, ly, x0+panelW+36, ly, c, dash, x0+panelW+40, ly+4, html.EscapeString(r.Scenario), r.Impl, r.LatP50, r.LatP99)
	}

	// Right: per-viewer fps.
	x1 := x0 + panelW + 200
	pw := W - x1 - 20
	var groups []Result
	for _, r := range rep.Results {
		if r.Kind == KindFanout || r.Kind == KindRoom || r.Kind == KindWeb {
			groups = append(groups, r)
		}
	}
	maxFPS := 35.0
	for _, r := range groups {
		for _, f := range r.StreamFPS {
			maxFPS = math.Max(maxFPS, f)
		}
	}
	fy := func(f float64) float64 { return float64(y0+panelH) - float64(panelH)*f/maxFPS }
	axes(&b, x1, y0, pw, panelH, "", "fps of each viewer (each publisher)")
	for f := 0.0; f <= maxFPS; f += 5 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			x1, fy(f), x1+pw, fy(f), x1-6, fy(f)+4, f)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" stroke-dasharray="3 3"/>`+"\n", x1, fy(29.5), x1+pw, fy(29.5))
	if n := len(groups); n > 0 {
		gw := float64(pw) / float64(n)
		for i, r := range groups {
			cx := float64(x1) + gw*(float64(i)+0.5)
			c := color(r.Scenario)
			for j, f := range r.StreamFPS {
				// Deterministic jitter spreads the dots across the column.
				jit := (float64((j*37)%17)/16 - 0.5) * gw * 0.6
				fill := c
				if r.Impl != "vidhub" {
					fill = "none"
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s" stroke="%s" fill-opacity="0.7"/>`+"\n", cx+jit, fy(f), fill, c)
			}
			label := r.Scenario + " " + r.Impl
			fmt.Fprintf(&b, `<text transform="translate(%.1f,%d) rotate(50)" font-size="10">%s</text>`+"\n", cx-4, y0+panelH+8, html.EscapeString(label))
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func axes(b *strings.Builder, x, y, w, h int, xlabel, ylabel string) {
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", x, y, w, h)
	if xlabel != "" {
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+w/2, y+h+36, html.EscapeString(xlabel))
	}
	fmt.Fprintf(b, `<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x-40, y+h/2, html.EscapeString(ylabel))
}

func trimFloat(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}
