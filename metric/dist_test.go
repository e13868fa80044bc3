package metric

import (
	"math"
	"testing"
)

func TestCIText(t *testing.T) {
	nan := math.NaN()
	for _, tt := range []struct {
		c     CI
		prec  int
		scale float64
		want  string
	}{
		{CI{}, 1, 1, "-"},
		{CI{N: 1, Mean: nan, Half: nan}, 1, 1, "-"},
		{CI{N: 1, Mean: 0.0123, Half: nan}, 1, 1000, "12.3"},
		{CI{N: 3, Mean: 0.5, Half: 0.25}, 2, 100, "50.00 ± 25.00"},
		{CI{N: 2, Mean: 7, Half: nan}, 0, 1, "7"},
	} {
		if got := tt.c.Text(tt.prec, tt.scale); got != tt.want {
			t.Errorf("%+v.Text(%d, %g) = %q; want %q", tt.c, tt.prec, tt.scale, got, tt.want)
		}
	}
}
