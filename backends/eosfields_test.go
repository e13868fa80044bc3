package backends

import "testing"

func TestSendsEOSFields(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		s    Spec
		want bool
	}{
		{"torch default", Spec{Kind: KindTorch}, true},
		{"vllm default", Spec{Kind: KindVLLM}, true},
		{"transformers default", Spec{Kind: KindTransformers}, false},
		{"transformers forced on", Spec{Kind: KindTransformers, EOSFields: &yes}, true},
		{"torch forced off", Spec{Kind: KindTorch, EOSFields: &no}, false},
	}
	for _, tt := range tests {
		if got := tt.s.SendsEOSFields(); got != tt.want {
			t.Errorf("%s: SendsEOSFields = %v, want %v", tt.name, got, tt.want)
		}
	}
	c := Spec{Kind: KindTorch, EOSFields: &no}.Clone()
	no = true
	if *c.EOSFields {
		t.Errorf("Clone shares EOSFields with the original")
	}
}
