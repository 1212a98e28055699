package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxErrorIndex bounds the lists NestFieldErrors renders: a key whose
// indexes add up to more ("x[99999999]", "a[40000].b[40000]") keeps its flat
// form. No real input comes near; the bound is there so that a client's
// unknown field so named cannot make the server render huge lists.
const MaxErrorIndex = 1<<16 - 1

// NestFieldErrors renders flat field errors in the CloudCIX dialect (the
// wire form of the "errors" of a validation error). Regent keys the errors of
// array items by path, "vms[2].name"; CloudCIX returns a list aligned with
// the input instead, null for a good item:
//
//	"vms[2].name"            → "vms": [null, null, {"name": {error_code, detail}}]
//	"routes[0]"              → "routes": [{error_code, detail}]
//	"vms[0].storages[1].gb"  → "vms": [{"storages": [null, {"gb": {...}}]}]
//
// The errors on items of one array merge into one list, as long as the
// highest failing index + 1 (a good item after the last bad one is not
// listed). An error on a container wins over the errors inside it: when an
// array field has an error of its own ("storages") it stays an error object
// and the errors of its items are left out, and so are the errors of an
// item's fields when the item as a whole has one ("vms[0]"). Keys without an
// index, keys whose indexes are not canonical decimal or add up to more than
// MaxErrorIndex, and malformed keys are kept as they are. FlattenFieldErrors
// is the inverse.
func NestFieldErrors(errs map[string]FieldError) map[string]any {
	if len(errs) == 0 {
		return nil
	}
	type item struct {
		own *FieldError
		sub map[string]FieldError
	}
	out := make(map[string]any, len(errs))
	lists := map[string]map[int]*item{}
	for k, v := range errs {
		name, i, rest, ok := splitIndex(k)
		if !ok || indexSum(k) > MaxErrorIndex {
			out[k] = v
			continue
		}
		items := lists[name]
		if items == nil {
			items = map[int]*item{}
			lists[name] = items
		}
		it := items[i]
		if it == nil {
			it = &item{}
			items[i] = it
		}
		if rest == "" {
			it.own = &v
			continue
		}
		if it.sub == nil {
			it.sub = map[string]FieldError{}
		}
		it.sub[rest] = v
	}
	for name, items := range lists {
		if _, own := out[name]; own {
			continue // the array field's own error wins
		}
		n := 0
		for i := range items {
			n = max(n, i+1)
		}
		list := make([]any, n)
		for i, it := range items {
			if it.own != nil {
				list[i] = *it.own
			} else {
				list[i] = NestFieldErrors(it.sub)
			}
		}
		out[name] = list
	}
	return out
}

// indexSum adds up the numbers in brackets in k; a number of more than five
// digits counts as more than MaxErrorIndex. The indexes of the rest of a key
// that splitIndex splits add up to no more than the key's.
func indexSum(k string) int {
	sum := 0
	for {
		open := strings.IndexByte(k, '[')
		if open < 0 {
			return sum
		}
		k = k[open+1:]
		end := strings.IndexByte(k, ']')
		if end < 0 {
			return sum
		}
		digits := k[:end]
		n, err := strconv.Atoi(digits)
		switch {
		case len(digits) > 5:
			return MaxErrorIndex + 1
		case err == nil && n > 0:
			sum += n
		}
		k = k[end+1:]
	}
}

// splitIndex splits "name[i]" or "name[i].rest" into its parts; ok is false
// for any other key.
func splitIndex(k string) (name string, i int, rest string, ok bool) {
	open := strings.IndexByte(k, '[')
	if open <= 0 {
		return "", 0, "", false
	}
	end := strings.IndexByte(k[open:], ']')
	if end < 0 {
		return "", 0, "", false
	}
	digits := k[open+1 : open+end]
	if digits == "" || len(digits) > 5 || (digits[0] == '0' && len(digits) > 1) {
		return "", 0, "", false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return "", 0, "", false
		}
	}
	i, _ = strconv.Atoi(digits)
	rest = k[open+end+1:]
	switch {
	case rest == "":
	case len(rest) > 1 && rest[0] == '.':
		rest = rest[1:]
	default:
		return "", 0, "", false
	}
	return k[:open], i, rest, true
}

// FlattenFieldErrors reads the "errors" object of a CloudCIX validation
// error, nested lists included, back into flat keys: "vms": [null,
// {"name": {...}}] becomes "vms[1].name". It accepts the flat form too.
func FlattenFieldErrors(data []byte) (map[string]FieldError, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	out := make(map[string]FieldError, len(m))
	if err := flattenFields(out, "", m); err != nil {
		return nil, err
	}
	return out, nil
}

// flattenFields flattens a field map: each value is an error object or a
// list of items.
func flattenFields(out map[string]FieldError, prefix string, m map[string]json.RawMessage) error {
	for k, v := range m {
		key := prefix + k
		v = bytes.TrimSpace(v)
		switch {
		case len(v) == 0 || string(v) == "null":
		case v[0] == '{':
			var fe FieldError
			if err := json.Unmarshal(v, &fe); err != nil {
				return fmt.Errorf("errors[%q]: %w", key, err)
			}
			out[key] = fe
		case v[0] == '[':
			var items []json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				return fmt.Errorf("errors[%q]: %w", key, err)
			}
			for i, it := range items {
				if err := flattenItem(out, key+"["+strconv.Itoa(i)+"]", it); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("errors[%q]: want an error object or a list, got %.20s", key, v)
		}
	}
	return nil
}

// flattenItem flattens a list item: null, an error object (its values are
// strings) or a field map (its values are objects or lists).
func flattenItem(out map[string]FieldError, key string, v json.RawMessage) error {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if v[0] != '{' || json.Unmarshal(v, &m) != nil {
		return fmt.Errorf("errors[%q]: want null, an error object or a field map, got %.20s", key, v)
	}
	for _, x := range m {
		if x = bytes.TrimSpace(x); len(x) > 0 && x[0] == '"' {
			var fe FieldError
			if err := json.Unmarshal(v, &fe); err != nil {
				return fmt.Errorf("errors[%q]: %w", key, err)
			}
			out[key] = fe
			return nil
		}
	}
	if len(m) == 0 {
		out[key] = FieldError{}
		return nil
	}
	return flattenFields(out, key+".", m)
}

// UnmarshalJSON reads either error shape, validation errors with nested
// lists (see NestFieldErrors) flattened back into path keys, so that
// e.Errors["vms[1].name"] finds what the server rendered as
// errors.vms[1].name. Status and RetryAfter are left as they are.
func (e *Error) UnmarshalJSON(data []byte) error {
	raw := struct {
		Detail    string          `json:"detail"`
		ErrorCode string          `json:"error_code"`
		Errors    json.RawMessage `json:"errors"`
	}{Detail: e.Detail, ErrorCode: e.ErrorCode}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	e.Detail, e.ErrorCode = raw.Detail, raw.ErrorCode
	if v := bytes.TrimSpace(raw.Errors); len(v) > 0 && string(v) != "null" {
		errs, err := FlattenFieldErrors(v)
		if err != nil {
			return err
		}
		e.Errors = errs
	}
	return nil
}
