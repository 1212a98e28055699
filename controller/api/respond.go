package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 1 << 20

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}

// WriteJSON writes v as the response body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail":"The response could not be encoded.","error_code":"regent_internal_001"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// WriteError writes err in the CloudCIX error shape. Errors that are not
// *wire.Error are internal: logged by the caller and reported as 500.
// Validation errors of array items, keyed by path in Go ("vms[2].name"),
// are rendered nested as CloudCIX does: "vms": [null, null, {"name": {...}}]
// (wire.NestFieldErrors). This is the only place that rendering happens.
func WriteError(w http.ResponseWriter, err error) {
	var e *wire.Error
	if !errors.As(err, &e) {
		e = &wire.Error{Status: http.StatusInternalServerError, ErrorCode: wire.CodeInternal, Detail: "Internal error."}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	WriteJSON(w, e.Status, cloudcixError{Detail: e.Detail, ErrorCode: e.ErrorCode, Errors: wire.NestFieldErrors(e.Errors)})
}

// cloudcixError is the wire form of a *wire.Error: its field errors nested.
type cloudcixError struct {
	Detail    string         `json:"detail"`
	ErrorCode string         `json:"error_code,omitempty"`
	Errors    map[string]any `json:"errors,omitempty"`
}

// resultErr unwraps an FSM result.
func resultErr(v any) (any, error) {
	if r, ok := v.(fsm.Result); ok {
		return r.Value, r.Err
	}
	return v, nil
}

// DecodeBody decodes a JSON object body into dst, strictly: unknown fields,
// wrong types, trailing data and bodies over MaxBodyBytes are rejected with a
// 4xx carrying an error_code.
func DecodeBody(r *http.Request, dst any) error {
	// The Content-Type is not checked: the body must be JSON whatever it says
	// (curl -d sends form-urlencoded by default).
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return wire.Errorf(http.StatusRequestEntityTooLarge, wire.CodeBodyTooLarge, "The request body is larger than %d bytes.", MaxBodyBytes)
		}
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body could not be read: %v.", err)
	}
	return decodeJSON(body, dst)
}

func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body is empty: send a JSON object.")
	}
	if trimmed[0] != '{' {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var syntaxErr *json.SyntaxError
		if !errors.As(err, &syntaxErr) {
			// Name the item of a list that was wrong, and every wrong field.
			if fe := shapeErrors(trimmed, reflect.TypeOf(dst)); len(fe) > 0 {
				return fe.Err()
			}
		}
		return jsonError(err)
	}
	if dec.More() {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "Malformed JSON: unexpected data after the object.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "Malformed JSON: unexpected data after the object.")
	}
	return exactKeys(trimmed, dst)
}

// exactKeys rejects keys that encoding/json matched to a field only
// case-insensitively ("NAME" for "name"): field names are exact. A flat
// body is checked by a scan of its top-level keys; one with objects inside
// by shapeErrors.
func exactKeys(body []byte, dst any) error {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	if hasNested(t) {
		return shapeErrors(body, t).Err()
	}
	var keys []string
	topLevelKeys(body, func(k string) {
		if !hasJSONName(t, k) {
			keys = append(keys, k)
		}
	})
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	fe := wire.FieldErrors{}
	for _, k := range keys {
		fe.Add(fieldName(k), wire.CodeUnknownField, "Unknown field %q.", k)
	}
	return fe.Err()
}

// topLevelKeys calls fn with each key of the JSON object body, which has
// already been decoded (so it is valid JSON).
func topLevelKeys(body []byte, fn func(string)) {
	depth, wantKey := 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '"':
			j, escaped := i+1, false
			for ; j < len(body) && body[j] != '"'; j++ {
				if body[j] == '\\' {
					j++
					escaped = true
				}
			}
			if depth == 1 && wantKey && j < len(body) {
				k := string(body[i+1 : j])
				if escaped || !utf8.ValidString(k) {
					_ = json.Unmarshal(body[i:j+1], &k) // as encoding/json reads it
				}
				fn(k)
				wantKey = false
			}
			i = j
		case '{', '[':
			depth++
			wantKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			wantKey = depth == 1
		}
	}
}

// hasJSONName reports whether struct type t (or a struct it embeds) has a
// field whose JSON name is exactly name.
func hasJSONName(t reflect.Type, name string) bool {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			if hasJSONName(ft, name) {
				return true
			}
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return true
		}
	}
	return false
}

func fieldName(k string) string {
	if k == "" {
		return "non_field_errors"
	}
	return k
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := fieldName(typeErr.Field)
		fe := wire.FieldErrors{}
		fe.Add(field, wire.CodeWrongType, "Expected %s, got %s.", describeType(typeErr.Type), describeGot(typeErr.Value))
		return fe.Err()
	case errors.As(err, &syntaxErr):
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "Malformed JSON at byte %d: %v.", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if u, err := strconv.Unquote(name); err == nil {
			name = u
		}
		fe := wire.FieldErrors{}
		fe.Add(fieldName(name), wire.CodeUnknownField, "Unknown field %q.", name)
		return fe.Err()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "Malformed JSON: the body ends early.")
	}
	return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "Malformed JSON: %v.", err)
}

// describeType names what a JSON value must be to decode into t. A number
// names the range of t's Go type ("a whole number from 0 to 4294967295"
// for a uint32), so that a number refused for its sign, its fraction or its
// size is told what would do: "Expected a number, got JSON number -1."
// contradicted itself.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		max := int64(math.MaxInt64 >> (64 - t.Bits()))
		return fmt.Sprintf("a whole number from %d to %d", -max-1, max)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
	case reflect.Float32:
		return "a number from -" + strconv.FormatFloat(math.MaxFloat32, 'g', -1, 32) + " to " + strconv.FormatFloat(math.MaxFloat32, 'g', -1, 32)
	case reflect.Float64:
		return "a number from -" + strconv.FormatFloat(math.MaxFloat64, 'g', -1, 64) + " to " + strconv.FormatFloat(math.MaxFloat64, 'g', -1, 64)
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}

// describeGot names a refused JSON value as encoding/json reports it
// (UnmarshalTypeError.Value, checkShape): a number by its text ("-1",
// "3.5", "1e30"), anything else by its JSON kind ("JSON string").
func describeGot(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	return "JSON " + v
}
