package subscriber

import (
	"errors"
	"image"
)

// ErrNoWindow is returned (wrapped) when a desktop window cannot be shown.
var ErrNoWindow = errors.New("cannot open a desktop window")

// gridCells splits bounds into n cells of a near-square grid, row by row,
// with a gap between cells.
func gridCells(n int, bounds image.Rectangle, gap int) []image.Rectangle {
	if n <= 0 {
		return nil
	}
	cols := 1
	for cols*cols < n {
		cols++
	}
	rows := (n + cols - 1) / cols
	// Prefer wide grids on wide canvases: 2 tiles side by side, not stacked.
	if rows > 1 && cols*(rows-1) >= n {
		rows--
	}
	w, h := bounds.Dx(), bounds.Dy()
	cw := (w - gap*(cols-1)) / cols
	ch := (h - gap*(rows-1)) / rows
	cells := make([]image.Rectangle, n)
	for i := range cells {
		c, r := i%cols, i/cols
		x := bounds.Min.X + c*(cw+gap)
		y := bounds.Min.Y + r*(ch+gap)
		cells[i] = image.Rect(x, y, x+cw, y+ch)
	}
	return cells
}

// fitRect is the largest rectangle of aspect w:h centred in cell
// (letterboxing), never empty.
func fitRect(w, h int, cell image.Rectangle) image.Rectangle {
	cw, ch := cell.Dx(), cell.Dy()
	if w <= 0 || h <= 0 || cw <= 0 || ch <= 0 {
		return cell
	}
	fw, fh := cw, ch
	if w*ch > h*cw { // wider than the cell
		fh = max(1, h*cw/w)
	} else {
		fw = max(1, w*ch/h)
	}
	x := cell.Min.X + (cw-fw)/2
	y := cell.Min.Y + (ch-fh)/2
	return image.Rect(x, y, x+fw, y+fh)
}
