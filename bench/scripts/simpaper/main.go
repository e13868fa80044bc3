// Command simpaper runs the vLLM paper's OPT-13B/ShareGPT experiment through
// vbsim's engine model offline (sim.Simulate: the same scheduler and step
// model as the live server, in virtual time) and prints, per KV policy, the
// normalized latency and mean batch at each rate, and the rate where the
// normalized latency first passes a threshold — the numbers behind
// docs/benchmarks/sim.md.
//
//	go run ./bench/scripts/simpaper [-profile sharegpt] [-span 30m] [-preset opt-13b-a100]
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/synth"
)

func main() {
	profile := flag.String("profile", "sharegpt", "embedded length profile")
	span := flag.Duration("span", 30*time.Minute, "simulated trace length per rate")
	preset := flag.String("preset", sim.DefaultPreset, "vbsim preset")
	rates := flag.String("rates", "0.5,0.6,0.7,0.8,1,1.2,1.4,1.6,1.8,2,2.2", "request rates (req/s)")
	threshold := flag.Duration("threshold", 100*time.Millisecond, "normalized-latency threshold per token")
	seed := flag.Uint64("seed", 1, "arrival and length seed")
	flag.Parse()
	if err := run(*profile, *span, *preset, *rates, *threshold, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "simpaper:", err)
		os.Exit(1)
	}
}

func run(profile string, span time.Duration, preset, rateList string, threshold time.Duration, seed uint64) error {
	prof, err := synth.BuiltinProfile(profile)
	if err != nil {
		return err
	}
	var rates []float64
	for _, f := range strings.Split(rateList, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("rate %q: want a positive number", f)
		}
		rates = append(rates, r)
	}
	in, out := prof.Means()
	fmt.Printf("profile %s (%d pairs, means %.1f in / %.1f out), preset %s, %v of Poisson arrivals per rate, seed %d\n\n",
		prof.Name, len(prof.Pairs), in, out, preset, span, seed)
	fmt.Printf("| policy | %s | knee (> %v/token) |\n|---|", strings.Join(strings.Split(rateList, ","), " | "), threshold)
	for range rates {
		fmt.Print("---|")
	}
	fmt.Println("---|")
	for _, v := range []sim.Config{
		{Policy: sim.PolicyPaged},
		{Policy: sim.PolicyContiguous, Reservation: sim.ReserveOracle},
		{Policy: sim.PolicyContiguous, Reservation: sim.ReservePow2},
		{Policy: sim.PolicyContiguous, Reservation: sim.ReserveMax},
	} {
		v.Preset = preset
		name := v.Policy
		if v.Policy == sim.PolicyContiguous {
			name += "/" + v.Reservation
		}
		fmt.Printf("| %s |", name)
		knee := "beyond"
		for _, rate := range rates {
			rng := rand.New(rand.NewPCG(seed, 2))
			var reqs []sim.VirtualRequest
			for t := 0.0; ; {
				t += rng.ExpFloat64() / rate
				if t > span.Seconds() {
					break
				}
				p := prof.Pairs[rng.IntN(len(prof.Pairs))]
				reqs = append(reqs, sim.VirtualRequest{Arrival: time.Duration(t * 1e9), Prompt: int(max(p.In, 1)), Output: int(max(p.Out, 1))})
			}
			res, st, err := sim.Simulate(v, reqs)
			if err != nil {
				return err
			}
			norm := 0.0
			for i, r := range res {
				norm += (r.Tokens[len(r.Tokens)-1] - reqs[i].Arrival).Seconds() / float64(len(r.Tokens))
			}
			norm /= float64(len(res))
			if knee == "beyond" && norm > threshold.Seconds() {
				knee = fmt.Sprintf("%g", rate)
			}
			fmt.Printf(" %.3f s, %.1f |", norm, st.MeanBatch)
		}
		fmt.Printf(" %s |\n", knee)
	}
	fmt.Println("\ncells: mean normalized latency (s/token), time-weighted mean batch (running sequences)")
	return nil
}
