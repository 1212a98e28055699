// Package query is the one generic list engine of the CloudCIX-style HTTP
// API. Parse reads the filter (search[...] and exclude[...]), ordering and
// paging parameters of a list request against the Spec a list handler
// declares; Apply runs the result over an in-memory slice of Go structs,
// whose fields are found by their json tags.
//
// As in CloudCIX, nothing here fails: a filter naming an unknown field or
// operator, or carrying a value that does not parse, is skipped and explained
// in Query.Warnings; a bad limit, page or order falls back to its default
// (CloudCIX's fallback) and is explained there too (CloudCIX says nothing,
// so a client asking for 500 items got 50 without knowing why).
package query

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Paging limits of every list.
const (
	DefaultLimit = 50
	MaxLimit     = 100
)

// FieldType says how a searchable field is compared and which operators it
// accepts.
type FieldType int

// Field types. The operators each accepts, besides exact match (the bare
// search[field]=v, or search[field__exact]=v), are:
//
//	String: in, iexact, icontains, istartswith, iendswith
//	Number: gt, gte, lt, lte, in, range, isnull (also for FK ids)
//	Date:   gt, gte, lt, lte, in, range, isnull (RFC 3339 or 2006-01-02 values),
//	        and the date parts year, month, day, week_day, hour, minute
//	        (integer values, compared in UTC; week_day as Django's: 1 is
//	        Sunday, 7 Saturday)
//	Bool:   isnull
//	CIDR:   in, contains, within, and on the text iexact, icontains,
//	        istartswith, iendswith
//
// String fields are Go strings; Number fields any integer or float kind; Date
// fields time.Time (zero is null) or RFC 3339 strings (empty is null); Bool
// fields bool; CIDR fields are strings holding a prefix (10.0.0.0/8, or with
// a host part as a subnet's gateway notation 10.0.0.1/24) or an address (its
// /32 or /128), and their operands are prefixes or addresses: exact and in
// match a field of the same network (host parts ignored), contains one whose
// network holds the whole operand, within one that lies inside it; CIDR
// fields are ordered numerically, by network address (IPv4 first), then
// prefix length, then host part. Pointers (nil is null) and slices (any
// element matches; empty is null) of these work too.
const (
	String FieldType = iota
	Number
	Date
	Bool
	CIDR
)

func (t FieldType) String() string {
	switch t {
	case String:
		return "string"
	case Number:
		return "number"
	case Date:
		return "date"
	case Bool:
		return "boolean"
	case CIDR:
		return "cidr"
	}
	return "FieldType(" + strconv.Itoa(int(t)) + ")"
}

// Operator names.
const (
	opExact       = "exact"
	opIExact      = "iexact"
	opIContains   = "icontains"
	opIStartsWith = "istartswith"
	opIEndsWith   = "iendswith"
	opIn          = "in"
	opGt          = "gt"
	opGte         = "gte"
	opLt          = "lt"
	opLte         = "lte"
	opRange       = "range"
	opIsNull      = "isnull"
	opContains    = "contains"
	opWithin      = "within"

	// Date parts: an integer compared with that part of the time in UTC.
	opYear    = "year"
	opMonth   = "month"
	opDay     = "day"
	opWeekDay = "week_day"
	opHour    = "hour"
	opMinute  = "minute"
)

// isDatePart reports whether op compares a part of a date.
func isDatePart(op string) bool {
	switch op {
	case opYear, opMonth, opDay, opWeekDay, opHour, opMinute:
		return true
	}
	return false
}

// operators lists the operators a field type accepts; exact is always first.
func operators(t FieldType) []string {
	switch t {
	case String:
		return []string{opExact, opIContains, opIEndsWith, opIExact, opIn, opIStartsWith}
	case Number:
		return []string{opExact, opGt, opGte, opIn, opIsNull, opLt, opLte, opRange}
	case Date:
		return []string{opExact, opDay, opGt, opGte, opHour, opIn, opIsNull, opLt, opLte, opMinute, opMonth, opRange, opWeekDay, opYear}
	case Bool:
		return []string{opExact, opIsNull}
	case CIDR:
		return []string{opExact, opContains, opIContains, opIEndsWith, opIExact, opIn, opIStartsWith, opWithin}
	}
	return nil
}

// Spec is what one list endpoint declares.
type Spec struct {
	// Fields maps the json name of every searchable field to its type.
	Fields map[string]FieldType
	// Ordering lists the json names allowed in order=; the first is the
	// default. An entry may start with "-" to make the default descending.
	Ordering []string
	// Aliases maps other names of fields (CloudCIX's, where Regent's json
	// name differs: a record's domain and time_to_live) to the name in
	// Fields and Ordering: a filter or an order naming an alias acts on
	// the field.
	Aliases map[string]string
	// ZeroIsNull names Number fields whose 0 means none: the optional
	// foreign keys a view shows as 0 when unset (an address's vm_id and
	// public_ip_id, a subnet's router_id). isnull counts their 0 as null,
	// so search[vm_id__isnull]=true finds the addresses of no VM, as in
	// CloudCIX, where such a key is null; the other operators compare the
	// number as shown (search[vm_id]=0 finds them too).
	ZeroIsNull []string
	// Reserved names query parameters that are neither filters nor paging and
	// must be ignored, in addition to the ones every list ignores: limit, page,
	// order, stale, consistent, index, wait, include_related and format.
	Reserved []string
}

// field is the declared name of a field named name or by an alias.
func (spec Spec) field(name string) string {
	if n, ok := spec.Aliases[name]; ok {
		return n
	}
	return name
}

// Query is a parsed list request.
type Query struct {
	Page  int    // 0-based page number as applied
	Limit int    // page size as applied, in [1, MaxLimit]
	Order string // ordering as applied, e.g. "name" or "-id"; "" if the Spec allows none
	// Warnings explains every filter that was skipped, and every use of the
	// deprecated filter syntax. It is never nil, so it encodes as [].
	Warnings []string

	filters   []filter
	orderBy   string
	desc      bool
	orderType FieldType
	orderTyp  bool // orderType is declared by the Spec
}

// filter is one parsed and validated filter.
type filter struct {
	param   string // the parameter as the client wrote it, for warnings
	exclude bool
	field   string
	op      string
	typ     FieldType
	vals    []key  // 1 value; in: any number; range: exactly 2; date parts: 1 integer
	lower   string // lower-cased value of the case-insensitive string ops
	null    bool   // value of isnull
	zero    bool   // the field's 0 is null to isnull (Spec.ZeroIsNull)
}

func (f *filter) warnPrefix() string {
	if f.exclude {
		return "ExcludeFilterWarning"
	}
	return "SearchFilterWarning"
}

// defaultReserved reports whether name is a parameter every list ignores.
func defaultReserved(name string) bool {
	switch name {
	case "limit", "page", "order", "stale", "consistent", "index", "wait", "include_related", "format":
		return true
	}
	return false
}

// Parse reads a list request's query parameters. It never fails: see the
// package documentation. When a parameter is repeated its last value counts,
// as with Django's QueryDict.
func Parse(spec Spec, v url.Values) *Query {
	q := &Query{Limit: DefaultLimit, Warnings: []string{}}
	// An empty value is no value: the default, without a word.
	if s, ok := last(v, "limit"); ok && strings.TrimSpace(s) != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 1 && n <= MaxLimit {
			q.Limit = n
		} else {
			q.warn("PagingWarning", "limit %q is not a whole number from 1 to %d; the default, %d, was used", s, MaxLimit, DefaultLimit)
		}
	}
	if s, ok := last(v, "page"); ok && strings.TrimSpace(s) != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
			q.Page = n
		} else {
			q.warn("PagingWarning", "page %q is not a whole number from 0 (the first page) up; page 0 was used", s)
		}
	}
	order, _ := last(v, "order")
	q.setOrder(spec, order)

	keys := make([]string, 0, len(v))
	for k, vals := range v {
		if len(vals) > 0 && !defaultReserved(k) && !slices.Contains(spec.Reserved, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		q.parseParam(spec, k, v[k][len(v[k])-1])
	}
	return q
}

// ByID reports whether q has no filters and orders by id (desc when
// descending), or by nothing, which Apply also answers in id order: the
// result is then every item, by id, and a caller may page its own objects
// (Window) and render only the page instead of calling Apply.
func (q *Query) ByID() (desc, ok bool) {
	if len(q.filters) > 0 || (q.orderBy != "" && q.orderBy != "id") {
		return false, false
	}
	return q.desc, true
}

// On is q for the stored objects of a list whose filters and order are
// declared on another form of them (the views a list renders): a copy
// whose filters and order name, for each field, the stored object's field
// that stored maps it to. ok is false when a filter or the order names a
// field stored does not map, or stored does not map "id" to "id" (Apply's
// tie-break). Apply on the copy adds its warnings to the copy only.
func (q *Query) On(stored map[string]string) (c *Query, ok bool) {
	if stored["id"] != "id" {
		return nil, false
	}
	cp := *q
	cp.Warnings = slices.Clone(q.Warnings)
	cp.filters = slices.Clone(q.filters)
	for i := range cp.filters {
		name, ok := stored[cp.filters[i].field]
		if !ok {
			return nil, false
		}
		cp.filters[i].field = name
	}
	if q.orderBy != "" {
		name, ok := stored[q.orderBy]
		if !ok {
			return nil, false
		}
		cp.orderBy = name
	}
	return &cp, true
}

// Window is the part [start, end) of total ordered items that the page of
// q holds, as Apply pages them.
func (q *Query) Window(total int) (start, end int) {
	limit := q.Limit
	if limit < 1 || limit > MaxLimit {
		limit = DefaultLimit
	}
	pageNo := max(q.Page, 0)
	if pageNo < (total+limit-1)/limit {
		start = pageNo * limit
		end = min(start+limit, total)
	}
	return start, end
}

func last(v url.Values, name string) (string, bool) {
	vals := v[name]
	if len(vals) == 0 {
		return "", false
	}
	return vals[len(vals)-1], true
}

func (q *Query) setOrder(spec Spec, raw string) {
	allowed := func(name string) bool {
		for _, o := range spec.Ordering {
			if strings.TrimPrefix(o, "-") == name {
				return true
			}
		}
		return false
	}
	given := raw
	raw = strings.TrimSpace(raw)
	desc := strings.HasPrefix(raw, "-")
	name := spec.field(strings.TrimPrefix(raw, "-"))
	if name == "" || !allowed(name) {
		if raw != "" {
			defer q.warnOrder(spec, given)
		}
		if len(spec.Ordering) == 0 {
			return
		}
		desc = strings.HasPrefix(spec.Ordering[0], "-")
		name = strings.TrimPrefix(spec.Ordering[0], "-")
		if name == "" {
			return
		}
	}
	q.orderBy, q.desc = name, desc
	q.Order = name
	if desc {
		q.Order = "-" + name
	}
	q.orderType, q.orderTyp = spec.Fields[name]
}

// warnOrder explains an order that names no orderable field of spec, once
// the default is applied.
func (q *Query) warnOrder(spec Spec, given string) {
	if len(spec.Ordering) == 0 {
		q.warn("OrderingWarning", "order %q was ignored: this list has no orderings", given)
		return
	}
	names := make([]string, len(spec.Ordering))
	for i, o := range spec.Ordering {
		names[i] = strings.TrimPrefix(o, "-")
	}
	q.warn("OrderingWarning", "order %q names no orderable field (%s, each with - for descending); the default, %s, was used", given, strings.Join(names, ", "), q.Order)
}

func (q *Query) warn(prefix, format string, args ...any) {
	w := prefix + ": " + fmt.Sprintf(format, args...)
	if !slices.Contains(q.Warnings, w) {
		q.Warnings = append(q.Warnings, w)
	}
}

// parseParam handles one query parameter that is not reserved.
func (q *Query) parseParam(spec Spec, key, value string) {
	var (
		exclude bool
		expr    string
	)
	switch {
	case strings.HasPrefix(key, "search[") || strings.HasPrefix(key, "exclude["):
		exclude = strings.HasPrefix(key, "exclude[")
		open := strings.IndexByte(key, '[')
		inner, ok := strings.CutSuffix(key[open+1:], "]")
		if !ok || inner == "" || strings.ContainsAny(inner, "[]") {
			prefix := "SearchFilterWarning"
			if exclude {
				prefix = "ExcludeFilterWarning"
			}
			q.warn(prefix, "%s is not a valid filter parameter; expected %s[<field>__<operator>]; the filter is ignored.",
				quote(key), key[:open])
			return
		}
		expr = inner
	default:
		// The deprecated forms: <field>__<op>=v, exclude__<field>__<op>=v
		// and <field>=v for a declared search field.
		var isExclude bool
		expr, isExclude = strings.CutPrefix(key, "exclude__")
		_, declared := spec.Fields[spec.field(key)]
		if !isExclude && !declared && !strings.Contains(key, "__") {
			return // not a filter: ignore it, like any unknown parameter
		}
		exclude = isExclude
		modern := "search[" + expr + "]"
		if exclude {
			modern = "exclude[" + expr + "]"
		}
		q.warn("DeprecationWarning", "the filter syntax %s is deprecated; use %s instead.", quote(key), quote(modern))
		if expr == "" {
			q.warn("ExcludeFilterWarning", "%s names no field; the filter is ignored.", quote(key))
			return
		}
	}

	f := filter{param: key, exclude: exclude, field: spec.field(expr), op: opExact}
	if _, ok := spec.Fields[f.field]; !ok {
		if i := strings.LastIndex(expr, "__"); i >= 0 {
			f.field, f.op = spec.field(expr[:i]), expr[i+2:]
		}
	}
	typ, ok := spec.Fields[f.field]
	if !ok {
		q.warn(f.warnPrefix(), "%s: %s is not a searchable field of this list; the filter is ignored.",
			f.param, quote(f.field))
		return
	}
	f.typ = typ
	f.zero = typ == Number && slices.Contains(spec.ZeroIsNull, f.field)
	ops := operators(typ)
	if !slices.Contains(ops, f.op) {
		q.warn(f.warnPrefix(), "%s: operator %s is not supported on the %s field %s (supported: %s); the filter is ignored.",
			f.param, quote(f.op), typ, quote(f.field), strings.Join(ops, ", "))
		return
	}
	if q.parseValue(&f, value) {
		q.filters = append(q.filters, f)
	}
}

// parseValue converts a filter's raw value for its field type and operator,
// or warns and reports false.
func (q *Query) parseValue(f *filter, raw string) bool {
	switch f.op {
	case opIsNull:
		b, ok := parseBool(raw)
		if !ok {
			q.warn(f.warnPrefix(), "%s: isnull expects true or false, not %s; the filter is ignored.", f.param, quote(raw))
			return false
		}
		f.null = b
		return true
	case opIn, opRange:
		items := splitList(raw)
		if f.op == opRange && len(items) != 2 {
			q.warn(f.warnPrefix(), "%s: range expects exactly 2 values, got %d in %s; the filter is ignored.",
				f.param, len(items), quote(raw))
			return false
		}
		f.vals = make([]key, 0, len(items))
		for _, item := range items {
			k, ok := parseKey(f.typ, item)
			if !ok {
				q.warn(f.warnPrefix(), "%s: %s is not a valid %s for field %s; the filter is ignored.",
					f.param, quote(item), valueNoun(f.typ), quote(f.field))
				return false
			}
			f.vals = append(f.vals, k)
		}
		if f.op == opIn {
			slices.SortFunc(f.vals, f.order) // searched, not scanned (filter.test)
		}
		return true
	}
	if isDatePart(f.op) {
		// As Django's date-part lookups: the value must be an integer; one
		// out of the part's range (month 13) simply matches nothing.
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			q.warn(f.warnPrefix(), "%s: %s is not a valid integer (%s) for field %s; the filter is ignored.",
				f.param, quote(raw), f.op, quote(f.field))
			return false
		}
		f.vals = []key{{kind: kNumber, n: intNum(n)}}
		return true
	}
	typ := f.typ
	switch f.op {
	case opIExact, opIContains, opIStartsWith, opIEndsWith:
		typ = String // on a CIDR field's text
	}
	k, ok := parseKey(typ, raw)
	if !ok {
		q.warn(f.warnPrefix(), "%s: %s is not a valid %s for field %s; the filter is ignored.",
			f.param, quote(raw), valueNoun(f.typ), quote(f.field))
		return false
	}
	f.vals = []key{k}
	f.lower = strings.ToLower(k.s)
	return true
}

func valueNoun(t FieldType) string {
	switch t {
	case Number:
		return "number"
	case Date:
		return "date (RFC 3339 or YYYY-MM-DD)"
	case Bool:
		return "boolean (true or false)"
	case CIDR:
		return "CIDR or IP address"
	}
	return "string"
}

// splitList reads the value of in and range: surrounding brackets and
// parentheses are stripped, the rest is split on commas, each item is
// trimmed of spaces, quotes and brackets, and blank items are dropped.
func splitList(s string) []string {
	s = strings.Trim(s, "[]() \t\r\n")
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.Trim(item, "[]()\"' \t\r\n"); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseBool accepts true and false in any case, and 1/0 and t/f as Django's
// BooleanField does.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1":
		return true, true
	case "false", "f", "0":
		return false, true
	}
	return false, false
}

// quote quotes client input for a warning, shortening what is very long.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		r := []rune(s)
		if len(r) > limit {
			s = string(r[:limit]) + "…"
		}
	}
	return strconv.Quote(s)
}
