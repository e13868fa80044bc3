package analyze

import (
	"math/rand/v2"
	"testing"

	"github.com/vbench/vbench/analyze/internal/fixture"
	"github.com/vbench/vbench/capture"
)

// The shared captures (analyze/internal/fixture) under this package's
// short names.
const (
	t0 = fixture.T0
	ms = fixture.Ms
)

type engine = fixture.Engine

func chunk(atMs int64, content int16, tokens, usage int32) capture.Chunk {
	return fixture.Chunk(atMs, content, tokens, usage)
}
func tagged(id uint64, received int64) *capture.Record { return fixture.Tagged(id, received) }
func smallFixture() ([]*capture.Record, []capture.Sample, []capture.Meta) {
	return fixture.Small()
}
func serverFixture() ([]*capture.Record, []capture.Sample) { return fixture.Server() }
func writeDump(t testing.TB, path string, recs []*capture.Record, samples []capture.Sample, metas []capture.Meta) {
	t.Helper()
	fixture.WriteDump(t, path, recs, samples, metas)
}
func writeStore(t testing.TB, dir string, recs []*capture.Record, samples []capture.Sample, metas []capture.Meta) {
	t.Helper()
	fixture.WriteStore(t, dir, recs, samples, metas)
}
func synthCapture(e engine, rate float64, trial, n int, seed uint64) ([]*capture.Record, []capture.Sample) {
	return fixture.Synth(e, rate, trial, n, seed)
}
func benchRecord(rng *rand.Rand, i int, at int64, chunks int) *capture.Record {
	return fixture.BenchRecord(rng, i, at, chunks)
}
func writeBenchStore(tb testing.TB, dir string, n, chunks int) {
	tb.Helper()
	fixture.WriteBenchStore(tb, dir, n, chunks)
}
func benchSize() (n, chunks int) { return fixture.BenchSize() }

func firstDiff(got, want string) string { return fixture.FirstDiff(got, want) }
