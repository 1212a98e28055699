package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"

	wire "github.com/regentcloud/regent/pkg/api"
)

// shapeErrors checks a JSON body against the Go type it decodes into and
// reports, by path ("routes[1].local_subnet"), every key that is not
// exactly a field's JSON name and every value of the wrong JSON type. The
// error writer nests such paths as CloudCIX does, so a tenant learns which
// item of a list was wrong; encoding/json alone says only "routes.gb", or
// nothing but the key, and matches keys case-insensitively. A value whose
// type decodes itself (json.Unmarshaler, encoding.TextUnmarshaler) is left
// to its own decoder.
func shapeErrors(body []byte, t reflect.Type) wire.FieldErrors {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	fe := wire.FieldErrors{}
	checkShape(fe, "", v, t)
	// A field's own error hides those of its parts, as the nested form has
	// room for one or the other (a client's unknown key may look like a
	// path: "routes[0]" beside errors of routes[0]'s fields).
	for k := range fe {
		for i := range len(k) {
			if (k[i] == '.' || k[i] == '[') && i > 0 {
				if _, ok := fe[k[:i]]; ok {
					delete(fe, k)
					break
				}
			}
		}
	}
	return fe
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

func checkShape(fe wire.FieldErrors, path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || decodesItself(t) {
		return // null leaves the zero value; validators decide whether that is allowed
	}
	wrong := func(got string) {
		fe.Add(fieldName(path), wire.CodeWrongType, "Expected %s, got %s.", describeType(t), describeGot(got))
	}
	switch t.Kind() {
	case reflect.Interface:
		return
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			wrong(jsonKind(v))
			return
		}
		for k, item := range obj {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			f, ok := jsonField(t, k)
			if !ok {
				fe.Add(fieldName(sub), wire.CodeUnknownField, "Unknown field %q.", k)
				continue
			}
			checkShape(fe, sub, item, f)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			wrong(jsonKind(v))
			return
		}
		for k, item := range obj {
			checkShape(fe, path+"."+k, item, t.Elem())
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			if _, ok := v.(string); !ok { // []byte is base64 text
				wrong(jsonKind(v))
			}
			return
		}
		list, ok := v.([]any)
		if !ok {
			wrong(jsonKind(v))
			return
		}
		for i, item := range list {
			checkShape(fe, fmt.Sprintf("%s[%d]", path, i), item, t.Elem())
		}
	case reflect.String:
		if jsonKind(v) != "string" {
			wrong(jsonKind(v))
		}
	case reflect.Bool:
		if jsonKind(v) != "bool" {
			wrong(jsonKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			wrong(jsonKind(v))
		} else if json.Unmarshal([]byte(n), reflect.New(t).Interface()) != nil {
			wrong("number " + n.String()) // out of range, or a fraction for an integer
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// jsonField finds the type of struct t's field (or an embedded struct's)
// whose JSON name is exactly name.
func jsonField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			if sub, ok := jsonField(ft, name); ok {
				return sub, true
			}
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// nestedTypes caches, per struct type, whether any field holds a struct or
// a map (directly, or as list items): only such bodies need shapeErrors
// after a successful decode to catch keys matched case-insensitively below
// the top level. The others get the cheap top-level key scan.
var nestedTypes sync.Map // reflect.Type → bool

func hasNested(t reflect.Type) bool {
	if v, ok := nestedTypes.Load(t); ok {
		return v.(bool)
	}
	nested := false
	for i := 0; i < t.NumField() && !nested; i++ {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array {
			ft = ft.Elem()
		}
		switch {
		case decodesItself(ft):
		case ft.Kind() == reflect.Map:
			nested = true
		case ft.Kind() == reflect.Struct && f.Anonymous:
			nested = hasNested(ft)
		case ft.Kind() == reflect.Struct:
			nested = true
		}
	}
	nestedTypes.Store(t, nested)
	return nested
}
