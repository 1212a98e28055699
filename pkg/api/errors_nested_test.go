package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

// fieldErrs is one error per key, its detail the key, so that a test sees
// which error went where.
func fieldErrs(keys ...string) map[string]FieldError {
	out := map[string]FieldError{}
	for _, k := range keys {
		out[k] = FieldError{Detail: "d:" + k, ErrorCode: "test_error_key_100"}
	}
	return out
}

// expand replaces, in a decoded JSON value, each string "!key" by the
// error object fieldErrs gives key.
func expand(v any) any {
	switch v := v.(type) {
	case string:
		if k, ok := strings.CutPrefix(v, "!"); ok {
			return map[string]any{"detail": "d:" + k, "error_code": "test_error_key_100"}
		}
	case []any:
		for i := range v {
			v[i] = expand(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = expand(v[k])
		}
	}
	return v
}

func TestNestFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string // "!key" is the error of key
	}{
		{nil, `null`},
		{[]string{"name"}, `{"name":"!name"}`},
		{[]string{"vms[2].name"}, `{"vms":[null,null,{"name":"!vms[2].name"}]}`},
		{[]string{"routes[0]"}, `{"routes":["!routes[0]"]}`},
		{[]string{"vms[0].storages[1].gb"}, `{"vms":[{"storages":[null,{"gb":"!vms[0].storages[1].gb"}]}]}`},
		{[]string{"vms[0].name", "vms[2].cpu", "vms[2].ram", "routes[1]", "name"},
			`{"name":"!name","routes":[null,"!routes[1]"],"vms":[{"name":"!vms[0].name"},null,{"cpu":"!vms[2].cpu","ram":"!vms[2].ram"}]}`},
		{[]string{"vms[1].ip_addresses[0]", "vms[1].ip_addresses[2].address", "vms[1].image_id"},
			`{"vms":[null,{"image_id":"!vms[1].image_id","ip_addresses":["!vms[1].ip_addresses[0]",null,{"address":"!vms[1].ip_addresses[2].address"}]}]}`},
		// A container's own error wins over the errors inside it.
		{[]string{"storages", "storages[1].gb", "storages[0]"}, `{"storages":"!storages"}`},
		{[]string{"vms[0]", "vms[0].cpu", "vms[1].cpu"}, `{"vms":["!vms[0]",{"cpu":"!vms[1].cpu"}]}`},
		{[]string{"vms[0].storages", "vms[0].storages[3].gb"}, `{"vms":[{"storages":"!vms[0].storages"}]}`},
		// Paths without an index stay keys, even before one.
		{[]string{"project.name", "nested.items[1]"}, `{"nested.items":[null,"!nested.items[1]"],"project.name":"!project.name"}`},
		{[]string{"vms[0].a.b"}, `{"vms":[{"a.b":"!vms[0].a.b"}]}`},
		// Keys that are not name[i] or name[i].rest stay as they are.
		{[]string{"a[01]", "a[]", "a[x]", "a[-1]", "a[65536]", "a[100000]", "[0]", "a[0]x", "a[0].", "a[0][1]", "a[0", "a]0[", ""},
			`{"a[01]":"!a[01]","a[]":"!a[]","a[x]":"!a[x]","a[-1]":"!a[-1]","a[65536]":"!a[65536]","a[100000]":"!a[100000]",` +
				`"[0]":"!","a[0]x":"!a[0]x","a[0].":"!a[0].","a[0][1]":"!a[0][1]","a[0":"!a[0","a]0[":"!a]0[","":"!"}`},
		{[]string{"a]b[0]"}, `{"a]b":["!a]b[0]"]}`},
		// Indexes that add up to more than MaxErrorIndex: flat.
		{[]string{"a[40000].b[40000]", "c[1].d[x].e[99999]", "f[2].g[1234567]"},
			`{"a[40000].b[40000]":"!a[40000].b[40000]","c[1].d[x].e[99999]":"!c[1].d[x].e[99999]","f[2].g[1234567]":"!f[2].g[1234567]"}`},
	} {
		t.Run(strings.Join(tc.keys, ","), func(t *testing.T) {
			var want any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			want = expand(want)
			if m, ok := want.(map[string]any); ok {
				// "[0]" and "" above: the detail of each is its own key.
				if _, ok := m["[0]"]; ok {
					m["[0]"] = map[string]any{"detail": "d:[0]", "error_code": "test_error_key_100"}
				}
			}
			b, err := json.Marshal(NestFieldErrors(fieldErrs(tc.keys...)))
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				want, _ := json.Marshal(want)
				t.Errorf("got  %s\nwant %s", b, want)
			}
		})
	}
	t.Run("the largest index", func(t *testing.T) {
		got := NestFieldErrors(fieldErrs("a[65535]"))["a"].([]any)
		if len(got) != MaxErrorIndex+1 || got[0] != nil || got[MaxErrorIndex] == nil {
			t.Errorf("a list of %d", len(got))
		}
		got = NestFieldErrors(fieldErrs("a[32767].b[32768]"))["a"].([]any)
		if len(got) != 32768 || len(got[32767].(map[string]any)["b"].([]any)) != 32769 {
			t.Errorf("a list of %d", len(got))
		}
	})
}

func TestFlattenFieldErrors(t *testing.T) {
	e := `{"detail":"x","error_code":"a_b_c_100"}`
	fe := FieldError{Detail: "x", ErrorCode: "a_b_c_100"}
	for _, tc := range []struct {
		in   string
		want []string // keys, each with fe; nil for an error
	}{
		{`{}`, []string{}},
		{`{"name":` + e + `}`, []string{"name"}},
		{`{"name":` + e + `,"vms[0].id":` + e + `}`, []string{"name", "vms[0].id"}}, // the flat form
		{`{"name":null}`, []string{}},
		{`{"vms":[null,{"name":` + e + `,"storages":[` + e + `,null,{"gb":` + e + `}]}],"routes":[` + e + `]}`,
			[]string{"vms[1].name", "vms[1].storages[0]", "vms[1].storages[2].gb", "routes[0]"}},
		{`{"vms":[null,{}]}`, []string{"vms[1]"}},
		{`{"vms":"x"}`, nil},
		{`{"vms":1}`, nil},
		{`{"vms":["x"]}`, nil},
		{`{"vms":[[` + e + `]]}`, nil},
		{`{"vms":[{"cpu":1}]}`, nil},
		{`{"vms":[{"name":[1]}]}`, nil},
		{`{"vms":[{"name":{"detail":1}}]}`, nil},
		{`[]`, nil},
	} {
		got, err := FlattenFieldErrors([]byte(tc.in))
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("%s: %v, want an error", tc.in, got)
		case tc.want != nil && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.want != nil:
			want := map[string]FieldError{}
			for _, k := range tc.want {
				want[k] = fe
			}
			if tc.in == `{"vms":[null,{}]}` {
				want["vms[1]"] = FieldError{}
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: %v, want %v", tc.in, got, want)
			}
		}
	}
}

// TestErrorUnmarshal: both shapes decode, and Status and RetryAfter, which
// are not in the body, are kept.
func TestErrorUnmarshal(t *testing.T) {
	e := &Error{Status: http.StatusBadRequest, RetryAfter: 3}
	body := `{"detail":"Bad request.","errors":{"vms":[null,{"name":{"detail":"x","error_code":"a_b_c_100"}}]}}`
	if err := json.Unmarshal([]byte(body), e); err != nil {
		t.Fatal(err)
	}
	if e.Status != 400 || e.RetryAfter != 3 || e.Detail != "Bad request." || e.ErrorCode != "" || len(e.Errors) != 1 || e.Errors["vms[1].name"].ErrorCode != "a_b_c_100" {
		t.Errorf("%#v", e)
	}
	e = &Error{}
	if err := json.Unmarshal([]byte(`{"detail":"gone","error_code":"a_b_c_001"}`), e); err != nil || e.Detail != "gone" || e.ErrorCode != "a_b_c_001" || e.Errors != nil {
		t.Errorf("%#v %v", e, err)
	}
	if err := json.Unmarshal([]byte(`{"detail":"x","errors":{"vms":["x"]}}`), &Error{}); err == nil {
		t.Error("a malformed errors member decoded")
	}
}

var errorSchema = sync.OnceValues(func() (*openapi3.Schema, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	return doc.Components.Schemas["Error"].Value, nil
})

// FuzzNestFieldErrors: whatever the keys (one a line), the nested form
// matches the document's Error schema, reads back (FlattenFieldErrors) into
// a subset of the errors, and an error left out is inside a container (an
// array field or an item) whose own error is there.
func FuzzNestFieldErrors(f *testing.F) {
	for _, seed := range []string{"name", "vms[2].name", "routes[0]", "vms[0].storages[1].gb",
		"vms[0].name\nvms[2].cpu\nvms[2].ram\nroutes[1]", "storages\nstorages[1].gb", "vms[0]\nvms[0].cpu",
		"a[01]\na[]\na[x]\na[-1]\na[65536]\n[0]\na[0]x\na[0].\na[0][1]\na[0", "a[65535]", "project.name\nnested.items[1]",
		"a[0].b[0].c[0].d", "a[0].b\na[0].b[1]\na[0]", "\n", "a[65535].b[65535].c[65535]", "a[30000].b[30000].c[5535]\nd[1]", "a[1]\na[1].\na[1].[0]", "a[0].a[0]\na[0].a"} {
		f.Add(seed)
	}
	if _, err := errorSchema(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(checkNest)
}

func checkNest(t *testing.T, s string) {
	schema, _ := errorSchema()
	{
		keys := strings.Split(s, "\n")
		if !utf8.ValidString(s) || len(keys) > 8 {
			return
		}
		errs := fieldErrs(keys...)
		nested := NestFieldErrors(errs)
		body, err := json.Marshal(map[string]any{"detail": "Bad request.", "errors": nested})
		if err != nil {
			t.Fatal(err)
		}
		// Each key adds at most MaxErrorIndex+depth list items (5 bytes for
		// a null); its name and its detail may be escaped (6 bytes a byte).
		if len(body) > len(s)*16+len(keys)*(MaxErrorIndex+1)*5+1000 {
			t.Fatalf("a %d-byte body for %d keys", len(body), len(keys))
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if len(body) > 64<<10 {
			return // kin-openapi takes seconds over a long list of nulls
		}
		if err := schema.VisitJSON(v); err != nil {
			t.Fatalf("%s does not match the Error schema: %v", body, err)
		}
		var e Error
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		for k, fe := range e.Errors {
			if errs[k] != fe {
				t.Fatalf("%s: read back %q = %v, sent %v", body, k, fe, errs[k])
			}
		}
		for k := range errs {
			if _, ok := e.Errors[k]; ok {
				continue
			}
			shadowed := false
			for i := 1; i < len(k) && !shadowed; i++ {
				if k[i] == '[' || k[i] == '.' {
					_, shadowed = e.Errors[k[:i]]
				}
			}
			if !shadowed {
				t.Fatalf("%s: the error of %q is lost", body, k)
			}
		}
	}
}
