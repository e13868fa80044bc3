// Package units formats durations the same way in every command's output
// (vbreplay's table and progress, vbanalyze's table and report), so the
// same figure reads the same everywhere: "850µs", "3.52ms", "41.3ms",
// "1.25s", "20.1s".
package units

import (
	"fmt"
	"math"
	"time"
)

// Seconds formats s seconds with three significant digits in the largest
// unit below it; NaN is "-".
func Seconds(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	d := time.Duration(s * 1e9)
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1fs", s)
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", s)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", s*1e3)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.0fµs", s*1e6)
}
