package api

import "testing"

// TestTextFault: free text is refused for invalid UTF-8, control
// characters, line and paragraph separators and bidirectional controls,
// and length; other format characters and ordinary text pass.
func TestTextFault(t *testing.T) {
	for _, c := range []struct {
		v  string
		ok bool
	}{
		{"web 1", true},
		{"café ☕", true},
		{"👩\u200d💻", true},     // a zero-width joiner in an emoji
		{"hy\u00adphen", true}, // a soft hyphen
		{"a\nb", false},
		{"web\x1b[31m", false},
		{"a\u0085b", false}, // C1 next line
		{"a\u2028b", false},
		{"a\u2029b", false},
		{"admin\u202e1.exe", false},
		{"x\u2066y\u2069", false},
		{"\xff", false},
		{"abcd", false}, // over max below
	} {
		max := 20
		if c.v == "abcd" {
			max = 3
		}
		if got := TextFault(c.v, max); (got == "") != c.ok {
			t.Errorf("TextFault(%q) = %q, want ok %v", c.v, got, c.ok)
		}
	}
}
