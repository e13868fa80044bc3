package sim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/vbench/vbench/backends/sim"
)

// Simulate runs requests through the engine model in virtual time: no
// clock, no server, the live engine's scheduler and step model. Contiguous
// reservation of the maximum length fits 7 requests of the OPT-13B/A100
// preset's 15,696 KV tokens at once; a paged cache batches all 20.
func ExampleSimulate() {
	var reqs []sim.VirtualRequest
	for i := range 20 {
		reqs = append(reqs, sim.VirtualRequest{Arrival: time.Duration(i) * 10 * time.Millisecond, Prompt: 160, Output: 340})
	}
	for _, cfg := range []sim.Config{
		{Policy: sim.PolicyPaged},
		{Policy: sim.PolicyContiguous, Reservation: sim.ReserveMax},
	} {
		res, st, err := sim.Simulate(cfg, reqs)
		if err != nil {
			fmt.Println(err)
			return
		}
		last := res[len(res)-1].Tokens
		fmt.Printf("%s: largest batch %d, last request done at %v\n", cfg.Policy, st.MaxBatch, last[len(last)-1].Round(time.Second))
	}
	// Output:
	// paged: largest batch 20, last request done at 14s
	// contiguous: largest batch 7, last request done at 31s
}

// New starts a simulated engine behind an OpenAI-compatible http.Handler:
// serve it with any http.Server; Close stops the engine.
func ExampleNew() {
	s, err := sim.New(sim.Config{Preset: "tiny", Speed: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var models struct {
		Data []struct {
			ID          string `json:"id"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&models)
	fmt.Println(models.Data[0].ID, models.Data[0].MaxModelLen)
	// Output:
	// sim-tiny 512
}
