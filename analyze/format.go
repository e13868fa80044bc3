package analyze

import (
	"math"
	"strconv"

	"github.com/vbench/vbench/internal/units"
)

// FormatSeconds formats seconds for people: 1.23s, 45.6ms, 789µs ("-" for
// NaN). The warnings and every rendered output use it.
func FormatSeconds(s float64) string { return units.Seconds(s) }

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
