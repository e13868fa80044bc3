package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Dataset formats LoadDataset understands.
const (
	FormatShareGPT = "sharegpt"
	FormatAlpaca   = "alpaca"
)

// Record is one usable row of a dataset: a prompt and the reference output
// that fixes the target output length. Token counts are filled by Measure.
type Record struct {
	// ID names the row: the ShareGPT id, or the 0-based position of an
	// Alpaca record.
	ID string
	// Prompt is the text sent to the model.
	Prompt string
	// Output is the reference answer; only its length is used.
	Output string
	// InputTokens and OutputTokens are the token lengths of Prompt and
	// Output (see Measure).
	InputTokens, OutputTokens int32
}

// Dataset is a loaded dataset file.
type Dataset struct {
	// Name is the file's base name or the hub id it came from.
	Name string
	// Format is FormatShareGPT or FormatAlpaca.
	Format string
	// Records holds the usable rows in file order.
	Records []Record
	// Total counts the rows in the file, Skipped the ones without a
	// prompt/answer pair (a ShareGPT conversation without a human turn
	// followed by a model turn).
	Total, Skipped int
}

// ErrDataset is wrapped by every error about a malformed dataset file.
var ErrDataset = errors.New("malformed dataset")

// shareGPTRow is one ShareGPT conversation as the files hold it.
type shareGPTRow struct {
	ID            *json.RawMessage `json:"id"`
	Conversations *[]shareGPTTurn  `json:"conversations"`
}

type shareGPTTurn struct {
	From  *string `json:"from"`
	Value *string `json:"value"`
}

type alpacaRow struct {
	Instruction *string `json:"instruction"`
	Input       *string `json:"input"`
	Output      *string `json:"output"`
}

var (
	humanRoles = map[string]bool{"human": true, "user": true}
	modelRoles = map[string]bool{"gpt": true, "chatgpt": true, "assistant": true, "bard": true, "bing": true, "model": true}
)

// LoadDatasetFile reads a ShareGPT or Alpaca file (a JSON array or JSON
// Lines of objects); format "" detects it from the first record's keys.
func LoadDatasetFile(path, format string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("synth: dataset: %w", err)
	}
	defer f.Close()
	ds, err := DecodeDataset(f, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ds.Name = filepath.Base(path)
	return ds, nil
}

// DecodeDataset reads a dataset from r: a JSON array of records or a stream
// of JSON objects (JSON Lines). A record with wrong field types or missing
// required fields is an error that names the record; a ShareGPT conversation
// that simply lacks a prompt/answer pair is skipped and counted, as vLLM's
// benchmark does.
func DecodeDataset(r io.Reader, format string) (*Dataset, error) {
	switch format {
	case "", FormatShareGPT, FormatAlpaca:
	default:
		return nil, fmt.Errorf("synth: unknown dataset format %q (want sharegpt or alpaca)", format)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	dec := json.NewDecoder(br)
	first, err := firstByte(br)
	if err != nil {
		return nil, err
	}
	array := first == '['
	if array {
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("synth: %w: %v", ErrDataset, err)
		}
	} else if first != '{' {
		return nil, fmt.Errorf("synth: %w: starts with %q; want a JSON array of records or JSON Lines", ErrDataset, first)
	}
	ds := &Dataset{Format: format}
	for i := 0; ; i++ {
		if array && !dec.More() {
			break
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if !array && errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("synth: %w: record %d: %v", ErrDataset, i, err)
		}
		if ds.Format == "" {
			ds.Format = detectFormat(raw)
			if ds.Format == "" {
				return nil, fmt.Errorf("synth: %w: record 0: neither ShareGPT (\"conversations\") nor Alpaca (\"instruction\", \"output\"); pass the format explicitly", ErrDataset)
			}
		}
		ds.Total++
		rec, ok, err := decodeRow(ds.Format, raw, i)
		if err != nil {
			return nil, fmt.Errorf("synth: %w: %s record %d%s", ErrDataset, ds.Format, i, err)
		}
		if !ok {
			ds.Skipped++
			continue
		}
		ds.Records = append(ds.Records, rec)
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("synth: %w: after record %d: %v", ErrDataset, ds.Total-1, err)
		}
	}
	if ds.Format == "" {
		return nil, fmt.Errorf("synth: %w: no records", ErrDataset)
	}
	return ds, nil
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("synth: %w: empty file", ErrDataset)
			}
			return 0, fmt.Errorf("synth: dataset: %w", err)
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // UTF-8 byte order mark
			br.ReadByte()
			br.ReadByte()
			continue
		}
		br.UnreadByte()
		return c, nil
	}
}

func detectFormat(raw json.RawMessage) string {
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) != nil {
		return ""
	}
	if _, ok := keys["conversations"]; ok {
		return FormatShareGPT
	}
	_, in := keys["instruction"]
	_, out := keys["output"]
	if in && out {
		return FormatAlpaca
	}
	return ""
}

// decodeRow returns the record of one row; ok is false for a row without a
// prompt/answer pair. Errors start with ": " or " (id ...): " so the caller
// can prefix the record number.
func decodeRow(format string, raw json.RawMessage, i int) (Record, bool, error) {
	if format == FormatAlpaca {
		var row alpacaRow
		if err := json.Unmarshal(raw, &row); err != nil {
			return Record{}, false, fmt.Errorf(": %v", err)
		}
		switch {
		case row.Instruction == nil:
			return Record{}, false, errors.New(`: missing "instruction"`)
		case row.Output == nil:
			return Record{}, false, errors.New(`: missing "output"`)
		}
		prompt := *row.Instruction
		if row.Input != nil && *row.Input != "" {
			prompt += "\n" + *row.Input
		}
		return Record{ID: fmt.Sprint(i), Prompt: prompt, Output: *row.Output}, true, nil
	}
	var row shareGPTRow
	if err := json.Unmarshal(raw, &row); err != nil {
		return Record{}, false, fmt.Errorf(": %v", err)
	}
	id := fmt.Sprint(i)
	if row.ID != nil {
		var s string
		if json.Unmarshal(*row.ID, &s) == nil {
			id = s
		} else {
			id = strings.TrimSpace(string(*row.ID))
		}
	}
	where := fmt.Sprintf(" (id %q)", id)
	if row.Conversations == nil {
		return Record{}, false, fmt.Errorf(`%s: missing "conversations"`, where)
	}
	prompt, answer := -1, -1
	for j, t := range *row.Conversations {
		if t.From == nil {
			return Record{}, false, fmt.Errorf(`%s: conversations[%d]: missing "from"`, where, j)
		}
		if t.Value == nil {
			return Record{}, false, fmt.Errorf(`%s: conversations[%d]: missing "value"`, where, j)
		}
		role := strings.ToLower(*t.From)
		if prompt < 0 && humanRoles[role] {
			prompt = j
		} else if prompt >= 0 && modelRoles[role] {
			answer = j
			break
		}
	}
	if prompt < 0 || answer < 0 {
		return Record{}, false, nil
	}
	c := *row.Conversations
	return Record{ID: id, Prompt: *c[prompt].Value, Output: *c[answer].Value}, true, nil
}
