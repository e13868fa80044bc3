package proxy

import (
	"bytes"
	"strconv"
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
		err := hc.Do(req, resp)
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
			for _, s := range ParseMetrics(resp.Body(), at) {
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
// kept metric present (values summed over label sets), stamped at. Lines it
// cannot read are skipped.
func ParseMetrics(text []byte, at int64) []capture.Sample {
	var sums [6]float64
	var seen [6]bool
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
		if k < 0 {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			j := labelsEnd(rest)
			if j < 0 {
				continue
			}
			rest = rest[j:]
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
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
	return out
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
