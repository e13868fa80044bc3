package importer

import (
	"context"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/trace"
)

func importT(t *testing.T, format, path string, o Options) (*Result, []trace.Request) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.bin")
	res, err := ImportFile(context.Background(), format, path, out, o)
	if err != nil {
		t.Fatal(err)
	}
	_, reqs, err := trace.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return res, reqs
}

func TestAzure(t *testing.T) {
	res, reqs := importT(t, FormatAzure, "testdata/azure.csv", DefaultOptions())
	h := res.Header
	if len(reqs) != 4 || h.Arrival != trace.ArrivalRecorded || !h.Created.Equal(time.Date(2023, 11, 16, 18, 15, 46, 680590000, time.UTC)) {
		t.Fatalf("%d requests, header %+v", len(reqs), h)
	}
	wantOff := []time.Duration{0, 4314579000, 4319410000, 60 * time.Second}
	wantIn := []int32{374, 396, 879, 91}
	for i, r := range reqs {
		if r.Offset != wantOff[i] || r.InputTokens != wantIn[i] || len(r.PromptTokenIDs) != int(wantIn[i]) || r.Sampling.MaxTokens != r.OutputTokens {
			t.Errorf("request %d: offset %v in %d ids %d max %d", i, r.Offset, r.InputTokens, len(r.PromptTokenIDs), r.Sampling.MaxTokens)
		}
	}
	if want := 3 / 60.0; math.Abs(h.MeanRate-want) > 1e-9 {
		t.Errorf("mean rate %v, want %v", h.MeanRate, want)
	}
}

func TestMooncakeSharedPrefixes(t *testing.T) {
	_, reqs := importT(t, FormatMooncake, "testdata/mooncake.jsonl", DefaultOptions())
	if len(reqs) != 4 || reqs[1].Offset != 250*time.Millisecond || reqs[3].Offset != 3*time.Second {
		t.Fatalf("offsets: %v", reqs)
	}
	a, b, c, d := reqs[0].PromptTokenIDs, reqs[1].PromptTokenIDs, reqs[2].PromptTokenIDs, reqs[3].PromptTokenIDs
	if len(a) != 1100 || len(b) != 600 || len(c) != 1024 || len(d) != 100 {
		t.Fatalf("lengths %d %d %d %d", len(a), len(b), len(c), len(d))
	}
	common := func(x, y []int32) int {
		n := 0
		for n < len(x) && n < len(y) && x[n] == y[n] {
			n++
		}
		return n
	}
	// Shared hash ids = shared blocks of 512 tokens, and nothing more.
	if n := common(a, c); n != 1024 {
		t.Errorf("requests 0 and 2 share hash ids [1 2]: common prefix %d, want 1024", n)
	}
	if n := common(a, b); n < 512 || n > 515 {
		t.Errorf("requests 0 and 1 share hash id [1]: common prefix %d, want 512", n)
	}
	if n := common(a, d); n > 3 {
		t.Errorf("requests 0 and 3 share nothing: common prefix %d", n)
	}
}

func TestBurstGPT(t *testing.T) {
	res, reqs := importT(t, FormatBurstGPT, "testdata/burstgpt.csv", DefaultOptions())
	if len(reqs) != 3 || res.Rows != 3 || res.Skipped["failed"] != 1 || res.Header.Params["skipped_failed"] != "1" || reqs[1].Offset != 113*time.Second || reqs[1].OutputTokens != 477 {
		t.Fatalf("rows %d skipped %v, %+v", res.Rows, res.Skipped, reqs)
	}
	o := DefaultOptions()
	o.Model = "gpt-4"
	res, reqs = importT(t, FormatBurstGPT, "testdata/burstgpt.csv", o)
	if len(reqs) != 1 || reqs[0].InputTokens != 417 || res.Skipped["model"] != 3 {
		t.Errorf("model filter: %+v", reqs)
	}
}

func TestVLLMCustom(t *testing.T) {
	o := DefaultOptions()
	o.Endpoint = trace.EndpointChat
	res, reqs := importT(t, FormatVLLMCustom, "testdata/custom.jsonl", o)
	if len(reqs) != 3 || res.Header.Arrival != trace.ArrivalPoisson {
		t.Fatalf("%+v", res.Header)
	}
	if reqs[0].OutputTokens != 256 || reqs[1].OutputTokens != 64 || reqs[2].Source.Row != "line 4" || reqs[0].Messages[0].Content != "What is the capital of India?" {
		t.Errorf("requests %+v", reqs)
	}
}

func TestRetime(t *testing.T) {
	mk := func(secs ...float64) []Row {
		var rows []Row
		for i, s := range secs {
			rows = append(rows, Row{Line: i + 2, At: time.Duration(s * float64(time.Second)), Timed: true})
		}
		return rows
	}
	offs := func(rows []Row) string {
		var s []string
		for _, r := range rows {
			s = append(s, strconv.FormatFloat(r.At.Seconds(), 'g', -1, 64))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"as recorded", Options{}, "0 1 2 4 8"},
		{"speed 2", Options{Speed: 2}, "0 0.5 1 2 4"},
		{"rate 2", Options{Rate: 2}, "0 0.25 0.5 1 2"},
		{"max gap 2", Options{MaxGap: 2 * time.Second}, "0 1 2 4 6"},
		{"window", Options{WindowStart: 1500 * time.Millisecond, WindowEnd: 8 * time.Second}, "0 2"},
		{"window open end", Options{WindowStart: 2 * time.Second}, "0 2 6"},
		{"max gap then rate", Options{MaxGap: 2 * time.Second, Rate: 4.0 / 3}, "0 0.5 1 2 3"},
	} {
		rows, err := Retime(mk(100, 101, 102, 104, 108), tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := offs(rows); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if _, err := Retime(mk(0, 1), Options{WindowStart: time.Hour}); err == nil || !strings.Contains(err.Error(), "no request in the window") {
		t.Errorf("empty window: %v", err)
	}
}

func TestMalformedRows(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		format, body, want string
	}{
		{FormatAzure, "", "line 1: empty file"},
		{FormatAzure, "TIME,ContextTokens\n", "lacks column \"TIMESTAMP\""},
		{FormatAzure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\nyesterday,1,2\n", "line 3: TIMESTAMP \"yesterday\""},
		{FormatAzure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n2023-11-16 18:15:47,-4,2\n", "line 3: ContextTokens \"-4\""},
		{FormatAzure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n2023-11-16 18:15:47,4\n", "line 3: 2 fields"},
		{FormatAzure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n2023-11-16 18:15:45,4,4\n", "line 3: timestamp goes back"},
		{FormatAzure, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,\"2\n", "line 2"},
		{FormatMooncake, "{\"timestamp\":0,\"input_length\":5,\"output_length\":1}\n{\"timestamp\":1,\"input_length\":5}\n", "line 2: missing \"output_length\""},
		{FormatMooncake, "{\"timestamp\":0,\"input_length\":5.5,\"output_length\":1}\n", "line 1: input_length"},
		{FormatMooncake, "\n\n{\"timestamp\":0,", "line 3"},
		{FormatMooncake, "{\"timestamp\":0,\"input_length\":5,\"output_length\":1,\"hash_ids\":[\"x\"]}\n", "line 1"},
		{FormatBurstGPT, "Timestamp,Model,Request tokens,Response tokens\n1,a,2,3\nx,a,2,3\n", "line 3: Timestamp \"x\""},
		{FormatVLLMCustom, "{\"prompt\":\"hi\"}\n{\"text\":\"hi\"}\n", "line 2: missing or empty \"prompt\""},
		{FormatVLLMCustom, "{\"prompt\":\"hi\",\"output_tokens\":-1}\n", "line 1: output_tokens"},
	} {
		p := filepath.Join(dir, "in")
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := ImportFile(context.Background(), tc.format, p, filepath.Join(dir, "out.bin"), DefaultOptions())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want %q", tc.format, tc.body, err, tc.want)
		}
		if err != nil && strings.Contains(tc.want, "line") && !errors.Is(err, ErrRow) {
			t.Errorf("%v does not wrap ErrRow", err)
		}
	}
	o := DefaultOptions()
	o.Speed, o.Rate = 2, 3
	if err := o.Validate(); err == nil {
		t.Error("speed and rate together accepted")
	}
	o = DefaultOptions()
	o.Endpoint, o.Prompt = trace.EndpointChat, "tokens"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "cannot carry token ids") {
		t.Errorf("chat with token ids: %v", err)
	}
}

// TestAzureRealTrace checks the importer on the real Azure conversation
// trace when shared/data has it: count, mean rate and token means equal
// the CSV's, computed here independently with encoding/csv.
func TestAzureRealTrace(t *testing.T) {
	path := "../../../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv"
	f, err := os.Open(path)
	if err != nil {
		t.Skip("Azure trace not present")
	}
	all, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rows := all[1:]
	var sumIn, sumOut float64
	for _, r := range rows {
		a, _ := strconv.Atoi(r[1])
		b, _ := strconv.Atoi(r[2])
		sumIn += float64(a)
		sumOut += float64(b)
	}
	first, _ := time.Parse("2006-01-02 15:04:05.9999999", rows[0][0])
	last, _ := time.Parse("2006-01-02 15:04:05.9999999", rows[len(rows)-1][0])
	wantRate := float64(len(rows)-1) / last.Sub(first).Seconds()

	out := filepath.Join(t.TempDir(), "azure.bin")
	res, err := ImportFile(context.Background(), FormatAzure, path, out, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	tf, err := trace.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	var n int
	var in, outTok float64
	var req trace.Request
	for tf.Read(&req) == nil {
		n++
		in += float64(req.InputTokens)
		outTok += float64(req.OutputTokens)
		if len(req.PromptTokenIDs) != int(req.InputTokens) {
			t.Fatalf("request %d: %d ids for %d tokens", req.Index, len(req.PromptTokenIDs), req.InputTokens)
		}
	}
	if n != len(rows) || res.Header.Count != int64(len(rows)) {
		t.Errorf("count %d, CSV has %d", n, len(rows))
	}
	if math.Abs(res.Header.MeanRate-wantRate) > 1e-9*wantRate {
		t.Errorf("mean rate %.9f, CSV %.9f", res.Header.MeanRate, wantRate)
	}
	if in/float64(n) != sumIn/float64(len(rows)) || outTok/float64(n) != sumOut/float64(len(rows)) {
		t.Errorf("token means %.4f/%.4f, CSV %.4f/%.4f", in/float64(n), outTok/float64(n), sumIn/float64(len(rows)), sumOut/float64(len(rows)))
	}
	t.Logf("Azure conv: %d requests, %.4f req/s, means %.2f/%.2f", n, res.Header.MeanRate, in/float64(n), outTok/float64(n))
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/azure.csv", "testdata/mooncake.jsonl", "testdata/burstgpt.csv", "testdata/custom.jsonl"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for i := range rowFormats() {
			f.Add(b, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		o := DefaultOptions()
		format := rowFormats()[int(which)%len(rowFormats())]
		parsed, err := Parse(format, strings.NewReader(string(b)), &o)
		if err != nil {
			if !errors.Is(err, ErrRow) {
				t.Fatalf("error %v does not wrap ErrRow", err)
			}
			return
		}
		rows := parsed.Rows
		for i := 1; i < len(rows); i++ {
			if rows[i].Timed && rows[i].At < rows[i-1].At {
				t.Fatalf("row %d before row %d", i, i-1)
			}
		}
		if len(rows) > 0 {
			if _, err := Retime(rows, Options{MaxGap: time.Second, Rate: 2}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestChatWordsPrompts(t *testing.T) {
	o := DefaultOptions()
	o.Endpoint = trace.EndpointChat
	_, reqs := importT(t, FormatMooncake, "testdata/mooncake.jsonl", o)
	words := func(i int) []string { return strings.Fields(reqs[i].Messages[0].Content) }
	for i := range reqs {
		if len(reqs[i].Messages) != 1 || len(words(i)) != int(reqs[i].InputTokens) {
			t.Fatalf("request %d: %d words for %d tokens", i, len(words(i)), reqs[i].InputTokens)
		}
	}
	common := func(x, y []string) int {
		n := 0
		for n < len(x) && n < len(y) && x[n] == y[n] {
			n++
		}
		return n
	}
	if n := common(words(0), words(2)); n != 1024 {
		t.Errorf("shared hash ids [1 2]: %d common words, want 1024", n)
	}
	if n := common(words(0), words(1)); n < 512 || n > 530 {
		t.Errorf("shared hash id [1]: %d common words, want ~512", n)
	}
	_, reqs = importT(t, FormatAzure, "testdata/azure.csv", o)
	if got := len(strings.Fields(reqs[0].Messages[0].Content)); got != 374 {
		t.Errorf("azure chat prompt: %d words, want 374", got)
	}
}
