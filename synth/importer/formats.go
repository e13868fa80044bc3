package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/synth"
)

// maxTokens bounds any token count read from a file.
const maxTokens = 1 << 24

func rowErr(line int, format string, args ...any) error {
	return fmt.Errorf("importer: %w: line %d: %s", ErrRow, line, fmt.Sprintf(format, args...))
}

func parseTokens(line int, name, s string) (int32, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || v < 0 || v > maxTokens {
		return 0, rowErr(line, "%s %q is not a token count between 0 and %d", name, s, maxTokens)
	}
	return int32(v), nil
}

// csvRows reads a CSV with a header line and calls fn for each record with
// its 1-based line number and a column lookup.
func csvRows(r io.Reader, want []string, fn func(line int, col func(string) string) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return rowErr(1, "empty file, expected a header with %s", strings.Join(want, ", "))
		}
		return rowErr(1, "%v", err)
	}
	idx := map[string]int{}
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		idx[strings.ToLower(h)] = i
	}
	for _, w := range want {
		if _, ok := idx[strings.ToLower(w)]; !ok {
			return rowErr(1, "header %q lacks column %q (want %s)", strings.Join(head, ","), w, strings.Join(want, ", "))
		}
	}
	lastLine := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return rowErr(pe.Line, "%v", pe.Err)
			}
			return rowErr(lastLine+1, "%v", err)
		}
		// FieldPos is only defined for the fields of a record read without error.
		line, _ := cr.FieldPos(0)
		lastLine = line
		if len(rec) != len(head) {
			return rowErr(line, "%d fields, header has %d", len(rec), len(head))
		}
		col := func(name string) string {
			i, ok := idx[strings.ToLower(name)]
			if !ok {
				return ""
			}
			return rec[i]
		}
		if err := fn(line, col); err != nil {
			return err
		}
	}
}

func checkOrder(rows []Row, line int, at time.Duration) error {
	if n := len(rows); n > 0 && at < rows[n-1].At {
		return rowErr(line, "timestamp goes back %v before line %d's (rows must be in time order)", rows[n-1].At-at, rows[n-1].Line)
	}
	return nil
}

// parseAzure reads the Azure LLM inference trace CSV:
// TIMESTAMP (YYYY-MM-DD HH:MM:SS.fffffff), ContextTokens, GeneratedTokens.
func parseAzure(r io.Reader) ([]Row, time.Time, error) {
	var rows []Row
	var origin time.Time
	err := csvRows(r, []string{"TIMESTAMP", "ContextTokens", "GeneratedTokens"}, func(line int, col func(string) string) error {
		ts := strings.TrimSpace(col("TIMESTAMP"))
		t, err := time.Parse("2006-01-02 15:04:05.999999999", ts)
		if err != nil {
			if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
				return rowErr(line, "TIMESTAMP %q: want YYYY-MM-DD HH:MM:SS.fffffff", ts)
			}
		}
		in, err := parseTokens(line, "ContextTokens", col("ContextTokens"))
		if err != nil {
			return err
		}
		out, err := parseTokens(line, "GeneratedTokens", col("GeneratedTokens"))
		if err != nil {
			return err
		}
		if origin.IsZero() {
			origin = t
		}
		at := t.Sub(origin)
		if err := checkOrder(rows, line, at); err != nil {
			return err
		}
		rows = append(rows, Row{Line: line, At: at, Timed: true, In: in, Out: out})
		return nil
	})
	return rows, origin, err
}

// parseBurstGPT reads BurstGPT's CSV: Timestamp (seconds from the trace
// start), Model, Request tokens, Response tokens, Total tokens, Log Type.
// Rows with 0 response tokens (failed requests) are dropped.
func parseBurstGPT(r io.Reader, model string, skipped map[string]int) ([]Row, error) {
	var rows []Row
	err := csvRows(r, []string{"Timestamp", "Request tokens", "Response tokens"}, func(line int, col func(string) string) error {
		s := strings.TrimSpace(col("Timestamp"))
		sec, err := strconv.ParseFloat(s, 64)
		if err != nil || sec < 0 || math.IsInf(sec, 0) || sec > 1e9 {
			return rowErr(line, "Timestamp %q is not a number of seconds", s)
		}
		in, err := parseTokens(line, "Request tokens", col("Request tokens"))
		if err != nil {
			return err
		}
		out, err := parseTokens(line, "Response tokens", col("Response tokens"))
		if err != nil {
			return err
		}
		if model != "" {
			if !strings.EqualFold(strings.TrimSpace(col("Model")), model) {
				skipped["model"]++
				return nil
			}
		}
		if out == 0 {
			skipped["failed"]++
			return nil
		}
		at := time.Duration(math.Round(sec * 1e9))
		if err := checkOrder(rows, line, at); err != nil {
			return err
		}
		rows = append(rows, Row{Line: line, At: at, Timed: true, In: in, Out: out})
		return nil
	})
	return rows, err
}

// jsonLines calls fn with each non-blank line of r and its 1-based number.
func jsonLines(r io.Reader, fn func(line int, b []byte) error) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for s.Scan() {
		line++
		b := bytes.TrimSpace(s.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(line, b); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return rowErr(line+1, "%v", err)
	}
	return nil
}

func decodeStrict(line int, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return rowErr(line, "%v", err)
	}
	if dec.More() {
		return rowErr(line, "more than one JSON value on the line")
	}
	return nil
}

// parseMooncake reads Mooncake's timed-trace JSONL: {"timestamp": ms,
// "input_length": N, "output_length": M, "hash_ids": [...]}.
func parseMooncake(r io.Reader) ([]Row, error) {
	var rows []Row
	err := jsonLines(r, func(line int, b []byte) error {
		var v struct {
			Timestamp    *float64 `json:"timestamp"`
			InputLength  *float64 `json:"input_length"`
			OutputLength *float64 `json:"output_length"`
			HashIDs      []int64  `json:"hash_ids"`
		}
		if err := decodeStrict(line, b, &v); err != nil {
			return err
		}
		switch {
		case v.Timestamp == nil:
			return rowErr(line, `missing "timestamp"`)
		case v.InputLength == nil:
			return rowErr(line, `missing "input_length"`)
		case v.OutputLength == nil:
			return rowErr(line, `missing "output_length"`)
		case *v.Timestamp < 0 || *v.Timestamp > 1e13 || math.IsNaN(*v.Timestamp):
			return rowErr(line, "timestamp %v ms out of range", *v.Timestamp)
		}
		in, err := parseTokens(line, "input_length", strconv.FormatFloat(*v.InputLength, 'f', -1, 64))
		if err != nil {
			return err
		}
		out, err := parseTokens(line, "output_length", strconv.FormatFloat(*v.OutputLength, 'f', -1, 64))
		if err != nil {
			return err
		}
		at := time.Duration(math.Round(*v.Timestamp * 1e6))
		if err := checkOrder(rows, line, at); err != nil {
			return err
		}
		rows = append(rows, Row{Line: line, At: at, Timed: true, In: in, Out: out, HashIDs: v.HashIDs})
		return nil
	})
	return rows, err
}

// parseVLLMCustom reads vLLM's custom dataset JSONL: {"prompt": "...",
// optional "output_tokens": N}. It has no timestamps; Import draws Poisson
// arrivals at 1 req/s from the seed.
func parseVLLMCustom(r io.Reader, o *Options) ([]Row, error) {
	var rows []Row
	err := jsonLines(r, func(line int, b []byte) error {
		var v struct {
			Prompt       *string  `json:"prompt"`
			OutputTokens *float64 `json:"output_tokens"`
		}
		if err := decodeStrict(line, b, &v); err != nil {
			return err
		}
		if v.Prompt == nil || *v.Prompt == "" {
			return rowErr(line, `missing or empty "prompt"`)
		}
		out := o.OutputLen
		if v.OutputTokens != nil {
			n, err := parseTokens(line, "output_tokens", strconv.FormatFloat(*v.OutputTokens, 'f', -1, 64))
			if err != nil {
				return err
			}
			out = n
		}
		in := synth.EstimateTokens(*v.Prompt)
		if o.Tokenizer != nil {
			n, err := o.Tokenizer.Count(*v.Prompt)
			if err != nil {
				return rowErr(line, "%v", err)
			}
			in = int32(min(n, maxTokens))
		}
		rows = append(rows, Row{Line: line, In: in, Out: out, Prompt: *v.Prompt})
		return nil
	})
	return rows, err
}
