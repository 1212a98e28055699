package api

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzTopLevelKeys: for every JSON object, the byte scanner finds the same
// top-level keys as decoding it into a map does.
func FuzzTopLevelKeys(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,{"c":"}"}]},"d":"x,\"y\":1"}`,
		`{"n\u0061me":"x","\"q":[],"e\\":null}`, ` { "a" : [ "b" , "c" ] , "d" : { } } `, `{"a":1,"a":2}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || m == nil {
			return
		}
		var got []string
		topLevelKeys(body, func(k string) { got = append(got, k) })
		slices.Sort(got)
		got = slices.Compact(got)
		var want []string
		for k := range m {
			want = append(want, k)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("keys of %s: scanner %q, map %q", body, got, want)
		}
	})
}
