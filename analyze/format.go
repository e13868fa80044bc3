package analyze

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// FormatSeconds formats seconds for people: 1.23s, 45.6ms, 789µs ("-" for
// NaN). The warnings and every rendered output use it.
func FormatSeconds(s float64) string {
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

// FormatNumber formats v with prec decimals (-1: as few as exact), "-" for
// NaN and ±Inf.
func FormatNumber(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func fmtDur(s float64) string           { return FormatSeconds(s) }
func fmtNum(v float64, prec int) string { return FormatNumber(v, prec) }
