package query

import (
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// meta mirrors the Meta every stored object embeds.
type meta struct {
	ID      uint64 `json:"id"`
	Created string `json:"created"`
	Updated string `json:"updated"`
}

type vm struct {
	meta
	Name      string            `json:"name"`
	Number    int               `json:"number"`
	CPU       float64           `json:"cpu"`
	Public    bool              `json:"public"`
	ProjectID *uint64           `json:"project_id"`
	Storages  []uint64          `json:"storage_ids"`
	Born      time.Time         `json:"born"`
	Extra     map[string]string `json:"extra"`
}

func u64(v uint64) *uint64 { return &v }

func fixture() []vm {
	return []vm{
		{meta: meta{ID: 1, Created: "2024-01-01T00:00:00Z"}, Name: "Alpha", Number: 10, CPU: 1.5, Public: true,
			ProjectID: u64(7), Storages: []uint64{1, 2}, Born: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{meta: meta{ID: 2, Created: "2024-02-01T12:00:00Z"}, Name: "beta", Number: 15, CPU: 2,
			Storages: []uint64{3}},
		{meta: meta{ID: 3, Created: "2024-03-01T00:30:00+01:00"}, Name: "Gamma ray", Number: 20, CPU: 0.5, Public: true,
			ProjectID: u64(7), Storages: []uint64{}, Born: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)},
		{meta: meta{ID: 4, Created: "2024-02-29T23:45:00Z"}, Name: "delta", Number: 15, CPU: 4,
			ProjectID: u64(8)},
		{meta: meta{ID: 5, Created: "2024-05-05T05:05:05.5Z"}, Name: "ALPHABET", Number: -5, CPU: 8,
			ProjectID: u64(8)},
		{meta: meta{ID: 6}, Name: "", Number: 0, CPU: 0},
	}
}

var vmSpec = Spec{
	Fields: map[string]FieldType{
		"id":          Number,
		"name":        String,
		"number":      Number,
		"cpu":         Number,
		"public":      Bool,
		"created":     Date,
		"project_id":  Number,
		"storage_ids": Number,
		"born":        Date,
		"extra":       String, // a map: not filterable
		"missing":     String, // not a field of vm
	},
	Ordering: []string{"id", "name", "number", "created", "cpu", "public", "project_id"},
}

func ids(items []vm) []uint64 {
	out := []uint64{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// kinds keeps the "XxxWarning" part of each warning.
func kinds(ws []string) []string {
	out := []string{}
	for _, w := range ws {
		k, _, _ := strings.Cut(w, ":")
		out = append(out, k)
	}
	return out
}

const (
	sfw = "SearchFilterWarning"
	efw = "ExcludeFilterWarning"
	dw  = "DeprecationWarning"
	pw  = "PagingWarning"
	ow  = "OrderingWarning"
)

func all() []uint64 { return []uint64{1, 2, 3, 4, 5, 6} }

func TestFilters(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		want     []uint64
		warnings []string
	}{
		{"none", "", all(), nil},

		// string operators
		{"string exact", "search[name]=beta", []uint64{2}, nil},
		{"string exact is case sensitive", "search[name]=Beta", []uint64{}, nil},
		{"string exact op", "search[name__exact]=beta", []uint64{2}, nil},
		{"string exact empty", "search[name]=", []uint64{6}, nil},
		{"iexact", "search[name__iexact]=BETA", []uint64{2}, nil},
		{"icontains", "search[name__icontains]=alpha", []uint64{1, 5}, nil},
		{"icontains space", "search[name__icontains]=A+R", []uint64{3}, nil},
		{"icontains empty", "search[name__icontains]=", all(), nil},
		{"istartswith", "search[name__istartswith]=GAM", []uint64{3}, nil},
		{"iendswith", "search[name__iendswith]=BET", []uint64{5}, nil},
		{"string in json list", `search[name__in]=["beta","delta"]`, []uint64{2, 4}, nil},
		{"string in tuple", `search[name__in]=(beta, 'delta', )`, []uint64{2, 4}, nil},
		{"string in is case sensitive", `search[name__in]=BETA,delta`, []uint64{4}, nil},
		{"string gt unsupported", "search[name__gt]=a", all(), []string{sfw}},
		{"string isnull unsupported", "search[name__isnull]=true", all(), []string{sfw}},
		{"string range unsupported", "search[name__range]=a,b", all(), []string{sfw}},

		// number operators
		{"number exact", "search[id]=3", []uint64{3}, nil},
		{"number exact spaces", "search[id]=+3+", []uint64{3}, nil},
		{"number gt", "search[id__gt]=4", []uint64{5, 6}, nil},
		{"number gte", "search[id__gte]=4", []uint64{4, 5, 6}, nil},
		{"number lt", "search[id__lt]=3", []uint64{1, 2}, nil},
		{"number lte", "search[id__lte]=3", []uint64{1, 2, 3}, nil},
		{"number in parens", "search[id__in]=(1,2,3)", []uint64{1, 2, 3}, nil},
		{"number in brackets", "search[id__in]=[1, 3]", []uint64{1, 3}, nil},
		{"number in bare", "search[id__in]=5", []uint64{5}, nil},
		{"number in quoted", `search[id__in]=("1","4")`, []uint64{1, 4}, nil},
		{"number in empty", "search[id__in]=()", []uint64{}, nil},
		{"number in bad item", "search[id__in]=1,x", all(), []string{sfw}},
		{"range", "search[number__range]=(10, 15)", []uint64{1, 2, 4}, nil},
		{"range reversed matches nothing", "search[number__range]=(15,10)", []uint64{}, nil},
		{"range three items", "search[number__range]=(10,15,20)", all(), []string{sfw}},
		{"range one item", "search[number__range]=10", all(), []string{sfw}},
		{"range blank items dropped", "search[number__range]=(,10,,15,)", []uint64{1, 2, 4}, nil},
		{"negative int", "search[number__lt]=0", []uint64{5}, nil},
		{"negative vs uint", "search[id__gt]=-1", all(), nil},
		{"float value on int field", "search[number__lt]=10.5", []uint64{1, 5, 6}, nil},
		{"exponent value", "search[number]=1e1", []uint64{1}, nil},
		{"float field", "search[cpu__gte]=1.5", []uint64{1, 2, 4, 5}, nil},
		{"float field exact int", "search[cpu]=2", []uint64{2}, nil},
		{"float field in", "search[cpu__in]=0.5,8", []uint64{3, 5}, nil},
		{"bad number", "search[id__gt]=abc", all(), []string{sfw}},
		{"empty number", "search[id]=", all(), []string{sfw}},
		{"hex number", "search[id]=0x1", all(), []string{sfw}},
		{"nan", "search[cpu__gt]=NaN", all(), []string{sfw}},
		{"inf", "search[cpu__lt]=inf", all(), []string{sfw}},
		{"bool value on number", "search[id]=true", all(), []string{sfw}},
		{"isnull on non-pointer", "search[id__isnull]=true", []uint64{}, nil},
		{"isnull false on non-pointer", "search[id__isnull]=FALSE", all(), nil},
		{"isnull pointer", "search[project_id__isnull]=True", []uint64{2, 6}, nil},
		{"isnull pointer false", "search[project_id__isnull]=false", []uint64{1, 3, 4, 5}, nil},
		{"isnull bad", "search[project_id__isnull]=maybe", all(), []string{sfw}},
		{"pointer exact", "search[project_id]=7", []uint64{1, 3}, nil},
		{"pointer gt", "search[project_id__gt]=7", []uint64{4, 5}, nil},
		{"unknown number op", "search[id__contains]=1", all(), []string{sfw}},
		{"date part op on number", "search[id__year]=2024", all(), []string{sfw}},

		// slices: membership
		{"slice exact", "search[storage_ids]=3", []uint64{2}, nil},
		{"slice in", "search[storage_ids__in]=(2,9)", []uint64{1}, nil},
		{"slice gt", "search[storage_ids__gt]=1", []uint64{1, 2}, nil},
		{"slice isnull", "search[storage_ids__isnull]=true", []uint64{3, 4, 5, 6}, nil},
		{"slice exclude", "exclude[storage_ids]=1", []uint64{2, 3, 4, 5, 6}, nil},

		// dates
		{"date gt date-only", "search[created__gt]=2024-01-15", []uint64{2, 3, 4, 5}, nil},
		{"date lt honours zones", "search[created__lt]=2024-02-29T23:40:00Z", []uint64{1, 2, 3}, nil},
		{"date exact other zone", "search[created]=2024-02-29T23:30:00Z", []uint64{3}, nil},
		{"date lte unescaped plus", "search[created__lte]=2024-02-01T13:00:00+01:00", []uint64{1, 2}, nil},
		{"date escaped plus", "search[created__lte]=2024-02-01T13:00:00%2B01:00", []uint64{1, 2}, nil},
		{"date no zone", "search[created__gte]=2024-02-01T12:00:00", []uint64{2, 3, 4, 5}, nil},
		{"date fraction", "search[created]=2024-05-05T05:05:05.500Z", []uint64{5}, nil},
		{"date range", "search[created__range]=2024-01-01,2024-02-01T12:00:00Z", []uint64{1, 2}, nil},
		{"date in", "search[created__in]=[2024-01-01T00:00:00Z]", []uint64{1}, nil},
		{"date isnull", "search[created__isnull]=true", []uint64{6}, nil},
		{"date bad", "search[created]=2024-13-01", all(), []string{sfw}},
		{"date range bad item", "search[created__range]=2024-01-01,soon", all(), []string{sfw}},
		{"time.Time field", "search[born__gte]=2024-03-01", []uint64{3}, nil},

		// date parts (in UTC; week_day 1 is Sunday, as Django's)
		{"year", "search[created__year]=2024", []uint64{1, 2, 3, 4, 5}, nil},
		{"year none", "search[created__year]=2020", []uint64{}, nil},
		{"year spaces", "search[created__year]=+2024+", []uint64{1, 2, 3, 4, 5}, nil},
		{"month in UTC", "search[created__month]=2", []uint64{2, 3, 4}, nil},
		{"month local is not used", "search[created__month]=3", []uint64{}, nil},
		{"month 13 matches nothing", "search[created__month]=13", []uint64{}, nil},
		{"day", "search[created__day]=29", []uint64{3, 4}, nil},
		{"week_day sunday", "search[created__week_day]=1", []uint64{5}, nil},
		{"week_day monday", "search[created__week_day]=2", []uint64{1}, nil},
		{"week_day thursday", "search[created__week_day]=5", []uint64{2, 3, 4}, nil},
		{"hour", "search[created__hour]=23", []uint64{3, 4}, nil},
		{"hour zero", "search[created__hour]=0", []uint64{1}, nil},
		{"minute", "search[created__minute]=30", []uint64{3}, nil},
		{"date parts combined", "search[created__year]=2024&search[created__month]=2&search[created__minute]=45", []uint64{4}, nil},
		{"time.Time field part", "search[born__month]=6", []uint64{3}, nil},
		{"exclude month keeps nulls", "exclude[created__month]=2", []uint64{1, 5, 6}, nil},
		{"exclude year", "exclude[created__year]=2024", []uint64{6}, nil},
		{"legacy year", "created__year=2024", []uint64{1, 2, 3, 4, 5}, []string{dw}},
		{"year not an integer", "search[created__year]=abc", all(), []string{sfw}},
		{"year a date", "search[created__year]=2024-01-01", all(), []string{sfw}},
		{"month a float", "exclude[created__month]=2.5", all(), []string{efw}},
		{"year empty", "search[created__year]=", all(), []string{sfw}},
		{"date part with a comparison is not a lookup", "search[created__year__gte]=2024", all(), []string{sfw}},
		{"time.Time zero is null", "search[born__isnull]=true", []uint64{2, 4, 5, 6}, nil},

		// booleans
		{"bool true", "search[public]=true", []uint64{1, 3}, nil},
		{"bool FALSE", "search[public]=FALSE", []uint64{2, 4, 5, 6}, nil},
		{"bool 1", "search[public]=1", []uint64{1, 3}, nil},
		{"bool bad", "search[public]=yes", all(), []string{sfw}},
		{"bool isnull", "search[public__isnull]=false", all(), nil},
		{"bool gt unsupported", "search[public__gt]=1", all(), []string{sfw}},
		{"bool in unsupported", "search[public__in]=true", all(), []string{sfw}},

		// unknown fields, malformed keys, fields the type cannot serve
		{"unknown field", "search[nope]=1", all(), []string{sfw}},
		{"unknown field with op", "search[nope__gt]=1", all(), []string{sfw}},
		{"empty op", "search[name__]=x", all(), []string{sfw}},
		{"missing bracket", "search[name=x", all(), []string{sfw}},
		{"empty brackets", "search[]=x", all(), []string{sfw}},
		{"nested brackets", "search[name][x]=x", all(), []string{sfw}},
		{"exclude malformed", "exclude[name=x", all(), []string{efw}},
		{"field not on type", "search[missing]=x", all(), []string{sfw}},
		{"field kind not filterable", "search[extra]=x", all(), []string{sfw}},

		// exclude
		{"exclude icontains", "exclude[name__icontains]=alpha", []uint64{2, 3, 4, 6}, nil},
		{"exclude in", "exclude[id__in]=1,2", []uint64{3, 4, 5, 6}, nil},
		{"exclude keeps nulls", "exclude[project_id]=7", []uint64{2, 4, 5, 6}, nil},
		{"exclude gt keeps nulls", "exclude[created__gt]=2024-02-01", []uint64{1, 6}, nil},
		{"exclude isnull", "exclude[project_id__isnull]=true", []uint64{1, 3, 4, 5}, nil},
		{"exclude unknown field", "exclude[bogus]=1", all(), []string{efw}},
		{"exclude bad value", "exclude[id__lt]=x", all(), []string{efw}},
		{"search and exclude", "search[number]=15&exclude[id]=2", []uint64{4}, nil},
		{"several filters", "search[public]=true&search[number__gte]=15&search[name__icontains]=a", []uint64{3}, nil},

		// legacy syntax
		{"legacy op", "name__icontains=alpha", []uint64{1, 5}, []string{dw}},
		{"legacy exclude", "exclude__id__in=1,2", []uint64{3, 4, 5, 6}, []string{dw}},
		{"legacy exclude bare", "exclude__name=beta", []uint64{1, 3, 4, 5, 6}, []string{dw}},
		{"legacy bare declared field", "name=beta", []uint64{2}, []string{dw}},
		{"legacy bad value", "id__gt=abc", all(), []string{dw, sfw}},
		{"legacy unknown field", "bogus__gt=1", all(), []string{dw, sfw}},
		{"legacy exclude empty", "exclude__=1", all(), []string{dw, efw}},
		{"legacy and new together", "search[id__gt]=1&id__lt=4", []uint64{2, 3}, []string{dw}},

		// parameters that are not filters
		{"unknown plain parameter", "foo=bar&search=x&exclude=y", all(), nil},
		{"reserved", "stale=true&consistent=1&index=5&wait=30s&include_related=false&format=json&limit=50&page=0&order=id", all(), nil},

		// repeated parameters: the last counts
		{"repeated", "search[id]=1&search[id]=2", []uint64{2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			q := Parse(vmSpec, v)
			items := fixture()
			page, total := Apply(q, items)
			if got := ids(page); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if total != len(tt.want) {
				t.Errorf("total = %d, want %d", total, len(tt.want))
			}
			want := tt.warnings
			if want == nil {
				want = []string{}
			}
			if got := kinds(q.Warnings); !slices.Equal(got, want) {
				t.Errorf("warnings = %q, want kinds %v", q.Warnings, want)
			}
			if !reflect.DeepEqual(items, fixture()) {
				t.Error("Apply modified its input")
			}
		})
	}
}

func TestWarningText(t *testing.T) {
	tests := []struct {
		query string
		want  []string // substrings of the one warning (after any DeprecationWarning)
	}{
		{"search[nope__gt]=1", []string{"SearchFilterWarning: ", "search[nope__gt]", `"nope"`, "not a searchable field"}},
		{"search[name__gt]=1", []string{"SearchFilterWarning: ", `operator "gt"`, `string field "name"`, "icontains"}},
		{"search[id__gt]=abc", []string{"SearchFilterWarning: ", "search[id__gt]", `"abc"`, "number", `"id"`}},
		{"search[created__year]=x", []string{"SearchFilterWarning: ", "search[created__year]", `"x"`, "integer (year)", `"created"`}},
		{"search[id__month]=1", []string{"SearchFilterWarning: ", `operator "month"`, `number field "id"`}},
		{"search[created__gt__year]=1", []string{"SearchFilterWarning: ", `"created__gt"`, "not a searchable field"}},
		{"exclude[id__range]=1,2,3", []string{"ExcludeFilterWarning: ", "exclude[id__range]", "exactly 2", "got 3"}},
		{"search[project_id__isnull]=x", []string{"SearchFilterWarning: ", "isnull", "true or false"}},
		{"search[extra]=x", []string{"SearchFilterWarning: ", `"extra"`, "cannot be filtered as a string"}},
		{"search[missing]=x", []string{"SearchFilterWarning: ", `"missing"`, "not available"}},
		{"search[name=x", []string{"SearchFilterWarning: ", `"search[name"`, "not a valid filter parameter"}},
		{"search[id__gt]=" + strings.Repeat("9x", 200), []string{"…"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q := Parse(vmSpec, v)
			Apply(q, fixture())
			if len(q.Warnings) != 1 {
				t.Fatalf("warnings = %q, want one", q.Warnings)
			}
			for _, s := range tt.want {
				if !strings.Contains(q.Warnings[0], s) {
					t.Errorf("warning %q lacks %q", q.Warnings[0], s)
				}
			}
			if !strings.HasPrefix(q.Warnings[0], "SearchFilterWarning: ") && !strings.HasPrefix(q.Warnings[0], "ExcludeFilterWarning: ") {
				t.Errorf("warning %q has no known prefix", q.Warnings[0])
			}
		})
	}

	v, _ := url.ParseQuery("name__icontains=a&exclude__id=1")
	q := Parse(vmSpec, v)
	want := []string{
		`DeprecationWarning: the filter syntax "exclude__id" is deprecated; use "exclude[id]" instead.`,
		`DeprecationWarning: the filter syntax "name__icontains" is deprecated; use "search[name__icontains]" instead.`,
	}
	if !slices.Equal(q.Warnings, want) {
		t.Errorf("warnings = %q, want %q", q.Warnings, want)
	}
}

func TestWarningsNotRepeated(t *testing.T) {
	v, _ := url.ParseQuery("search[missing]=x")
	q := Parse(vmSpec, v)
	Apply(q, fixture())
	Apply(q, fixture())
	if len(q.Warnings) != 1 {
		t.Errorf("warnings = %q, want one", q.Warnings)
	}
}

func TestPaging(t *testing.T) {
	many := make([]vm, 250)
	for i := range many {
		many[i].ID = uint64(i + 1)
	}
	tests := []struct {
		query     string
		limit     int
		page      int
		first     uint64 // 0: empty page
		n         int
		wantTotal int
		warn      string // a PagingWarning containing it; "": none
	}{
		{"", 50, 0, 1, 50, 250, ""},
		{"limit=2", 2, 0, 1, 2, 250, ""},
		{"limit=100", 100, 0, 1, 100, 250, ""},
		{"limit=1", 1, 0, 1, 1, 250, ""},
		{"limit=0", 50, 0, 1, 50, 250, "limit \"0\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=-1", 50, 0, 1, 50, 250, "limit \"-1\""},
		{"limit=101", 50, 0, 1, 50, 250, "limit \"101\""},
		{"limit=1000", 50, 0, 1, 50, 250, "limit \"1000\""},
		{"limit=abc", 50, 0, 1, 50, 250, "limit \"abc\""},
		{"limit=2.5", 50, 0, 1, 50, 250, "limit \"2.5\""},
		{"limit=", 50, 0, 1, 50, 250, ""},
		{"limit=+7+", 7, 0, 1, 7, 250, ""},
		{"page=1", 50, 1, 51, 50, 250, ""},
		{"page=4", 50, 4, 201, 50, 250, ""},
		{"page=5", 50, 5, 0, 0, 250, ""},
		{"limit=100&page=2", 100, 2, 201, 50, 250, ""},
		{"page=-1", 50, 0, 1, 50, 250, "page \"-1\" is not a whole number from 0 (the first page) up; page 0 was used"},
		{"page=x", 50, 0, 1, 50, 250, "page \"x\""},
		{"page=1.0", 50, 0, 1, 50, 250, "page \"1.0\""},
		{"page=9223372036854775807&limit=100", 100, math.MaxInt, 0, 0, 250, ""},
		{"page=99999999999999999999", 50, 0, 1, 50, 250, "page \"99999999999999999999\""},
		{"limit=3&limit=4", 4, 0, 1, 4, 250, ""},
		{"limit=10&page=2&search[id__gt]=240", 10, 2, 0, 0, 10, ""},
		{"limit=4&page=2&search[id__gt]=240", 4, 2, 249, 2, 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q := Parse(vmSpec, v)
			if q.Limit != tt.limit || q.Page != tt.page {
				t.Fatalf("limit, page = %d, %d; want %d, %d", q.Limit, q.Page, tt.limit, tt.page)
			}
			page, total := Apply(q, many)
			if total != tt.wantTotal {
				t.Errorf("total = %d, want %d", total, tt.wantTotal)
			}
			if len(page) != tt.n {
				t.Fatalf("len(page) = %d, want %d", len(page), tt.n)
			}
			if page == nil {
				t.Error("page is nil")
			}
			if tt.n > 0 && page[0].ID != tt.first {
				t.Errorf("first id = %d, want %d", page[0].ID, tt.first)
			}
			if tt.warn == "" && len(q.Warnings) != 0 || tt.warn != "" &&
				(len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], pw+": ") || !strings.Contains(q.Warnings[0], tt.warn)) {
				t.Errorf("warnings = %q, want %q", q.Warnings, tt.warn)
			}
		})
	}
}

func TestPagesCoverEverything(t *testing.T) {
	// A client pages until it has total_records items.
	v, _ := url.ParseQuery("search[number__gte]=0&order=-number&limit=1")
	var got []uint64
	for p := 0; ; p++ {
		v.Set("page", strconv.Itoa(p))
		page, total := Apply(Parse(vmSpec, v), fixture())
		got = append(got, ids(page)...)
		if len(got) >= total || len(page) == 0 {
			break
		}
	}
	if want := []uint64{3, 2, 4, 1, 6}; !slices.Equal(got, want) {
		t.Errorf("collected %v, want %v", got, want)
	}
}

func TestOrdering(t *testing.T) {
	tests := []struct {
		query string
		order string
		want  []uint64
		warn  string // an OrderingWarning containing it; "": none
	}{
		{"", "id", all(), ""},
		{"order=id", "id", all(), ""},
		{"order=-id", "-id", []uint64{6, 5, 4, 3, 2, 1}, ""},
		{"order=name", "name", []uint64{6, 5, 1, 3, 2, 4}, ""},
		{"order=-name", "-name", []uint64{4, 2, 3, 1, 5, 6}, ""},
		{"order=number", "number", []uint64{5, 6, 1, 2, 4, 3}, ""},
		// ties (2 and 4 have number 15) are broken by id ascending either way
		{"order=-number", "-number", []uint64{3, 2, 4, 1, 6, 5}, ""},
		{"order=cpu", "cpu", []uint64{6, 3, 1, 2, 4, 5}, ""},
		{"order=public", "public", []uint64{2, 4, 5, 6, 1, 3}, ""},
		{"order=-public", "-public", []uint64{1, 3, 2, 4, 5, 6}, ""},
		// dates compare as instants (3 is 23:30Z, 4 is 23:45Z), null last
		{"order=created", "created", []uint64{1, 2, 3, 4, 5, 6}, ""},
		// descending puts null first, as PostgreSQL does
		{"order=-created", "-created", []uint64{6, 5, 4, 3, 2, 1}, ""},
		{"order=project_id", "project_id", []uint64{1, 3, 4, 5, 2, 6}, ""},
		{"order=+id", "id", all(), ""},
		{"order=%2B-id", "id", all(), "order \"+-id\" names no orderable field (id, name, number, created, cpu, public, project_id, each with - for descending); the default, id, was used"},
		{"order=%20-id%20", "-id", []uint64{6, 5, 4, 3, 2, 1}, ""},
		{"order=bogus", "id", all(), "order \"bogus\""},
		{"order=-bogus", "id", all(), "order \"-bogus\""},
		{"order=-", "id", all(), "order \"-\""},
		{"order=--id", "id", all(), "order \"--id\""},
		{"order=extra", "id", all(), "order \"extra\""},
		{"order=", "id", all(), ""},
		{"order=name&order=-id", "-id", []uint64{6, 5, 4, 3, 2, 1}, ""},
		{"order=-number&search[number]=15", "-number", []uint64{2, 4}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q := Parse(vmSpec, v)
			if q.Order != tt.order {
				t.Errorf("Order = %q, want %q", q.Order, tt.order)
			}
			page, _ := Apply(q, fixture())
			if got := ids(page); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if tt.warn == "" && len(q.Warnings) != 0 || tt.warn != "" &&
				(len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], ow+": ") || !strings.Contains(q.Warnings[0], tt.warn)) {
				t.Errorf("warnings = %q, want %q", q.Warnings, tt.warn)
			}
		})
	}
}

func TestOrderingInputOrderIrrelevant(t *testing.T) {
	items := fixture()
	slices.Reverse(items)
	page, _ := Apply(Parse(vmSpec, url.Values{"order": {"-number"}}), items)
	if got, want := ids(page), []uint64{3, 2, 4, 1, 6, 5}; !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
}

func TestSpecDefaults(t *testing.T) {
	// A descending default.
	spec := Spec{Fields: vmSpec.Fields, Ordering: []string{"-created", "id"}}
	q := Parse(spec, url.Values{"order": {"nope"}})
	if q.Order != "-created" {
		t.Errorf("Order = %q", q.Order)
	}
	if want := []string{ow + `: order "nope" names no orderable field (created, id, each with - for descending); the default, -created, was used`}; !slices.Equal(q.Warnings, want) {
		t.Errorf("warnings = %q, want %q", q.Warnings, want)
	}
	q = Parse(spec, url.Values{"order": {"created"}})
	if q.Order != "created" {
		t.Errorf("Order = %q", q.Order)
	}

	// No ordering allowed: Order is empty, items still come by id.
	items := fixture()
	slices.Reverse(items)
	q = Parse(Spec{}, url.Values{"order": {"name"}, "search[id]": {"1"}})
	if q.Order != "" {
		t.Errorf("Order = %q", q.Order)
	}
	page, _ := Apply(q, items)
	if got := ids(page); !slices.Equal(got, all()) {
		t.Errorf("ids = %v", got)
	}
	if got := kinds(q.Warnings); !slices.Equal(got, []string{ow, sfw}) || q.Warnings[0] != ow+`: order "name" was ignored: this list has no orderings` {
		t.Errorf("warnings = %q", q.Warnings)
	}

	// Extra reserved names are ignored, even when they look like filters.
	spec = Spec{Fields: map[string]FieldType{"space_type": String, "name": String}, Reserved: []string{"space_type", "x__y"}}
	q = Parse(spec, url.Values{"space_type": {"free"}, "x__y": {"1"}, "name": {"a"}})
	if got := kinds(q.Warnings); !slices.Equal(got, []string{dw}) || len(q.filters) != 1 {
		t.Errorf("warnings = %q, filters = %d", q.Warnings, len(q.filters))
	}

	// A nil Query applies the defaults.
	page, total := Apply[vm](nil, fixture())
	if len(page) != 6 || total != 6 {
		t.Errorf("nil query: %d, %d", len(page), total)
	}

	// Parse with nothing.
	q = Parse(Spec{}, nil)
	if q.Limit != DefaultLimit || q.Page != 0 || q.Order != "" || q.Warnings == nil {
		t.Errorf("empty parse: %+v", q)
	}

	// A caller that sets Limit out of range gets the default.
	q = Parse(vmSpec, nil)
	q.Limit, q.Page = 1000, -3
	if page, _ := Apply(q, make([]vm, 60)); len(page) != DefaultLimit {
		t.Errorf("len = %d", len(page))
	}
}

func TestNoID(t *testing.T) {
	type plain struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	items := []plain{{"c", 1}, {"a", 2}, {"b", 1}, {"d", 2}}
	spec := Spec{Fields: map[string]FieldType{"n": Number}, Ordering: []string{"n"}}
	page, _ := Apply(Parse(spec, nil), items)
	if want := []plain{{"c", 1}, {"b", 1}, {"a", 2}, {"d", 2}}; !slices.Equal(page, want) {
		t.Errorf("page = %v, want %v (stable)", page, want)
	}
	page, _ = Apply(Parse(Spec{}, nil), items)
	if !slices.Equal(page, items) {
		t.Errorf("page = %v, want input order", page)
	}
}

func TestPointersAndInterfaces(t *testing.T) {
	var ptrs []*vm
	for _, it := range fixture() {
		ptrs = append(ptrs, &it)
	}
	ptrs = append(ptrs, nil)
	v, _ := url.ParseQuery("search[project_id__isnull]=true&order=-id")
	page, total := Apply(Parse(vmSpec, v), ptrs)
	if total != 3 || len(page) != 3 || page[0] != nil || page[1].ID != 6 || page[2].ID != 2 {
		t.Errorf("page = %v, total %d", page, total)
	}
	page, _ = Apply(Parse(vmSpec, url.Values{"search[id__gt]": {"4"}}), ptrs)
	if len(page) != 2 || page[0].ID != 5 || page[1].ID != 6 {
		t.Errorf("page = %v", page)
	}

	// A nil embedded pointer makes its promoted fields null.
	type withPtr struct {
		*meta
		Name string `json:"name"`
	}
	items := []withPtr{{meta: &meta{ID: 2}, Name: "a"}, {Name: "b"}, {meta: &meta{ID: 1}, Name: "c"}}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "name": String}, Ordering: []string{"id"}}
	page2, _ := Apply(Parse(spec, url.Values{"search[id__isnull]": {"true"}}), items)
	if len(page2) != 1 || page2[0].Name != "b" {
		t.Errorf("page = %v", page2)
	}
	page2, _ = Apply(Parse(spec, nil), items)
	if got := []string{page2[0].Name, page2[1].Name, page2[2].Name}; !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("order = %v", got)
	}

	// Mixed dynamic types behind an interface.
	type other struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
		Tag  int    `json:"tag"`
	}
	mixed := []any{&vm{meta: meta{ID: 3}, Name: "x"}, other{ID: 1, Name: "x", Tag: 5}, nil, 42, vm{meta: meta{ID: 2}, Name: "y"}}
	q := Parse(Spec{Fields: map[string]FieldType{"name": String, "number": Number}, Ordering: []string{"id"}},
		url.Values{"search[name]": {"x"}, "search[number__isnull]": {"false"}})
	got, total := Apply(q, mixed)
	// other lacks "number": that filter is skipped for it, with a warning.
	if total != 2 || got[0].(other).ID != 1 || got[1].(*vm).ID != 3 {
		t.Errorf("page = %v, total %d", got, total)
	}
	if k := kinds(q.Warnings); !slices.Equal(k, []string{sfw}) {
		t.Errorf("warnings = %q", q.Warnings)
	}
}

func TestNumberPrecision(t *testing.T) {
	type big struct {
		ID  uint64  `json:"id"`
		I   int64   `json:"i"`
		I8  int8    `json:"i8"`
		F32 float32 `json:"f32"`
	}
	items := []big{
		{ID: math.MaxUint64, I: math.MinInt64, I8: -128, F32: 0.25},
		{ID: 1<<63 + 1, I: math.MaxInt64, I8: 127, F32: -1},
		{ID: 1 << 63, I: 0, I8: 0, F32: float32(math.NaN())},
	}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "i": Number, "i8": Number, "f32": Number}, Ordering: []string{"id", "i", "f32"}}
	tests := []struct {
		query string
		want  []uint64
	}{
		{"search[id__gt]=9223372036854775808", []uint64{1<<63 + 1, math.MaxUint64}},
		{"search[id]=18446744073709551615", []uint64{math.MaxUint64}},
		{"search[id__gt]=-9223372036854775808", []uint64{1 << 63, 1<<63 + 1, math.MaxUint64}},
		{"search[i__lt]=-9223372036854775807", []uint64{math.MaxUint64}},
		{"search[i__gt]=9223372036854775806", []uint64{1<<63 + 1}},
		{"search[i__lt]=18446744073709551615", []uint64{1 << 63, 1<<63 + 1, math.MaxUint64}},
		{"search[i8__in]=-128,127", []uint64{1<<63 + 1, math.MaxUint64}},
		{"search[f32]=0.25", []uint64{math.MaxUint64}},
		{"search[f32__isnull]=true", []uint64{1 << 63}},
		{"search[f32__lt]=1", []uint64{1<<63 + 1, math.MaxUint64}},
		{"order=i", []uint64{math.MaxUint64, 1 << 63, 1<<63 + 1}},
		{"order=-f32", []uint64{1 << 63, math.MaxUint64, 1<<63 + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q := Parse(spec, v)
			page, _ := Apply(q, items)
			var got []uint64
			for _, it := range page {
				got = append(got, it.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v (warnings %q)", got, tt.want, q.Warnings)
			}
		})
	}
}

func TestCmpNum(t *testing.T) {
	n := func(s string) num {
		v, ok := parseNum(s)
		if !ok {
			t.Fatalf("parseNum(%q) failed", s)
		}
		return v
	}
	ordered := []string{"-1e300", "-9223372036854775808", "-2", "-1.5", "-1", "-0.5", "0", "0.5", "1", "1.0000001",
		"9223372036854775807", "9223372036854775808", "18446744073709551615", "1e20"}
	for i, a := range ordered {
		for j, b := range ordered {
			if got, want := cmpNum(n(a), n(b)), compareInts(i, j); got != want {
				t.Errorf("cmpNum(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"1", "1.0"}, {"10", "1e1"}, {"-0", "0"}, {"+5", "5"}, {"100", "1E2"}} {
		if cmpNum(n(eq[0]), n(eq[1])) != 0 {
			t.Errorf("%s != %s", eq[0], eq[1])
		}
	}
	for _, bad := range []string{"", " ", "abc", "0x10", "1_000", "NaN", "Inf", "-infinity", "1e400", "1,2", "true"} {
		if _, ok := parseNum(bad); ok {
			t.Errorf("parseNum(%q) succeeded", bad)
		}
	}
}

func compareInts(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"(1,2,3)", []string{"1", "2", "3"}},
		{"[1, 2]", []string{"1", "2"}},
		{"(10, 15)", []string{"10", "15"}},
		{`["a","b"]`, []string{"a", "b"}},
		{`('a', 'b c')`, []string{"a", "b c"}},
		{"1,,2,", []string{"1", "2"}},
		{"", nil},
		{"()", nil},
		{"[[1],[2]]", []string{"1", "2"}},
		{"x", []string{"x"}},
	}
	for _, tt := range tests {
		if got := splitList(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-01-02T03:04:05Z", utc("2024-01-02T03:04:05Z"), true},
		{"2024-01-02T03:04:05.123456Z", utc("2024-01-02T03:04:05.123456Z"), true},
		{"2024-01-02T03:04:05+02:00", utc("2024-01-02T01:04:05Z"), true},
		{"2024-01-02T03:04:05 02:00", utc("2024-01-02T01:04:05Z"), true},
		{"2024-01-02T03:04:05-02:00", utc("2024-01-02T05:04:05Z"), true},
		{"2024-01-02T03:04:05", utc("2024-01-02T03:04:05Z"), true},
		{"2024-01-02T03:04:05.5", utc("2024-01-02T03:04:05.5Z"), true},
		{"2024-01-02", utc("2024-01-02T00:00:00Z"), true},
		{" 2024-01-02 ", utc("2024-01-02T00:00:00Z"), true},
		{"2024-02-30", time.Time{}, false},
		{"2024-01-02 03:04:05", time.Time{}, false},
		{"now", time.Time{}, false},
		{"", time.Time{}, false},
		{"1704164645", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseTime(tt.in)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTypeFields(t *testing.T) {
	type Inner struct {
		ID     uint64 `json:"id"`
		Shadow string `json:"name"`
		Pick   int    `json:"Pick"`
	}
	type Other struct {
		Pick int
		Both int
	}
	type Third struct {
		Both int
	}
	type tagged struct {
		X int `json:"x"`
	}
	type outer struct {
		Inner
		Other
		Third
		Tagged tagged `json:"tagged"`
		Name   string `json:"name,omitempty"`
		Plain  int
		Skip   int `json:"-"`
		//lint:ignore SA5008 encoding/json names this field "-": the walk must too
		Dash int `json:"-,"`
		//lint:ignore U1000 an unexported field is not a JSON field: the walk must skip it
		hidden   int
		Override int `json:"override"`
	}
	fields := typeFields(reflect.TypeFor[outer]())
	want := map[string][]int{
		"id":       {0, 0},
		"name":     {4},
		"Plain":    {5},
		"-":        {7},
		"override": {9},
		"tagged":   {3},
		"Pick":     {0, 2},
	}
	got := map[string][]int{}
	for name, fi := range fields {
		got[name] = fi.index
	}
	// "Pick" is tagged once and untagged once at depth 1: the tagged one
	// wins. "Both" is ambiguous (two untagged): encoding/json drops it.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
	if again := typeFields(reflect.TypeFor[outer]()); reflect.ValueOf(again).Pointer() != reflect.ValueOf(fields).Pointer() {
		t.Error("type info not cached")
	}

	// Two tagged fields at one depth cancel out. (Built with StructOf as vet
	// rightly objects to such a struct in source.)
	type A struct {
		X int `json:"x"`
	}
	type B struct {
		X int `json:"x"`
	}
	ambiguous := reflect.StructOf([]reflect.StructField{
		{Name: "A", Type: reflect.TypeFor[A](), Anonymous: true},
		{Name: "B", Type: reflect.TypeFor[B](), Anonymous: true},
		{Name: "Y", Type: reflect.TypeFor[int](), Tag: `json:"y"`},
	})
	if f := typeFields(ambiguous); len(f) != 1 || f["y"].index[0] != 2 {
		t.Errorf("ambiguous: %v", f)
	}

	// A recursive embedding terminates.
	type recursive struct {
		//lint:ignore U1000 the walk must stop at a type that embeds itself
		*recursive
		V int `json:"v"`
	}
	if f := typeFields(reflect.TypeFor[recursive]()); len(f) != 1 {
		t.Errorf("recursive: %v", f)
	}
}

func TestFieldTypeString(t *testing.T) {
	for ft, want := range map[FieldType]string{String: "string", Number: "number", Date: "date", Bool: "boolean", 9: "FieldType(9)"} {
		if ft.String() != want {
			t.Errorf("%d.String() = %q", int(ft), ft.String())
		}
	}
	if operators(FieldType(9)) != nil {
		t.Error("operators of an unknown type")
	}
	if _, ok := parseKey(FieldType(9), "1"); ok {
		t.Error("parseKey of an unknown type")
	}
}

// fuzzItems is the fixed slice FuzzParse lists.
func fuzzItems() []*vm {
	var out []*vm
	for _, it := range fixture() {
		out = append(out, &it)
	}
	return append(out, nil, &vm{meta: meta{ID: 7, Created: "garbage"}, Name: "ünïcödé İ", Storages: []uint64{7, 7}})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "search[name]=beta", "search[id__in]=(1,2,3)", "search[number__range]=(10, 15)",
		"search[number__range]=(10,15,20)", "exclude[name__icontains]=alpha", "name__icontains=alpha",
		"exclude__id__in=1,2", "search[id__gt]=abc", "limit=2&page=1", "limit=0&page=-1", "order=-created",
		"order=bogus", "search[created__gte]=2024-01-01T00:00:00+01:00", "search[project_id__isnull]=true",
		"search[public]=TRUE", "search[storage_ids__in]=[7]", "search[name__iexact]=Ü", "page=9223372036854775807",
		"search[cpu__lt]=1e308&order=cpu", "search[]=&exclude[=&exclude__=", "%zz=1",
		"search[created__week_day]=1&exclude[born__year]=2024", "search[created__month]=x",
	} {
		f.Add(s)
	}
	items := fuzzItems()
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil && v == nil {
			return
		}
		q := Parse(vmSpec, v)
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("Limit = %d", q.Limit)
		}
		if q.Page < 0 {
			t.Fatalf("Page = %d", q.Page)
		}
		if q.Warnings == nil {
			t.Fatal("Warnings is nil")
		}
		if name := strings.TrimPrefix(q.Order, "-"); !slices.Contains(vmSpec.Ordering, name) {
			t.Fatalf("Order = %q", q.Order)
		}
		page, total := Apply(q, items)
		if len(page) > q.Limit {
			t.Fatalf("len(page) = %d > Limit %d", len(page), q.Limit)
		}
		if total < 0 || total > len(items) || len(page) > total {
			t.Fatalf("total = %d, len(page) = %d", total, len(page))
		}
		for _, w := range q.Warnings {
			if !strings.HasPrefix(w, sfw+": ") && !strings.HasPrefix(w, efw+": ") && !strings.HasPrefix(w, dw+": ") &&
				!strings.HasPrefix(w, pw+": ") && !strings.HasPrefix(w, ow+": ") {
				t.Fatalf("warning %q", w)
			}
		}
		// Every item of the page is one of the inputs, once.
		seen := map[*vm]bool{}
		for _, it := range page {
			if seen[it] || !slices.Contains(items, it) {
				t.Fatalf("page item %v", it)
			}
			seen[it] = true
		}
	})
}

func BenchmarkApply(b *testing.B) {
	items := make([]vm, 10000)
	for i := range items {
		items[i] = vm{
			meta:   meta{ID: uint64(i + 1), Created: time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339)},
			Name:   fmt.Sprintf("vm-%05d", (i*7919)%10000),
			Number: i % 1000,
		}
	}
	v, _ := url.ParseQuery("search[number__gte]=500&order=-name&page=3")
	b.ReportAllocs()
	for b.Loop() {
		q := Parse(vmSpec, v)
		page, total := Apply(q, items)
		if len(page) != 50 || total != 5000 {
			b.Fatalf("len %d total %d", len(page), total)
		}
	}
}

func TestCIDRFilters(t *testing.T) {
	type entry struct {
		ID   uint64 `json:"id"`
		CIDR string `json:"cidr"`
	}
	items := []entry{{1, "10.0.0.0/8"}, {2, "192.0.2.7/32"}, {3, "2001:db8::/32"}, {4, "10.1.0.0/16"}}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "cidr": CIDR}, Ordering: []string{"id"}}
	for _, tc := range []struct {
		q    string
		want []uint64
		warn bool
	}{
		{"search[cidr]=10.9.9.9/8", []uint64{1}, false},
		{"search[cidr]=192.0.2.7", []uint64{2}, false},
		{"search[cidr__contains]=10.1.2.3", []uint64{1, 4}, false},
		{"search[cidr__contains]=10.2.0.0/16", []uint64{1}, false},
		{"search[cidr__contains]=0.0.0.0/0", nil, false},
		{"search[cidr__within]=10.0.0.0/8", []uint64{1, 4}, false},
		{"search[cidr__within]=2001::/16", []uint64{3}, false},
		{"exclude[cidr__within]=10.0.0.0/8", []uint64{2, 3}, false},
		{"search[cidr__in]=(10.0.0.0/8, 2001:db8::1/32)", []uint64{1, 3}, false},
		{"search[cidr__contains]=10.0.0.0/33", []uint64{1, 2, 3, 4}, true},
		{"search[cidr__icontains]=10", []uint64{1, 4}, false}, // on the text, as CloudCIX's string fields
		{"search[cidr__istartswith]=2001:", []uint64{3}, false},
		{"search[cidr__iendswith]=/32", []uint64{2, 3}, false},
		{"search[cidr__gt]=10.0.0.0/8", []uint64{1, 2, 3, 4}, true},
	} {
		v, _ := url.ParseQuery(tc.q)
		q := Parse(spec, v)
		page, _ := Apply(q, slices.Clone(items))
		var got []uint64
		for _, e := range page {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) || (len(q.Warnings) > 0) != tc.warn {
			t.Errorf("?%s: %v (warnings %q), want %v (warning %v)", tc.q, got, q.Warnings, tc.want, tc.warn)
		}
	}
}

// TestCIDRGatewayNotation: a field holding a prefix with a host part (a
// subnet's 10.0.0.1/24) matches by its network.
func TestCIDRGatewayNotation(t *testing.T) {
	type entry struct {
		ID    uint64 `json:"id"`
		Range string `json:"address_range"`
	}
	items := []entry{{1, "10.0.0.1/24"}, {2, "10.0.1.254/24"}, {3, "10.0.0.65/26"}, {4, ""}}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "address_range": CIDR}, Ordering: []string{"id"}}
	for _, tc := range []struct {
		q    string
		want []uint64
	}{
		{"search[address_range]=10.0.0.1/24", []uint64{1}},
		{"search[address_range]=10.0.0.0/24", []uint64{1}},
		{"search[address_range__in]=10.0.1.0/24,10.0.0.64/26", []uint64{2, 3}},
		{"search[address_range__within]=10.0.0.0/24", []uint64{1, 3}},
		{"search[address_range__contains]=10.0.0.70", []uint64{1, 3}},
		{"search[address_range__iexact]=10.0.0.65/26", []uint64{3}},
		{"exclude[address_range__within]=10.0.0.0/16", []uint64{4}},
	} {
		v, _ := url.ParseQuery(tc.q)
		q := Parse(spec, v)
		page, _ := Apply(q, slices.Clone(items))
		var got []uint64
		for _, e := range page {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) || len(q.Warnings) > 0 {
			t.Errorf("?%s: %v (warnings %q), want %v", tc.q, got, q.Warnings, tc.want)
		}
	}
}

// TestCIDROrder: CIDR fields, addresses included, sort numerically by
// network address, then prefix length, then host part, IPv4 before IPv6,
// both ways, and page stably.
func TestCIDROrder(t *testing.T) {
	type entry struct {
		ID   uint64 `json:"id"`
		CIDR string `json:"cidr"`
	}
	items := []entry{{1, "10.0.0.10"}, {2, "10.0.0.9"}, {3, "9.0.0.0/8"}, {4, "10.0.0.0/8"}, {5, "10.0.0.0/16"},
		{6, "2001:db8::a"}, {7, "2001:db8::9"}, {8, "10.0.0.9/32"}, {9, "10.0.0.1/24"}, {10, "192.168.0.0/16"}, {11, "10.0.0.2/24"}}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "cidr": CIDR}, Ordering: []string{"id", "cidr"}}
	asc := []uint64{3, 4, 5, 9, 11, 2, 8, 1, 10, 7, 6} // ties (2, 8) by id
	for _, tc := range []struct {
		order string
		want  []uint64
	}{
		{"cidr", asc},
		{"-cidr", []uint64{6, 7, 10, 1, 2, 8, 11, 9, 5, 4, 3}}, // ties still by id ascending
	} {
		var got []uint64
		for page := 0; page < 4; page++ {
			v := url.Values{"order": {tc.order}, "limit": {"3"}, "page": {strconv.Itoa(page)}}
			p, total := Apply(Parse(spec, v), slices.Clone(items))
			if total != len(items) {
				t.Fatalf("total %d", total)
			}
			for _, e := range p {
				got = append(got, e.ID)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("order=%s: %v, want %v", tc.order, got, tc.want)
		}
	}
}

// TestNestedField: a declared name a__b filters on field b of the struct,
// or pointer to one, shown as a; a nil one is null.
func TestNestedField(t *testing.T) {
	type ref struct {
		RouterID uint64 `json:"virtual_router_id"`
	}
	type entry struct {
		ID     uint64 `json:"id"`
		Subnet *ref   `json:"subnet"`
	}
	items := []entry{{1, &ref{7}}, {2, &ref{8}}, {3, nil}, {4, &ref{7}}}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "subnet__virtual_router_id": Number}, Ordering: []string{"id"}}
	for _, tc := range []struct {
		q    string
		want []uint64
	}{
		{"search[subnet__virtual_router_id]=7", []uint64{1, 4}},
		{"search[subnet__virtual_router_id__in]=(8,9)", []uint64{2}},
		{"search[subnet__virtual_router_id__isnull]=true", []uint64{3}},
		{"exclude[subnet__virtual_router_id]=7", []uint64{2, 3}},
	} {
		v, _ := url.ParseQuery(tc.q)
		q := Parse(spec, v)
		page, _ := Apply(q, slices.Clone(items))
		var got []uint64
		for _, e := range page {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) || len(q.Warnings) > 0 {
			t.Errorf("?%s: %v (warnings %q), want %v", tc.q, got, q.Warnings, tc.want)
		}
	}
}

// TestOnRenamesOrRefuses: On maps the filters and the order to the stored
// fields, and refuses a query naming a field the map lacks, or a map
// without id (Apply's tie-break).
func TestOnRenamesOrRefuses(t *testing.T) {
	spec := Spec{Fields: map[string]FieldType{"id": Number, "subnet_id": Number, "name": String, "derived": Number},
		Ordering: []string{"id", "name", "derived"}}
	stored := map[string]string{"id": "id", "subnet_id": "block_id", "name": "name"}
	type obj struct {
		ID      uint64 `json:"id"`
		BlockID uint64 `json:"block_id"`
		Name    string `json:"name"`
	}
	items := []obj{{1, 5, "b"}, {2, 6, "a"}, {3, 5, "a"}}
	q := Parse(spec, url.Values{"search[subnet_id]": {"5"}, "order": {"-name"}})
	c, ok := q.On(stored)
	if !ok {
		t.Fatal("On refused a query on stored fields")
	}
	page, total := Apply(c, items)
	if total != 2 || page[0].ID != 1 || page[1].ID != 3 {
		t.Errorf("Apply on the renamed query: %v of %d", page, total)
	}
	if q.filters[0].field != "subnet_id" || q.orderBy != "name" {
		t.Errorf("On changed the query it copied: %+v", q)
	}
	for _, v := range []url.Values{
		{"search[derived]": {"1"}},
		{"order": {"derived"}},
		{"exclude[derived__gt]": {"1"}, "search[name]": {"a"}},
	} {
		if _, ok := Parse(spec, v).On(stored); ok {
			t.Errorf("On accepted %v, which names a field the map lacks", v)
		}
	}
	if _, ok := Parse(spec, url.Values{"search[name]": {"a"}}).On(map[string]string{"name": "name"}); ok {
		t.Error("On accepted a map without id")
	}
}

// TestAliases: a Spec's Aliases name its fields too (CloudCIX's names for
// Regent's): filters, excludes, operators and the order on an alias act on
// the field, without a warning.
func TestAliases(t *testing.T) {
	spec := vmSpec
	spec.Aliases = map[string]string{"project": "project_id", "size": "number"}
	for _, tt := range []struct {
		query, order string
		want         []uint64
	}{
		{"search[project]=7", "id", []uint64{1, 3}},
		{"search[project__in]=8", "id", []uint64{4, 5}},
		{"exclude[size__gte]=15", "id", []uint64{1, 5, 6}},
		{"search[size__range]=(10,15)&order=-size", "-number", []uint64{2, 4, 1}},
		{"order=project", "project_id", []uint64{1, 3, 4, 5, 2, 6}},
	} {
		v, _ := url.ParseQuery(tt.query)
		q := Parse(spec, v)
		page, _ := Apply(q, fixture())
		if got := ids(page); !slices.Equal(got, tt.want) || q.Order != tt.order || len(q.Warnings) != 0 {
			t.Errorf("%s: ids %v order %q warnings %q, want %v order %q and no warnings", tt.query, got, q.Order, q.Warnings, tt.want, tt.order)
		}
	}
}
