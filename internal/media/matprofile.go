//go:build matprofile && cgo && !vidhub_lite

package media

import (
	"strings"

	"gocv.io/x/gocv"
)

// MatCount is the number of OpenCV Mats (Pictures, and what media makes
// inside) open in this process: this build counts them (-tags
// matprofile), so tests and the soak test find leaks.
func MatCount() int { return gocv.MatProfile.Count() }

// MatProfile lists where the Mats open now were made, for a leak report.
func MatProfile() string {
	var sb strings.Builder
	_ = gocv.MatProfile.WriteTo(&sb, 1)
	return sb.String()
}
