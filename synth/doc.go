// Package synth turns datasets into request traces: it loads ShareGPT and
// Alpaca files (local or downloaded from the Hugging Face Hub into the
// standard cache), measures token lengths with an optional Hugging Face
// tokenizer.json, falls back to embedded joint length profiles, mixes
// datasets by weight, draws arrivals (Poisson, gamma with a burstiness
// factor, constant) at a mean rate of 1 request/s from a seeded source, and
// writes trace.Request values in arrival order.
//
// Everything random comes from generators seeded by Config.Seed, with one
// independent stream per purpose (arrivals, dataset sampling, prompt token
// ids), so the same configuration always gives the same bytes, and changing
// the prompt mode does not move the arrivals.
package synth
