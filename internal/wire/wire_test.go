package wire

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = AppendUvarint(b, 300)
	b = AppendVarint(b, -5)
	b = AppendString(b, "héllo")
	b = AppendBytes(b, []byte{1, 2, 3})
	b = AppendFloat(b, math.Pi)
	b = AppendBool(b, true)
	b = AppendMap(b, map[string]string{"b": "2", "a": "1"})
	b = AppendMap(b, nil)
	b = AppendVarint(b, 70000)
	r := NewReader(b, nil)
	if v := r.Uvarint(); v != 300 {
		t.Errorf("uvarint %d", v)
	}
	if v := r.Varint(); v != -5 {
		t.Errorf("varint %d", v)
	}
	if v := r.Str(); v != "héllo" {
		t.Errorf("string %q", v)
	}
	if v := r.Raw(0); string(v) != "\x01\x02\x03" {
		t.Errorf("bytes %v", v)
	}
	if v := r.Float(); v != math.Pi {
		t.Errorf("float %v", v)
	}
	if v := r.Byte(); v != 1 {
		t.Errorf("bool %v", v)
	}
	if m := r.Map(); len(m) != 2 || m["a"] != "1" || m["b"] != "2" {
		t.Errorf("map %v", m)
	}
	if m := r.Map(); m != nil {
		t.Errorf("empty map %v", m)
	}
	r.Field = "small"
	if v := r.Ranged(0, 1000); v != 0 || r.Err() == nil || !strings.Contains(r.Err().Error(), "small: value 70000 outside [0, 1000]") {
		t.Errorf("ranged: %d, %v", v, r.Err())
	}
	// Maps encode in key order: equal maps, equal bytes.
	if string(AppendMap(nil, map[string]string{"x": "1", "y": "2", "z": "3"})) != string(AppendMap(nil, map[string]string{"z": "3", "y": "2", "x": "1"})) {
		t.Error("map encoding depends on iteration order")
	}
}

// TestHostile: truncated or lying input is an error that sticks, never a
// panic or an allocation sized by a claimed count.
func TestHostile(t *testing.T) {
	sentinel := errors.New("corrupt")
	for _, tc := range []struct {
		name string
		b    []byte
		read func(r *Reader)
		want string
	}{
		{"empty varint", nil, func(r *Reader) { r.Varint() }, "bad varint"},
		{"overlong uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, func(r *Reader) { r.Uvarint() }, "bad unsigned varint"},
		{"string longer than input", AppendUvarint(nil, 1<<40), func(r *Reader) { r.Str() }, "exceeds the 0 bytes left"},
		{"string over the limit", AppendString(nil, "abcdef"), func(r *Reader) { r.Raw(3) }, "over the limit of 3"},
		{"count beyond input", AppendUvarint(nil, 1<<30), func(r *Reader) { r.Map() }, "impossible with 0 bytes left"},
		{"short float", []byte{1, 2, 3}, func(r *Reader) { r.Float() }, "truncated float"},
		{"no byte", nil, func(r *Reader) { r.Byte() }, "truncated"},
	} {
		r := NewReader(tc.b, func(field, problem string) error { return errors.Join(sentinel, errors.New(field+": "+problem)) })
		r.Field = "f"
		tc.read(&r)
		r.Varint() // sticks: a later read changes nothing
		if err := r.Err(); !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "f: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want f: %s", tc.name, err, tc.want)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add(AppendMap(AppendString(AppendVarint(nil, 7), "x"), map[string]string{"k": "v"}))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b, nil)
		for r.Err() == nil && !r.Done() {
			r.Varint()
			r.Map()
			r.Str()
			r.Float()
			r.Count(1, 1<<20)
		}
	})
}
