package query

import (
	"cmp"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Apply filters items, orders them and returns the requested page together
// with the number of items that passed the filters (total_records). The input
// slice is not modified; the page is never nil, so it encodes as [].
//
// Items may be structs, pointers to structs, or interfaces holding either;
// fields are found by their json names, including those promoted from
// embedded structs. A filter on a field the item type lacks, or whose Go kind
// does not fit the field type, is skipped with a warning appended to
// q.Warnings, so a Query must not be shared between concurrent Apply calls.
// Ties in the ordering are broken by the "id" field ascending when the type
// has one, otherwise by the input order.
func Apply[T any](q *Query, items []T) (page []T, total int) {
	if q == nil {
		q = &Query{Limit: DefaultLimit}
	}

	var plans planCache
	if st := structType(reflect.TypeFor[T]()); st != nil {
		plans.static = q.plan(st)
	}
	rows := make([]row, 0, len(items))
	for i := range items {
		root := deref(reflect.ValueOf(&items[i]).Elem())
		p := plans.get(q, root)
		if !p.match(root) {
			continue
		}
		r := row{idx: i}
		if p.order != nil {
			r.ord = sortKey(deref(fieldAt(root, p.order)), q.orderType, q.orderTyp)
		}
		if p.id != nil {
			r.id = sortKey(deref(fieldAt(root, p.id)), Number, false)
		}
		rows = append(rows, r)
	}
	total = len(rows)

	// Sort positions in rows rather than the (large) rows themselves. The
	// position as the last key makes the order total, so the unstable sort
	// gives the stable result, and the first end positions are the same
	// whether the whole is sorted or only they are selected.
	perm := make([]int, total)
	for i := range perm {
		perm[i] = i
	}
	start, end := q.Window(total)
	if plans.sorted {
		desc := q.desc
		order := func(i, j int) int {
			a, b := &rows[i], &rows[j]
			if c := cmpKey(a.ord, b.ord); c != 0 {
				if desc {
					return -c
				}
				return c
			}
			if c := cmpKey(a.id, b.id); c != 0 {
				return c
			}
			return cmp.Compare(i, j)
		}
		if end < total/8 {
			// An early page of many rows: select its end first rows
			// (O(n log end)) instead of sorting them all (O(n log n)).
			perm = smallest(perm, end, order)
		} else {
			slices.SortFunc(perm, order)
		}
	}

	page = make([]T, 0, end-start)
	for _, i := range perm[start:end] {
		page = append(page, items[rows[i].idx])
	}
	return page, total
}

// smallest returns the k first of xs in the total order cmp, ordered: a
// max-heap of the k smallest seen, then sorted. xs is reused.
func smallest(xs []int, k int, cmp func(a, b int) int) []int {
	if k <= 0 {
		return xs[:0]
	}
	h := xs[:k]
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			if r := l + 1; r < k && cmp(h[r], h[l]) > 0 {
				l = r
			}
			if cmp(h[l], h[i]) <= 0 {
				return
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range xs[k:] {
		if cmp(x, h[0]) < 0 {
			h[0] = x
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}

// row is an item that passed the filters, with its sort keys.
type row struct {
	idx     int
	ord, id key
}

// plan is a Query bound to one struct type.
type plan struct {
	filters []bound
	order   []int // field index of the order field, nil if the type lacks it
	id      []int // field index of "id", nil if the type lacks it
}

// bound is a filter bound to the field index of a struct type.
type bound struct {
	f     *filter
	index []int
}

// planCache holds the plans of one Apply call, one per dynamic struct type.
type planCache struct {
	static   *plan // plan of T's struct type, if T is not an interface
	null     *plan // plan for items that are nil or not structs
	last     reflect.Type
	lastPlan *plan
	byType   map[reflect.Type]*plan
	sorted   bool // some plan has an order or id field
}

func (c *planCache) get(q *Query, root reflect.Value) *plan {
	var p *plan
	switch {
	case !root.IsValid() || root.Kind() != reflect.Struct:
		if c.static != nil {
			p = c.static
		} else {
			if c.null == nil {
				c.null = q.nullPlan()
			}
			p = c.null
		}
	case c.static != nil:
		p = c.static
	case root.Type() == c.last:
		p = c.lastPlan
	default:
		t := root.Type()
		if p = c.byType[t]; p == nil {
			p = q.plan(t)
			if c.byType == nil {
				c.byType = make(map[reflect.Type]*plan)
			}
			c.byType[t] = p
		}
		c.last, c.lastPlan = t, p
	}
	if p.order != nil || p.id != nil {
		c.sorted = true
	}
	return p
}

// plan binds q's filters and ordering to the struct type t, warning about
// filters that cannot apply to it.
func (q *Query) plan(t reflect.Type) *plan {
	fields := typeFields(t)
	p := &plan{}
	for i := range q.filters {
		f := &q.filters[i]
		fi, ok := lookupField(t, f.field)
		if !ok {
			q.warn(f.warnPrefix(), "%s: field %q is not available on this list; the filter is ignored.", f.param, f.field)
			continue
		}
		if !filterable(fi.typ, f.typ) {
			q.warn(f.warnPrefix(), "%s: field %q cannot be filtered as a %s; the filter is ignored.", f.param, f.field, f.typ)
			continue
		}
		p.filters = append(p.filters, bound{f: f, index: fi.index})
	}
	if fi, ok := lookupField(t, q.orderBy); ok && q.orderBy != "" {
		p.order = fi.index
	}
	if fi, ok := fields["id"]; ok {
		p.id = fi.index
	}
	return p
}

// nullPlan applies every filter to an item that is a nil pointer or
// interface, whose fields are all null.
func (q *Query) nullPlan() *plan {
	p := &plan{}
	for i := range q.filters {
		p.filters = append(p.filters, bound{f: &q.filters[i]})
	}
	return p
}

func (p *plan) match(root reflect.Value) bool {
	for i := range p.filters {
		if !p.filters[i].match(root) {
			return false
		}
	}
	return true
}

func (b *bound) match(root reflect.Value) bool {
	f := b.f
	var v reflect.Value
	if b.index != nil {
		v = deref(fieldAt(root, b.index))
	}
	var m bool
	if v.IsValid() && (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) {
		// A list matches when any element does; empty counts as null.
		if f.op == opIsNull {
			m = (v.Len() == 0) == f.null
		} else {
			for i := range v.Len() {
				if k := filterKey(deref(v.Index(i)), f.typ); !k.null && f.test(k) {
					m = true
					break
				}
			}
		}
	} else {
		k := filterKey(v, f.typ)
		if f.op == opIsNull {
			m = (k.null || f.zero && k.n.f == 0) == f.null
		} else {
			m = !k.null && f.test(k)
		}
	}
	return m != f.exclude
}

// test applies the operator to a non-null field value of the filter's type.
func (f *filter) test(k key) bool {
	switch f.op {
	case opExact:
		return f.equal(k, f.vals[0])
	case opIExact:
		return strings.EqualFold(k.s, f.vals[0].s)
	case opIContains:
		return strings.Contains(strings.ToLower(k.s), f.lower)
	case opIStartsWith:
		return strings.HasPrefix(strings.ToLower(k.s), f.lower)
	case opIEndsWith:
		return strings.HasSuffix(strings.ToLower(k.s), f.lower)
	case opIn:
		// f.vals is sorted by f.order (parseValue): a binary search, so
		// that a long list costs log(values) per item, not values.
		if f.typ == CIDR && k.kind != kPrefix {
			return false
		}
		i := sort.Search(len(f.vals), func(i int) bool { return f.order(f.vals[i], k) >= 0 })
		return i < len(f.vals) && f.equal(k, f.vals[i])
	case opGt:
		return cmpKey(k, f.vals[0]) > 0
	case opGte:
		return cmpKey(k, f.vals[0]) >= 0
	case opLt:
		return cmpKey(k, f.vals[0]) < 0
	case opLte:
		return cmpKey(k, f.vals[0]) <= 0
	case opRange:
		return cmpKey(k, f.vals[0]) >= 0 && cmpKey(k, f.vals[1]) <= 0
	case opYear, opMonth, opDay, opWeekDay, opHour, opMinute:
		return k.kind == kTime && cmpNum(intNum(datePart(f.op, k)), f.vals[0].n) == 0
	case opContains, opWithin:
		field, operand := k.p.Masked(), f.vals[0].p
		if f.op == opContains {
			return cidrContains(field, operand)
		}
		return cidrContains(operand, field)
	}
	return false
}

// order is the order in which equal values are adjacent: a CIDR field's
// by network (host part ignored), any other by cmpKey.
func (f *filter) order(a, b key) int {
	if f.typ == CIDR {
		return cmpNetwork(a.p, b.p)
	}
	return cmpKey(a, b)
}

// equal is exact match: a CIDR field matches an operand of the same network
// (the host part of either is ignored), any other field an equal value.
func (f *filter) equal(k, v key) bool {
	if f.typ == CIDR {
		return k.kind == kPrefix && v.kind == kPrefix && cmpNetwork(k.p, v.p) == 0
	}
	return cmpKey(k, v) == 0
}

// datePart is the date part op of the time key k, in UTC; week_day counts
// from 1 for Sunday to 7 for Saturday, as Django's.
func datePart(op string, k key) int64 {
	t := time.Unix(k.n.i, int64(k.n.u)).UTC()
	switch op {
	case opYear:
		return int64(t.Year())
	case opMonth:
		return int64(t.Month())
	case opDay:
		return int64(t.Day())
	case opWeekDay:
		return int64(t.Weekday()) + 1
	case opHour:
		return int64(t.Hour())
	}
	return int64(t.Minute())
}

var timeType = reflect.TypeFor[time.Time]()

// natural is the key of v by its Go kind, or null for kinds that do not
// compare (structs other than time.Time, maps, funcs, ...). v is dereferenced.
func natural(v reflect.Value) key {
	if !v.IsValid() {
		return key{null: true}
	}
	if v.Type() == timeType {
		if !v.CanInterface() {
			return key{null: true}
		}
		t := v.Interface().(time.Time)
		if t.IsZero() {
			return key{null: true}
		}
		return timeKey(t)
	}
	switch v.Kind() {
	case reflect.String:
		return key{kind: kString, s: v.String()}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return key{kind: kNumber, n: intNum(v.Int())}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return key{kind: kNumber, n: uintNum(v.Uint())}
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		return key{null: math.IsNaN(f), kind: kNumber, n: floatNum(f)}
	case reflect.Bool:
		return key{kind: kBool, b: v.Bool()}
	}
	return key{null: true}
}

// filterKey is the key of v as a field of type t: null when v is null or of
// a kind that does not fit t. Date fields may hold time.Time (the zero time is
// null) or a string parsed as by parseTime (the empty string is null).
func filterKey(v reflect.Value, t FieldType) key {
	k := natural(v)
	if k.null {
		return k
	}
	want := kString
	switch t {
	case CIDR:
		if k.kind != kString {
			return key{null: true}
		}
		return cidrKey(k.s)
	case Number:
		want = kNumber
	case Date:
		if k.kind == kString {
			tm, ok := parseTime(k.s)
			if !ok {
				return key{null: true}
			}
			return timeKey(tm)
		}
		want = kTime
	case Bool:
		want = kBool
	}
	if k.kind != want {
		return key{null: true}
	}
	return k
}

// sortKey is the key v is ordered by: as its declared type when that fits
// (dates as times, CIDRs and addresses numerically as cmpNetwork), else by
// its Go kind.
func sortKey(v reflect.Value, t FieldType, typed bool) key {
	if typed && (t == Date || t == CIDR) {
		return filterKey(v, t)
	}
	return natural(v)
}

// filterable reports whether a struct field of Go type ft can hold values of
// field type t, directly, through pointers, or as elements of a slice or
// array. Interface fields are checked per value.
func filterable(ft reflect.Type, t FieldType) bool {
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array {
		ft = ft.Elem()
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
	}
	if ft.Kind() == reflect.Interface {
		return true
	}
	switch t {
	case String, CIDR:
		return ft.Kind() == reflect.String
	case Number:
		switch ft.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64:
			return true
		}
	case Date:
		return ft == timeType || ft.Kind() == reflect.String
	case Bool:
		return ft.Kind() == reflect.Bool
	}
	return false
}

// deref follows pointers and interfaces; a nil one gives the zero Value.
func deref(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

// fieldAt is v.FieldByIndex, giving the zero Value where a nil embedded
// pointer is crossed or v is not a struct.
func fieldAt(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 {
			v = deref(v)
		}
		if !v.IsValid() || v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		v = v.Field(x)
	}
	return v
}

// structType is the struct type t is, or points to; nil otherwise.
func structType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

// lookupField finds the json field name of struct type t, or, as Django
// spans a relation, a path through nested structs: "subnet__vlan" is the
// vlan of the struct (or pointer to one) in the field subnet.
func lookupField(t reflect.Type, name string) (fieldInfo, bool) {
	if fi, ok := typeFields(t)[name]; ok {
		return fi, true
	}
	head, rest, ok := strings.Cut(name, "__")
	if !ok {
		return fieldInfo{}, false
	}
	fi, ok := typeFields(t)[head]
	if !ok {
		return fieldInfo{}, false
	}
	st := structType(fi.typ)
	if st == nil || st == timeType {
		return fieldInfo{}, false
	}
	sub, ok := lookupField(st, rest)
	if !ok {
		return fieldInfo{}, false
	}
	return fieldInfo{index: append(slices.Clone(fi.index), sub.index...), typ: sub.typ}, true
}

// fieldInfo locates one json field of a struct type.
type fieldInfo struct {
	index []int
	typ   reflect.Type
}

// fieldCache maps a struct type to its json fields (map[string]fieldInfo).
// It caches immutable type information only.
var fieldCache sync.Map

// typeFields returns the json fields of struct type t, resolving names and
// embedded structs the way encoding/json does: an untagged field is named by
// its Go name, the fields of an untagged embedded struct are promoted, a
// shallower field hides deeper ones, and of several at the same depth a single
// tagged one wins while otherwise the name is dropped.
func typeFields(t reflect.Type) map[string]fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]fieldInfo)
	}
	type candidate struct {
		fieldInfo
		tagged bool
	}
	type level struct {
		typ   reflect.Type
		index []int
	}
	fields := make(map[string]fieldInfo)
	seen := make(map[string]bool) // names settled at a shallower depth
	visited := make(map[reflect.Type]bool)
	current := []level{{typ: t}}
	for len(current) > 0 {
		var next []level
		found := make(map[string][]candidate)
		for _, l := range current {
			if visited[l.typ] {
				continue
			}
			visited[l.typ] = true
			for i := range l.typ.NumField() {
				sf := l.typ.Field(i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if sf.Anonymous {
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				index := append(slices.Clone(l.index), i)
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, level{typ: ft, index: index})
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				found[name] = append(found[name], candidate{fieldInfo{index: index, typ: sf.Type}, tagged})
			}
		}
		for name, cands := range found {
			if seen[name] {
				continue
			}
			seen[name] = true
			var win []candidate
			for _, c := range cands {
				if c.tagged {
					win = append(win, c)
				}
			}
			if len(win) == 0 {
				win = cands
			}
			if len(win) == 1 {
				fields[name] = win[0].fieldInfo
			}
		}
		current = next
	}
	f, _ := fieldCache.LoadOrStore(t, fields)
	return f.(map[string]fieldInfo)
}
