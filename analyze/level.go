package analyze

import (
	"cmp"
	"strconv"
	"strings"
)

// CompareLevels orders two levels for every output (groups, aggregates,
// the CDF chart's choice): open-loop rate levels first, by rate, then
// closed-loop levels ("c1", "c2", "c16": replay.ClosedLabel, which carry
// no rate) by their concurrency, numerically; 0 when neither decides.
func CompareLevels(aLevel string, aRate float64, bLevel string, bRate float64) int {
	an, aClosed := closedConcurrency(aLevel)
	bn, bClosed := closedConcurrency(bLevel)
	switch {
	case aClosed && bClosed:
		return cmp.Compare(an, bn)
	case aClosed:
		return 1
	case bClosed:
		return -1
	}
	return cmp.Compare(aRate, bRate)
}

// closedConcurrency parses a closed-loop level label "c<N>".
func closedConcurrency(level string) (int, bool) {
	s, ok := strings.CutPrefix(level, "c")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}
