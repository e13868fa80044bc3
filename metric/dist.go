package metric

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	mstats "github.com/montanaflynn/stats"

	"github.com/vbench/vbench/internal/stats"
)

// Dist summarizes a sample of values (seconds, or s/token): the statistics
// that `vllm bench serve` reports, computed the same way. An empty sample
// gives N = 0 and every other field NaN (JSON null), never a made-up zero.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	// Std is the population standard deviation (numpy's np.std default,
	// which vLLM uses).
	Std float64 `json:"std"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// DistOf returns the Dist of xs, reordering xs in place (percentiles
// come from selection, not a full sort: stats.Percentiles). NaN values are
// dropped first.
func DistOf(xs []float64) Dist {
	xs = slices.DeleteFunc(xs, math.IsNaN)
	if len(xs) == 0 {
		nan := math.NaN()
		return Dist{Mean: nan, Std: nan, Min: nan, P50: nan, P90: nan, P95: nan, P99: nan, Max: nan}
	}
	mean, std := stats.MeanStd(xs)
	ps := stats.Percentiles(xs, 0, 50, 90, 95, 99, 100)
	return Dist{N: len(xs), Mean: mean, Std: std, Min: ps[0], P50: ps[1], P90: ps[2], P95: ps[3], P99: ps[4], Max: ps[5]}
}

// CV is the coefficient of variation, Std / Mean (0 when the mean is 0,
// NaN for an empty sample).
func (d Dist) CV() float64 {
	if d.Mean == 0 {
		return 0
	}
	return d.Std / d.Mean
}

// Num returns v, or nil for NaN and ±Inf: encoding/json writes it as a
// number or null.
func Num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// orNaN is the inverse of Num.
func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

type distJSON struct {
	N    int      `json:"n"`
	Mean *float64 `json:"mean"`
	Std  *float64 `json:"std"`
	Min  *float64 `json:"min"`
	P50  *float64 `json:"p50"`
	P90  *float64 `json:"p90"`
	P95  *float64 `json:"p95"`
	P99  *float64 `json:"p99"`
	Max  *float64 `json:"max"`
}

// MarshalJSON writes NaN fields as null.
func (d Dist) MarshalJSON() ([]byte, error) {
	return json.Marshal(distJSON{d.N, Num(d.Mean), Num(d.Std), Num(d.Min), Num(d.P50), Num(d.P90), Num(d.P95), Num(d.P99), Num(d.Max)})
}

// UnmarshalJSON reads null fields as NaN.
func (d *Dist) UnmarshalJSON(b []byte) error {
	var j distJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = Dist{j.N, orNaN(j.Mean), orNaN(j.Std), orNaN(j.Min), orNaN(j.P50), orNaN(j.P90), orNaN(j.P95), orNaN(j.P99), orNaN(j.Max)}
	return nil
}

// CI is the mean of per-trial values with the half-width of its 95%
// confidence interval (Student's t with n−1 degrees of freedom; NaN with
// fewer than two trials).
type CI struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	// Half is the half-width: the interval is Mean ± Half.
	Half float64 `json:"ci95"`
}

// MarshalJSON writes NaN fields as null.
func (c CI) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		N    int      `json:"n"`
		Mean *float64 `json:"mean"`
		Half *float64 `json:"ci95"`
	}{c.N, Num(c.Mean), Num(c.Half)})
}

// Text is the CI for a table: the mean × scale with prec decimals, then
// "± half" when two or more values made it; "-" when none did.
func (c CI) Text(prec int, scale float64) string {
	if c.N == 0 || math.IsNaN(c.Mean) {
		return "-"
	}
	if c.N < 2 || math.IsNaN(c.Half) {
		return strconv.FormatFloat(c.Mean*scale, 'f', prec, 64)
	}
	return strconv.FormatFloat(c.Mean*scale, 'f', prec, 64) + " ± " + strconv.FormatFloat(c.Half*scale, 'f', prec, 64)
}

// MeanCI returns the mean of xs (NaN values dropped) and its 95% confidence
// interval half-width t(0.975, n−1)·s/√n with the sample standard deviation
// s: montanaflynn/stats' Mean and SEM (s/√n); the t quantile is ours (the
// library has the t distribution's tail, not its quantile).
func MeanCI(xs []float64) CI {
	v := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(v) == 0 {
		return CI{Mean: math.NaN(), Half: math.NaN()}
	}
	mean, _ := mstats.Mean(v)
	if len(v) < 2 {
		return CI{N: len(v), Mean: mean, Half: math.NaN()}
	}
	sem, _ := mstats.SEM(v)
	return CI{N: len(v), Mean: mean, Half: tQuantile975(len(v)-1) * sem}
}

// tQuantile975 returns t(0.975, df): the table up to 30 degrees of freedom,
// then the Cornish–Fisher expansion around the normal quantile (error below
// 0.001 for df > 30).
func tQuantile975(df int) float64 {
	if df < 1 {
		return math.NaN()
	}
	// The 0.975 quantile of Student's t for 1..30 degrees of freedom
	// (standard tables).
	t975 := [...]float64{
		12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
	}
	if df <= len(t975) {
		return t975[df-1]
	}
	const z = 1.959963984540054
	d := float64(df)
	z3, z5 := z*z*z, z*z*z*z*z
	return z + (z3+z)/(4*d) + (5*z5+16*z3+3*z)/(96*d*d)
}
