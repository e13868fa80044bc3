package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
)

// scrapeLoop polls the upstream's /metrics every ScrapeInterval until stop.
func (p *Proxy) scrapeLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	hc := &fasthttp.HostClient{
		Addr:                     p.up.addr,
		IsTLS:                    p.up.isTLS,
		NoDefaultUserAgentHeader: true,
		MaxConns:                 2,
		MaxResponseBodySize:      16 << 20,
		ReadTimeout:              max(2*p.cfg.ScrapeInterval, time.Second),
		WriteTimeout:             time.Second,
	}
	defer hc.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	t := time.NewTicker(p.cfg.ScrapeInterval)
	defer t.Stop()
	var errLogged bool
	for {
		req.Reset()
		req.SetRequestURI(p.up.url + "/metrics")
		req.Header.SetHost(p.up.host)
		// DoTimeout bounds the whole exchange, body included (its read
		// deadline stays set), so a /metrics that never ends cannot hold
		// the loop, and with it Shutdown.
		err := hc.DoTimeout(req, resp, max(2*p.cfg.ScrapeInterval, time.Second))
		at := p.unix(time.Now())
		p.c.scrapes.Add(1)
		switch {
		case err != nil:
			p.c.scrapeErrors.Add(1)
			if !errLogged {
				p.log.Warn("proxy: cannot scrape the upstream's /metrics; will keep trying", "url", p.up.url+"/metrics", "err", err)
				errLogged = true
			}
		case resp.StatusCode() != fasthttp.StatusOK:
			p.c.scrapeErrors.Add(1)
			if !errLogged {
				p.log.Warn("proxy: upstream /metrics answered with an error status", "status", resp.StatusCode())
				errLogged = true
			}
		default:
			for _, s := range ParseMetrics(resp.Body(), at, p.cfg.ScrapeMetrics...) {
				if p.sink == nil {
					continue
				}
				if p.sink.PutSample(s) {
					p.c.samples.Add(1)
				} else {
					p.c.samplesDropped.Add(1)
				}
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// metricAliases maps the Prometheus names an engine exposes to the sample
// names the capture keeps. Counters may carry the _total suffix; vLLM before
// v0.10 called the KV-cache gauge gpu_cache_usage_perc.
var metricAliases = []struct {
	name, as string
	fallback bool // used only when the primary name is absent
}{
	{"vllm:num_requests_running", capture.MetricRunning, false},
	{"vllm:num_requests_waiting", capture.MetricWaiting, false},
	{"vllm:kv_cache_usage_perc", capture.MetricKVUsage, false},
	{"vllm:gpu_cache_usage_perc", capture.MetricKVUsage, true},
	{"vllm:num_preemptions_total", capture.MetricPreemptions, false},
	{"vllm:num_preemptions", capture.MetricPreemptions, false},
}

// ParseMetrics reads Prometheus text exposition and returns one sample per
// kept metric present (values summed over label sets), stamped at: the four
// vLLM gauges and counters of metricAliases under their capture names, then
// the series that extra selects (see ScrapeMetricMatches) under their own
// Prometheus names, and the numeric labels of info metrics as NAME:LABEL
// (vLLM's cache_config_info always; see appendInfoLabels), sorted by name. Lines it cannot read are skipped; at
// most MaxExtraSeries extra names are kept per scrape.
func ParseMetrics(text []byte, at int64, extra ...string) []capture.Sample {
	var sums [6]float64
	var seen [6]bool
	var extraSums map[string]float64
	var infoSeen map[string]bool
	var infoSamples []capture.Sample
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ \t")
		if end <= 0 {
			continue
		}
		name := line[:end]
		k := -1
		for i, a := range metricAliases {
			if string(name) == a.name {
				k = i
				break
			}
		}
		info := k < 0 && isInfo(name, extra)
		if k < 0 && !info && !matchesAny(name, extra) {
			continue
		}
		rest := line[end:]
		var labels []byte
		if rest[0] == '{' {
			j := labelsEnd(rest)
			if j < 0 {
				continue
			}
			labels, rest = rest[1:j-1], rest[j:]
		}
		if info {
			// An info metric's value is 1; its labels carry the figures.
			// The first label set of a name wins (one per engine).
			if infoSeen == nil {
				infoSeen = map[string]bool{}
			}
			if !infoSeen[string(name)] {
				infoSeen[string(name)] = true
				infoSamples = appendInfoLabels(infoSamples, string(name), labels, at)
			}
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
			continue
		}
		if k < 0 {
			if extraSums == nil {
				extraSums = map[string]float64{}
			}
			if _, ok := extraSums[string(name)]; ok || len(extraSums) < MaxExtraSeries {
				extraSums[string(name)] += v
			}
			continue
		}
		sums[k] += v
		seen[k] = true
	}
	var out []capture.Sample
	have := map[string]bool{}
	for i, a := range metricAliases {
		if !seen[i] || a.fallback {
			continue
		}
		if have[a.as] {
			// Both preemption names: keep the sums apart, prefer _total.
			continue
		}
		have[a.as] = true
		out = append(out, capture.Sample{At: at, Name: a.as, Value: sums[i]})
	}
	for i, a := range metricAliases {
		if seen[i] && a.fallback && !have[a.as] {
			have[a.as] = true
			out = append(out, capture.Sample{At: at, Name: a.as, Value: sums[i]})
		}
	}
	if len(extraSums) > 0 || len(infoSamples) > 0 {
		first := len(out)
		for name, v := range extraSums {
			out = append(out, capture.Sample{At: at, Name: name, Value: v})
		}
		out = append(out, infoSamples...)
		slices.SortFunc(out[first:], func(a, b capture.Sample) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

// CacheConfigInfo is vLLM's info metric describing the KV cache it
// allocated at start-up (value 1; the figures are labels such as
// num_gpu_blocks="2048", block_size="16", kv_cache_size_tokens="32768").
// The proxy always keeps its numeric labels (see ParseMetrics), so every
// capture of a vLLM server says what the server actually allocated.
const CacheConfigInfo = "vllm:cache_config_info"

// isInfo reports whether name is an info metric whose numeric labels
// ParseMetrics keeps: vLLM's cache_config_info always, any other series
// ending in _info when a scrape pattern selects it.
func isInfo(name []byte, extra []string) bool {
	if string(name) == CacheConfigInfo {
		return true
	}
	return bytes.HasSuffix(name, []byte("_info")) && matchesAny(name, extra)
}

// appendInfoLabels appends one sample NAME:LABEL per label of an info
// metric whose value is a finite number (engine indices excepted), e.g.
// vllm:cache_config_info:num_gpu_blocks = 2048. Labels it cannot read end
// the walk; what was read is kept.
func appendInfoLabels(out []capture.Sample, name string, labels []byte, at int64) []capture.Sample {
	for len(labels) > 0 {
		eq := bytes.IndexByte(labels, '=')
		if eq <= 0 || eq+1 >= len(labels) || labels[eq+1] != '"' {
			return out
		}
		key := string(bytes.TrimSpace(labels[:eq]))
		rest := labels[eq+2:]
		end := -1
		for i := 0; i < len(rest); i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return out
		}
		val := rest[:end]
		labels = bytes.TrimLeft(rest[end+1:], ", ")
		if key == "engine" || !validMetricName(key) {
			continue
		}
		v, err := strconv.ParseFloat(string(val), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		out = append(out, capture.Sample{At: at, Name: name + ":" + key, Value: v})
		if len(out) > MaxExtraSeries {
			return out
		}
	}
	return out
}

// MaxExtraSeries caps the distinct series names one scrape keeps for
// Config.ScrapeMetrics, so a broad prefix cannot flood the capture.
const MaxExtraSeries = 256

// ScrapeMetricMatches reports whether the series name is kept by the
// pattern of Config.ScrapeMetrics:
//
//   - NAME keeps the series NAME, NAME_total (a counter given by its family
//     name), NAME_sum and NAME_count (a histogram's or summary's totals);
//   - PREFIX* keeps every series whose name starts with PREFIX, except
//     histogram buckets (_bucket: summed over their le labels they would
//     mean nothing) and prometheus_client's _created timestamps.
//
// The series of the four metrics the proxy always keeps (metricAliases)
// are stored under their capture names whatever the patterns say.
func ScrapeMetricMatches(pattern, name string) bool {
	return matches([]byte(name), pattern)
}

func matches(name []byte, p string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return bytes.HasPrefix(name, []byte(prefix)) && !bytes.HasSuffix(name, []byte("_bucket")) && !bytes.HasSuffix(name, []byte("_created"))
	}
	rest, ok := bytes.CutPrefix(name, []byte(p))
	if !ok {
		return false
	}
	switch string(rest) {
	case "", "_total", "_sum", "_count":
		return true
	}
	return false
}

func matchesAny(name []byte, patterns []string) bool {
	for _, p := range patterns {
		if matches(name, p) {
			return true
		}
	}
	return false
}

// ValidateScrapeMetrics reports every malformed pattern of
// Config.ScrapeMetrics: each is a Prometheus metric name
// ([a-zA-Z_:][a-zA-Z0-9_:]*) or a non-empty such prefix followed by "*".
func ValidateScrapeMetrics(patterns []string) error {
	var errs []error
	for _, p := range patterns {
		name, prefix := strings.CutSuffix(p, "*")
		switch {
		case name == "" && prefix:
			errs = append(errs, fmt.Errorf("scrape metric %q: a prefix pattern needs a prefix (e.g. vbtorch:*)", p))
		case name == "":
			errs = append(errs, errors.New("scrape metric: empty name"))
		case !validMetricName(name):
			errs = append(errs, fmt.Errorf("scrape metric %q: want a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), optionally ending in * for a prefix", p))
		}
	}
	return errors.Join(errs...)
}

func validMetricName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z'):
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// labelsEnd returns the index just after the closing '}' of a label set
// starting at b[0] == '{', honouring quoted values; -1 if there is none.
func labelsEnd(b []byte) int {
	inQuote := false
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i + 1
		}
	}
	return -1
}
