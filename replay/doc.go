// Package replay plays a trace against an OpenAI-compatible server, open
// loop and on absolute time: request n is due at start + offset(n)·scale,
// whatever the server does, and every request is sent with X-VB-* tags the
// recording proxy keeps. The replayer measures itself: schedule lag (actual
// minus scheduled send), achieved versus asked rate, drops and lateness,
// and client-side TTFT and E2E, so a run that could not deliver its load
// says so.
//
// Run plays one or more rate levels (the same requests in the same order at
// each level), each cut at a duration and drained for a bounded time, with
// optional warm-up phases. Bodies are rendered before the load starts, and
// a preflight request checks the target and model before any load is sent.
//
// With Config.Concurrency instead of rates, levels are closed loop: N
// workers keep N requests in flight, each sending the next trace request
// as soon as its previous one ended (arrival times ignored). That measures
// what a server sustains, which is how `vbbench probe` places a study's
// rates; the study itself stays open loop.
package replay
