package synth

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestLoadShareGPT(t *testing.T) {
	ds, err := LoadDatasetFile("testdata/sharegpt_small.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != FormatShareGPT || ds.Total != 5 || ds.Skipped != 2 || len(ds.Records) != 3 {
		t.Fatalf("format %s total %d skipped %d records %d; want sharegpt 5 2 3", ds.Format, ds.Total, ds.Skipped, len(ds.Records))
	}
	if r := ds.Records[1]; r.ID != "a2" || !strings.HasPrefix(r.Prompt, "Write a haiku") || !strings.HasPrefix(r.Output, "Crimson") {
		t.Errorf("record a2 = %+v: want the first human turn and the first model turn after it", r)
	}
	if r := ds.Records[2]; r.ID != "a5" || !strings.HasPrefix(r.Output, "Recursion") {
		t.Errorf("user/assistant roles: %+v", r)
	}
}

func TestLoadAlpaca(t *testing.T) {
	for _, path := range []string{"testdata/alpaca_small.json", "testdata/alpaca_small.jsonl"} {
		ds, err := LoadDatasetFile(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if ds.Format != FormatAlpaca || len(ds.Records) != ds.Total || ds.Total < 2 {
			t.Fatalf("%s: %+v", path, ds)
		}
	}
	ds, _ := LoadDatasetFile("testdata/alpaca_small.json", FormatAlpaca)
	if got := ds.Records[1].Prompt; got != "Translate the sentence to French.\nThe cat sleeps on the warm sofa." {
		t.Errorf("prompt with input = %q", got)
	}
}

func TestLoadSharedData(t *testing.T) {
	for path, want := range map[string]int{
		"../../shared/data/alpaca/alpaca_data_first200_original.json": 200,
	} {
		if _, err := os.Stat(path); err != nil {
			t.Skip("shared data not present")
		}
		ds, err := LoadDatasetFile(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Records) != want {
			t.Errorf("%s: %d records, want %d", path, len(ds.Records), want)
		}
	}
}

func TestDatasetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, format string
		want             []string
	}{
		{"empty", "", "", []string{"empty file"}},
		{"not json", "hello", "", []string{"starts with"}},
		{"unknown", `[{"foo": 1}]`, "", []string{"record 0", "neither ShareGPT"}},
		{"no conversations", `[{"id":"x","conversations":[{"from":"human","value":"a"}]},{"id":"bad"}]`, FormatShareGPT, []string{"record 1", `id "bad"`, "conversations"}},
		{"turn without from", `[{"id":"z","conversations":[{"value":"a"}]}]`, "", []string{"record 0", `id "z"`, `conversations[0]: missing "from"`}},
		{"value not string", `[{"id":"q","conversations":[{"from":"human","value":5}]}]`, "", []string{"record 0", "value"}},
		{"alpaca no output", `[{"instruction":"a","output":"b"},{"instruction":"a"}]`, FormatAlpaca, []string{"alpaca record 1", `missing "output"`}},
		{"alpaca no instruction", `[{"output":"b"}]`, FormatAlpaca, []string{"record 0", `missing "instruction"`}},
		{"truncated", `[{"instruction":"a","output":"b"},{"instr`, "", []string{"record 1"}},
		{"unterminated array", `[{"instruction":"a","output":"b"}`, "", []string{"after record 0"}},
		{"bad format", `[]`, "csv", []string{"unknown dataset format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDataset(strings.NewReader(tc.in), tc.format)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.format != "csv" && !errors.Is(err, ErrDataset) {
				t.Errorf("error %v does not wrap ErrDataset", err)
			}
		})
	}
}

func FuzzDecodeDataset(f *testing.F) {
	for _, p := range []string{"testdata/sharegpt_small.json", "testdata/alpaca_small.json", "testdata/alpaca_small.jsonl"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Add([]byte(`[{"id":1,"conversations":[{"from":"human","value":"x"},{"from":"gpt","value":"y"}]}]`), FormatShareGPT)
	f.Add([]byte(`{"instruction":"a","output":"b"}`), FormatAlpaca)
	f.Add([]byte("\xef\xbb\xbf[]"), "")
	f.Fuzz(func(t *testing.T, b []byte, format string) {
		ds, err := DecodeDataset(strings.NewReader(string(b)), format)
		if err != nil {
			return
		}
		if ds.Total != len(ds.Records)+ds.Skipped {
			t.Fatalf("total %d != records %d + skipped %d", ds.Total, len(ds.Records), ds.Skipped)
		}
		Measure(ds, nil)
	})
}
