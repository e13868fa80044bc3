package render

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vbench/vbench/metric"

	"github.com/vbench/vbench/analyze"
)

// reference returns the variant the others are compared with: a variant
// named like the PyTorch baseline if present, else the one with the lowest
// sustained rate.
func reference(res *analyze.Result) (analyze.Saturation, bool) {
	var ref analyze.Saturation
	found := false
	for _, s := range res.Saturation {
		if s.Over {
			continue
		}
		if strings.Contains(s.Variant, "baseline") || strings.HasPrefix(s.Variant, "torch") {
			return s, true
		}
		if !found || s.Rate < ref.Rate {
			ref, found = s, true
		}
	}
	return ref, found
}

// SaturationLines returns one sentence per variant about its sustained
// rate, then the ratios to the reference variant.
func SaturationLines(res *analyze.Result) []string {
	if len(res.Saturation) == 0 {
		return nil
	}
	thr := fmtNum(res.Setup.Saturation, -1)
	var out []string
	for _, s := range res.Saturation {
		switch {
		case s.Over:
			out = append(out, fmt.Sprintf("%s sustains none of its rates at %s s/token: %s", s.Variant, thr, s.Limit))
		case s.Never:
			out = append(out, fmt.Sprintf("%s sustains at least %s req/s at %s s/token (its highest measured rate; %.4f s/token there)", s.Variant, fmtNum(s.Rate, -1), thr, s.NormLatency))
		default:
			out = append(out, fmt.Sprintf("%s sustains %s req/s at %s s/token (%.4f s/token there; %s)", s.Variant, fmtNum(s.Rate, -1), thr, s.NormLatency, s.Limit))
		}
	}
	ref, ok := reference(res)
	if !ok || len(res.Saturation) < 2 {
		return out
	}
	if ref.Never {
		// Even the slowest variant held every rate: the ratio would only
		// be a lower bound of 1.
		return append(out, fmt.Sprintf("no variant crossed %s s/token, so no ratio: measure higher rates (vbbench probe suggests them)", thr))
	}
	for _, s := range res.Saturation {
		r, bound, ok := analyze.RateRatio(s, ref)
		if s.Variant == ref.Variant || !ok {
			continue
		}
		atLeast := ""
		if bound == "≥" {
			atLeast = "at least "
		}
		out = append(out, fmt.Sprintf("%s sustains %s%.1f× the request rate of %s at %s s/token", s.Variant, atLeast, r, ref.Variant, thr))
	}
	return out
}

// mdEscape makes a table cell safe.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// WriteReport writes the Markdown report. Chart paths are written relative
// to the report's directory reportDir.
func WriteReport(res *analyze.Result, w io.Writer, cfg *analyze.Config, charts []ChartFile, reportDir string) error {
	var b strings.Builder
	st := res.Setup
	fmt.Fprintf(&b, "# %s\n\n", cfg.Title)
	b.WriteString("## Setup\n\n")
	list := func(name string, xs []string) {
		v := "-"
		if len(xs) > 0 {
			v = "`" + strings.Join(xs, "`, `") + "`"
		}
		fmt.Fprintf(&b, "- %s: %s\n", name, v)
	}
	writeCaptures(&b, st.Captures)
	list("variants", st.Variants)
	list("models", st.Models)
	list("trace hashes", st.TraceHashes)
	list("tools", st.Tools)
	list("hosts", st.Hosts)
	list("facts (metadata and labels)", st.Facts)
	fmt.Fprintf(&b, "- records: %d (%d not inference requests, skipped), server-metric samples: %d\n", st.Records+st.Skipped, st.Skipped, st.Samples)
	fmt.Fprintf(&b, "- grouping: %s; window: %s; saturation threshold: %s s/token", strings.Join(st.By, " × "), st.Window, fmtNum(st.Saturation, -1))
	if st.SLO != "" {
		fmt.Fprintf(&b, "; SLO: %s", st.SLO)
	}
	b.WriteString("\n\n")

	b.WriteString("## Saturation\n\n")
	if lines := SaturationLines(res); len(lines) > 0 {
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	} else {
		b.WriteString("No rate levels with completed requests: no saturation rate.\n")
	}
	b.WriteString("\n")

	if len(charts) > 0 {
		b.WriteString("## Charts\n\n")
		for _, c := range charts {
			rel := c.Paths[0]
			if r, err := filepath.Rel(reportDir, rel); err == nil {
				rel = r
			}
			fmt.Fprintf(&b, "![%s](%s)\n\n", c.Title, filepath.ToSlash(rel))
		}
	}

	b.WriteString("## Summary\n\nOne row per group; durations in the unit shown, normalized latency in s/token, \"in-flight\" is the time-weighted mean of the requests open at the proxy, \"decoding\" of those between their first and last token (the client-side batch estimate), \"batched\" of the server's running requests.\n\n")
	var rows [][]string
	for _, g := range res.Groups {
		rows = append(rows, tableRow(g))
	}
	writeMarkdownTable(&b, tableHeader(), rows)

	writeServerInternals(res, &b)

	multi := false
	for _, a := range res.Aggregates {
		multi = multi || a.Trials > 1
	}
	if multi {
		b.WriteString("## Across trials (mean ± 95% CI, t distribution)\n\n")
		b.WriteString("| group | trials | req/s | tok/s | norm s/tok | TTFT p99 (s) | TPOT mean (s) |\n|---|---|---|---|---|---|---|\n")
		for _, a := range res.Aggregates {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", mdEscape(a.Key), a.Trials,
				ciText(a.RequestThroughput, 2), ciText(a.OutputThroughput, 1), ciText(a.NormLatency, 4), ciText(a.TTFTP99, 3), ciText(a.TPOTMean, 4))
		}
		b.WriteString("\n")
	}

	b.WriteString("## Warnings\n\n")
	if ws := res.AllWarnings(); len(ws) > 0 {
		for _, w := range ws {
			fmt.Fprintf(&b, "- %s\n", mdEscape(w))
		}
	} else {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Definitions\n\n" + definitionsMarkdown)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMarkdownTable writes a table without its empty columns (every cell
// "-": a figure the server or the grouping does not give).
func writeMarkdownTable(b *strings.Builder, hdr []string, rows [][]string) {
	hdr, rows = dropEmptyColumns(hdr, rows)
	b.WriteString("| " + strings.Join(hdr, " | ") + " |\n|")
	for range hdr {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range rows {
		for i := range row {
			row[i] = mdEscape(row[i])
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// dropEmptyColumns leaves out the columns whose every row is "-" or "".
func dropEmptyColumns(hdr []string, rows [][]string) ([]string, [][]string) {
	if len(rows) == 0 {
		return hdr, rows
	}
	var keep []int
	for c := range hdr {
		for _, r := range rows {
			if c < len(r) && r[c] != "-" && r[c] != "" {
				keep = append(keep, c)
				break
			}
		}
	}
	if len(keep) == len(hdr) {
		return hdr, rows
	}
	pick := func(xs []string) []string {
		out := make([]string, 0, len(keep))
		for _, c := range keep {
			if c < len(xs) {
				out = append(out, xs[c])
			}
		}
		return out
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = pick(r)
	}
	return pick(hdr), out
}

// writeCaptures lists the captures one per line, in natural order (rate-4
// before rate-12), under their common directory.
func writeCaptures(b *strings.Builder, caps []string) {
	switch len(caps) {
	case 0:
		b.WriteString("- captures: -\n")
		return
	case 1:
		fmt.Fprintf(b, "- captures: `%s`\n", caps[0])
		return
	}
	sorted := slices.Clone(caps)
	slices.SortFunc(sorted, naturalCompare)
	prefix := ""
	if len(sorted) > 1 {
		prefix = commonDir(sorted)
	}
	if prefix == "" {
		fmt.Fprintf(b, "- captures (%d):\n", len(sorted))
	} else {
		fmt.Fprintf(b, "- captures (%d) under `%s`:\n", len(sorted), prefix)
	}
	for _, c := range sorted {
		fmt.Fprintf(b, "  - `%s`\n", strings.TrimPrefix(c, prefix))
	}
}

// commonDir is the longest directory prefix (ending in a separator) of
// every path, or "".
func commonDir(paths []string) string {
	p := paths[0]
	for _, q := range paths[1:] {
		for !strings.HasPrefix(q, p) {
			p = p[:len(p)-1]
		}
	}
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[:i+1]
	}
	return ""
}

// naturalCompare orders strings with their digit runs compared as numbers:
// rate-4 < rate-12 < rate-100.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func ciText(c metric.CI, prec int) string {
	if math.IsNaN(c.Half) {
		return fmtNum(c.Mean, prec)
	}
	return fmtNum(c.Mean, prec) + " ± " + fmtNum(c.Half, prec)
}

// definitionsMarkdown is the short form of the metric definitions (the
// full text is in docs/vbanalyze.md).
const definitionsMarkdown = `- TTFT: first content chunk − request start (the proxy's receive time); "sched" variants start at the replayer's scheduled time.
- ITL: gap between consecutive content chunks; per token: the gap divided by the tokens of the later chunk.
- TPOT: (E2E − TTFT) / (output tokens − 1). E2E: last byte − request start.
- Normalized latency: E2E / output tokens per completed request; the figure is its mean (s/token).
- Throughput: completed requests (and their output tokens) ending in the measurement window, per second of window. The window runs from the first measured request to the last end, cut at the replayer's deadline; warm-up requests are excluded.
- In flight, decoding, queued: requests open at the proxy (all traffic), time-weighted over the window; decoding from the first content chunk to the end, queued before it. Decoding is the client-side estimate of the server's batch (continuous batching advances each such request one token per step), for servers without metrics; queued is its queue plus prefill.
- Percentiles: linear interpolation between closest ranks (numpy's default, as in ` + "`vllm bench serve`" + `).
`
