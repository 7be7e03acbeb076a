package hubtest

import "image"

// LumaSpread is the variance of an image's brightness (0 to 255 levels,
// every other pixel of every other row): near 0 for a flat or blank
// picture, in the hundreds or more for a real one.
func LumaSpread(img image.Image) float64 {
	var n, sum, sq float64
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			l := (0.299*float64(cr) + 0.587*float64(cg) + 0.114*float64(cb)) / 257
			n++
			sum += l
			sq += l * l
		}
	}
	if n == 0 {
		return 0
	}
	mean := sum / n
	return sq/n - mean*mean
}
