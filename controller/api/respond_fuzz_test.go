package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"

	"github.com/regentcloud/regent/controller/api"
	wire "github.com/regentcloud/regent/pkg/api"
)

// fuzzInput has the shapes of the membership inputs: optional strings,
// booleans, ids, a list of ids, plus a nested object and a map.
type fuzzInput struct {
	Name        *string           `json:"name"`
	SelfManaged *bool             `json:"self_managed"`
	MemberID    *uint64           `json:"member_id"`
	Customers   *[]uint64         `json:"customers"`
	Count       *int32            `json:"count"`
	Ratio       *float64          `json:"ratio"`
	Nested      *fuzzNested       `json:"nested"`
	Labels      map[string]string `json:"labels"`
}

type fuzzNested struct {
	Port  *uint16  `json:"port"`
	Items []string `json:"items"`
}

var codeRE = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)+_[0-9]{3}$`)

// FuzzDecodeBody: whatever the bytes, DecodeBody does not panic, and an
// error is a *wire.Error with status 400 (413 when the body is over
// MaxBodyBytes) in one of the two CloudCIX shapes, every code well formed.
// When big is set the body is padded with spaces to just over the limit.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `{"name":"x"}`, `{"name":"x","self_managed":true,"member_id":1,"customers":[1,2]}`,
		`{"name":5}`, `{"customers":["a"]}`, `{"customers":[-1]}`, `{"member_id":1e400}`, `{"count":2147483648}`,
		`{"bogus":1}`, `{"NAME":"x"}`, `{"name":"x"}{}`, `{"name":"x"} x`, `{"name":`, `[]`, `null`, `"x"`, `{"name":null}`,
		`{"nested":{"port":70000}}`, `{"nested":{"items":[1]}}`, `{"labels":{"a":1}}`, `{"labels":[]}`, "{\"name\":\"\xff\"}",
		`{"name":"\ud800"}`, `{"ratio":1e308}`, `{"name":"x","name":1}`, `{"nested":{"bogus":true}}`, "\ufeff{}",
		// Field names with brackets: the error writer nests keys such as
		// "vms[1].name"; a client's unknown field so named must come back
		// as sent, and not as a huge list.
		`{"vms[1].name":1}`, `{"routes[0]":1}`, `{"customers[0]":1}`, `{"a[01]":1}`, `{"a[65535]":1}`, `{"a[65536]":1}`,
		`{"a[99999999999999999999]":1}`, `{"a[30000].b[30000].c[5536]":1}`, `{"a[0].b[1].c[2]":1}`, `{"[0]":1}`, `{"a[0]":1,"a":2}`,
		`{"nested":{"port":"x"},"x[1]":1}`, `{"NAME[0]":1}`, `{"a[0].":1}`, `{"a[0][1]":1}`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte(`{"name":"x"}`), true)
	f.Add([]byte(`{"name":"`), true)
	f.Fuzz(func(t *testing.T, data []byte, big bool) {
		body := data
		if big && len(data) <= api.MaxBodyBytes {
			body = append(bytes.Clone(data), bytes.Repeat([]byte{' '}, api.MaxBodyBytes+1-len(data))...)
		}
		req := httptest.NewRequest(http.MethodPost, "/membership/member/", bytes.NewReader(body))
		var dst fuzzInput
		err := api.DecodeBody(req, &dst)
		tooBig := len(body) > api.MaxBodyBytes
		if err == nil {
			if tooBig {
				t.Fatalf("a %d-byte body was accepted", len(body))
			}
			return
		}
		var e *wire.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T %v is not a *api.Error", err, err)
		}
		switch {
		case tooBig && e.Status != http.StatusRequestEntityTooLarge:
			t.Fatalf("a %d-byte body: status %d, want 413 (%v)", len(body), e.Status, e)
		case !tooBig && e.Status != http.StatusBadRequest:
			t.Fatalf("status %d, want 400 (%v)", e.Status, e)
		case e.Detail == "":
			t.Fatalf("no detail: %#v", e)
		}
		if len(e.Errors) == 0 {
			if !codeRE.MatchString(e.ErrorCode) {
				t.Fatalf("error_code %q is not a code (%v)", e.ErrorCode, e)
			}
			return
		}
		if e.ErrorCode != "" {
			t.Fatalf("a validation error carries error_code %q beside errors (%v)", e.ErrorCode, e)
		}
		// The field name is not checked here: see TestDecodeBodyFieldNames.
		for field, fe := range e.Errors {
			if fe.Detail == "" || !codeRE.MatchString(fe.ErrorCode) {
				t.Fatalf("errors[%q] = %#v", field, fe)
			}
		}
		// As written: the (nested) body reads back into the same errors,
		// and a client's field name cannot blow it up.
		w := httptest.NewRecorder()
		api.WriteError(w, err)
		if w.Code != e.Status || w.Body.Len() > 8*len(body)+wire.MaxErrorIndex*5+1000 {
			t.Fatalf("WriteError: status %d, a %d-byte body", w.Code, w.Body.Len())
		}
		var back wire.Error
		if err := json.Unmarshal(w.Body.Bytes(), &back); err != nil {
			t.Fatalf("WriteError wrote %s: %v", w.Body, err)
		}
		if back.Detail != e.Detail || back.ErrorCode != e.ErrorCode || !maps.Equal(back.Errors, e.Errors) {
			t.Fatalf("WriteError wrote %s, which reads back as %#v; want %#v", w.Body, back, e)
		}
	})
}

// TestWriteErrorNested: the errors of array items are written nested as
// CloudCIX writes them (wire.NestFieldErrors has the rules); a single error
// and flat fields are as before.
func TestWriteErrorNested(t *testing.T) {
	fe := func(code string) wire.FieldError { return wire.FieldError{Detail: "d", ErrorCode: code} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{wire.Errorf(http.StatusNotFound, "a_b_c_001", "gone"), `{"detail":"gone","error_code":"a_b_c_001"}`},
		{wire.FieldErrors{"name": fe("a_b_c_101")}.Err(), `{"detail":"Bad request.","errors":{"name":{"detail":"d","error_code":"a_b_c_101"}}}`},
		{wire.FieldErrors{"vms[2].name": fe("a_b_c_102"), "vms[0].storages[1].gb": fe("a_b_c_103"), "routes[0]": fe("a_b_c_104"),
			"storages": fe("a_b_c_105"), "storages[3]": fe("a_b_c_106"), "project.name": fe("a_b_c_107")}.Err(),
			`{"detail":"Bad request.","errors":{"project.name":{"detail":"d","error_code":"a_b_c_107"},` +
				`"routes":[{"detail":"d","error_code":"a_b_c_104"}],"storages":{"detail":"d","error_code":"a_b_c_105"},` +
				`"vms":[{"storages":[null,{"gb":{"detail":"d","error_code":"a_b_c_103"}}]},null,{"name":{"detail":"d","error_code":"a_b_c_102"}}]}}`},
	} {
		w := httptest.NewRecorder()
		api.WriteError(w, tc.err)
		if got := w.Body.String(); got != tc.want+"\n" {
			t.Errorf("%v:\n got %s\nwant %s", tc.err, got, tc.want)
		}
	}
}

// TestDecodeBodyReadError: a body that fails mid-read is a 400.
func TestDecodeBodyReadError(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(bytes.NewReader([]byte(`{"na`)), errReader{}))
	var dst fuzzInput
	var e *wire.Error
	if err := api.DecodeBody(req, &dst); !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.ErrorCode != wire.CodeMalformedJSON {
		t.Fatalf("DecodeBody over a failing reader: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestDecodeBodyFieldNames: errors are keyed by the field as the client
// wrote it, with the index of a list item, and field names are exact, also
// inside objects.
func TestDecodeBodyFieldNames(t *testing.T) {
	for _, tc := range []struct {
		body, field string
	}{
		{`{"bogus":1}`, "bogus"},
		{`{"name":1}`, "name"},
		{`{"customers":["a"]}`, "customers[0]"},
		{`{"customers":[1,2,-1]}`, "customers[2]"},
		{`{"customers":1}`, "customers"},
		{`{"nested":{"port":"x"}}`, "nested.port"},
		{`{"nested":{"items":["a",2]}}`, "nested.items[1]"},
		{`{"nested":{"bogus":1}}`, "nested.bogus"},
		{`{"nested":{"Port":1}}`, "nested.Port"},
		{`{"labels":{"a":1}}`, "labels.a"},
		{`{"count":2147483648}`, "count"},
		{`{"":0}`, "non_field_errors"},
		{`{"a\"b":1}`, `a"b`},
		{`{"NAME":"x"}`, "NAME"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			var dst fuzzInput
			err := api.DecodeBody(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(tc.body))), &dst)
			var e *wire.Error
			errors.As(err, &e)
			var fields []string
			if e != nil {
				for f := range e.Errors {
					fields = append(fields, f)
				}
			}
			if e == nil || !slices.Equal(fields, []string{tc.field}) {
				t.Errorf("%s: error %v, fields %q; want one error for field %q", tc.body, err, fields, tc.field)
			}
		})
	}
}

// TestDecodeBodyNestsListItems: a wrong item of a list of objects is named
// by its index, and written nested as CloudCIX writes the errors of items.
func TestDecodeBodyNestsListItems(t *testing.T) {
	type route struct {
		Local string `json:"local"`
		Port  uint16 `json:"port"`
	}
	var dst struct {
		Name   string  `json:"name"`
		Routes []route `json:"routes"`
	}
	body := `{"name":"x","routes":[{"local":"a"},{"bogus":1},{"local":5,"port":70000},{"LOCAL":"b"}]}`
	err := api.DecodeBody(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(body))), &dst)
	w := httptest.NewRecorder()
	api.WriteError(w, err)
	want := `{"detail":"Bad request.","errors":{"routes":[null,` +
		`{"bogus":{"detail":"Unknown field \"bogus\".","error_code":"regent_request_003"}},` +
		`{"local":{"detail":"Expected a string, got JSON number.","error_code":"regent_request_004"},` +
		`"port":{"detail":"Expected a whole number from 0 to 65535, got 70000.","error_code":"regent_request_004"}},` +
		`{"LOCAL":{"detail":"Unknown field \"LOCAL\".","error_code":"regent_request_003"}}]}}` + "\n"
	if w.Code != http.StatusBadRequest || w.Body.String() != want {
		t.Errorf("%s:\n got %d %s\nwant 400 %s", body, w.Code, w.Body, want)
	}
	// Case-insensitive keys inside a list are refused after a clean decode too.
	err = api.DecodeBody(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(`{"routes":[{"Local":"a"}]}`))), &dst)
	var e *wire.Error
	if !errors.As(err, &e) || len(e.Errors) != 1 || e.Errors["routes[0].Local"].ErrorCode != wire.CodeUnknownField {
		t.Errorf("routes[0].Local: %v", err)
	}
}

// TestDecodeBodyWrongNumber: a number the field's Go type cannot hold, or a
// value of another JSON type, is named with what the field takes (for a
// number, the range of its type) and what was sent.
func TestDecodeBodyWrongNumber(t *testing.T) {
	type inner struct {
		N int16 `json:"n"`
	}
	var dst struct {
		I8   int8     `json:"i8"`
		I    int      `json:"i"`
		U16  *uint16  `json:"u16"`
		U64  uint64   `json:"u64"`
		F32  float32  `json:"f32"`
		Raw  []byte   `json:"raw"`
		List []uint32 `json:"list"`
		In   inner    `json:"in"`
	}
	for _, tc := range []struct{ body, field, want string }{
		{`{"i8":128}`, "i8", "Expected a whole number from -128 to 127, got 128."},
		{`{"i8":-1.5}`, "i8", "Expected a whole number from -128 to 127, got -1.5."},
		{`{"i":9223372036854775808}`, "i", "Expected a whole number from -9223372036854775808 to 9223372036854775807, got 9223372036854775808."},
		{`{"u16":-1}`, "u16", "Expected a whole number from 0 to 65535, got -1."},
		{`{"u64":1e30}`, "u64", "Expected a whole number from 0 to 18446744073709551615, got 1e30."},
		{`{"u64":"1"}`, "u64", "Expected a whole number from 0 to 18446744073709551615, got JSON string."},
		{`{"f32":1e39}`, "f32", "Expected a number from -3.4028235e+38 to 3.4028235e+38, got 1e39."},
		{`{"raw":1}`, "raw", "Expected a base64 string, got JSON number."},
		{`{"list":[1,-2]}`, "list[1]", "Expected a whole number from 0 to 4294967295, got -2."},
		{`{"list":{}}`, "list", "Expected a list, got JSON object."},
		{`{"in":[]}`, "in", "Expected an object, got JSON array."},
		{`{"in":{"n":40000}}`, "in.n", "Expected a whole number from -32768 to 32767, got 40000."},
	} {
		err := api.DecodeBody(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(tc.body))), &dst)
		var e *wire.Error
		if !errors.As(err, &e) || len(e.Errors) != 1 || e.Errors[tc.field].Detail != tc.want || e.Errors[tc.field].ErrorCode != wire.CodeWrongType {
			t.Errorf("%s: %v, want %s: %q", tc.body, err, tc.field, tc.want)
		}
	}
}
