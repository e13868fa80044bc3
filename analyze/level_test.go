package analyze

import (
	"testing"
)

func TestCompareLevels(t *testing.T) {
	tests := []struct {
		a     string
		ar    float64
		b     string
		br    float64
		want  int
		about string
	}{
		{"c2", 0, "c16", 0, -1, "concurrency numerically, not as text"},
		{"c16", 0, "c16", 0, 0, "same level: later keys decide"},
		{"10", 10, "2", 2, 1, "rates numerically"},
		{"c1", 0, "100", 100, 1, "closed loop after every rate"},
		{"0", 0, "c1", 0, -1, "the trace's own pace (rate 0) is a rate level"},
		{"cx", 0, "c1", 0, -1, "not a closed-loop label: a rate level"},
		{"c0", 0, "c1", 0, -1, "c0 is no concurrency"},
	}
	for _, tt := range tests {
		if got := CompareLevels(tt.a, tt.ar, tt.b, tt.br); got != tt.want {
			t.Errorf("CompareLevels(%s, %s) = %d; want %d (%s)", tt.a, tt.b, got, tt.want, tt.about)
		}
		if got := CompareLevels(tt.b, tt.br, tt.a, tt.ar); got != -tt.want {
			t.Errorf("CompareLevels(%s, %s) = %d; want %d (antisymmetric)", tt.b, tt.a, got, -tt.want)
		}
	}
}
