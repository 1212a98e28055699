package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// MaxLimit is the largest page the API serves.
const MaxLimit = 100

// QueryOptions control how a read is served.
type QueryOptions struct {
	// Stale lets any node answer from its local state (faster, may lag the
	// leader; see Meta.LastContact). The default is a leader read.
	Stale bool
	// Consistent makes the leader confirm its leadership before answering.
	Consistent bool
	// Index makes the read a blocking query: it returns once the data has
	// changed past Index (a Meta.LastIndex from an earlier call), or after
	// Wait (the server's default is 5 minutes, its maximum 10).
	Index uint64
	Wait  time.Duration
}

func (o *QueryOptions) values() url.Values {
	v := url.Values{}
	if o == nil {
		return v
	}
	readValues(v, o.Stale, o.Consistent, o.Index, o.Wait)
	return v
}

func readValues(v url.Values, stale, consistent bool, index uint64, wait time.Duration) {
	if stale {
		v.Set("stale", "true")
	}
	if consistent {
		v.Set("consistent", "true")
	}
	if index > 0 {
		v.Set("index", strconv.FormatUint(index, 10))
		if wait > 0 {
			v.Set("wait", wait.String())
		}
	}
}

// ListOptions filter, order and page a list.
type ListOptions struct {
	// Search and Exclude map a field, optionally with an operator, to a
	// value: {"name__icontains": "acme"} is sent as
	// search[name__icontains]=acme. The server ignores (and explains in
	// Metadata.Warnings) filters it does not understand.
	Search  map[string]string
	Exclude map[string]string
	// Limit is the page size, 1 to MaxLimit (server default 50); a larger
	// Limit is sent as MaxLimit (the server would fall back to 50).
	Limit int
	// Page is the 0-based page number.
	Page int
	// Order names the field to order by, "-field" for descending.
	Order string

	// Stale, Consistent, Index and Wait are as in QueryOptions.
	Stale      bool
	Consistent bool
	Index      uint64
	Wait       time.Duration
}

func (o *ListOptions) values() url.Values {
	v := url.Values{}
	if o == nil {
		return v
	}
	for k, val := range o.Search {
		v.Set("search["+k+"]", val)
	}
	for k, val := range o.Exclude {
		v.Set("exclude["+k+"]", val)
	}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(min(o.Limit, MaxLimit)))
	}
	if o.Page > 0 {
		v.Set("page", strconv.Itoa(o.Page))
	}
	if o.Order != "" {
		v.Set("order", o.Order)
	}
	readValues(v, o.Stale, o.Consistent, o.Index, o.Wait)
	return v
}

// WriteOptions control an update.
type WriteOptions struct {
	// IfMatch makes the update a compare-and-swap: it is applied only if the
	// object's modified_index is still IfMatch, else the API answers 409
	// (see IsConflict). 0 updates unconditionally.
	IfMatch uint64
}

func (o *WriteOptions) header() http.Header {
	if o == nil || o.IfMatch == 0 {
		return nil
	}
	return http.Header{"If-Match": {strconv.Quote(strconv.FormatUint(o.IfMatch, 10))}}
}

// List fetches one page of the list at path (for example
// "/membership/member/").
func List[T any](ctx context.Context, c *Client, path string, opts *ListOptions) (*api.List[T], *Meta, error) {
	var out api.List[T]
	meta, err := c.do(ctx, &request{method: http.MethodGet, path: path, query: opts.values()}, &out)
	if err != nil {
		return nil, meta, err
	}
	if out.Content == nil {
		out.Content = []T{}
	}
	md := out.Metadata
	meta.ListMetadata = &md
	return &out, meta, nil
}

// ListAll fetches every page of the list at path, MaxLimit objects at a time
// unless opts sets Limit, starting at opts.Page. Index and Wait apply to the
// first page only. The returned Meta is the first page's, so its LastIndex
// is safe to block on: a change made while the later pages were read wakes
// the next blocking query instead of being missed.
//
// Pages are separate reads: objects created or deleted meanwhile can shift
// the pages, so an object may be missed or seen twice. Order by a stable key
// (the default, id) to keep that to objects that changed.
func ListAll[T any](ctx context.Context, c *Client, path string, opts *ListOptions) ([]T, *Meta, error) {
	o := ListOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = MaxLimit
	}
	// The server reads a page below 0 as 0, and so does this loop: counting
	// on from -1 fetched page 0 twice and stopped one page early.
	o.Page = max(o.Page, 0)
	var (
		all   []T
		first *Meta
	)
	for {
		page, meta, err := List[T](ctx, c, path, &o)
		if err != nil {
			return nil, meta, err
		}
		if first == nil {
			first = meta
		}
		all = append(all, page.Content...)
		if len(page.Content) == 0 || len(page.Content) < page.Metadata.Limit || len(all) >= page.Metadata.TotalRecords {
			break
		}
		o.Page++
		o.Index, o.Wait = 0, 0
	}
	if all == nil {
		all = []T{}
	}
	return all, first, nil
}

// Get reads the object at path (for example "/membership/member/3/").
func Get[T any](ctx context.Context, c *Client, path string, opts *QueryOptions) (T, *Meta, error) {
	var out api.Item[T]
	meta, err := c.do(ctx, &request{method: http.MethodGet, path: path, query: opts.values()}, &out)
	return out.Content, meta, err
}

// Create posts in to the list at path and returns the created object.
func Create[T any](ctx context.Context, c *Client, path string, in any) (T, *Meta, error) {
	var out api.Item[T]
	meta, err := c.do(ctx, &request{method: http.MethodPost, path: path, body: in}, &out)
	return out.Content, meta, err
}

// Update changes the fields in sets (PATCH) of the object at path and
// returns the updated object. Fields in leaves out are not changed.
func Update[T any](ctx context.Context, c *Client, path string, in any, opts *WriteOptions) (T, *Meta, error) {
	var out api.Item[T]
	meta, err := c.do(ctx, &request{method: http.MethodPatch, path: path, body: in, header: opts.header()}, &out)
	return out.Content, meta, err
}

// Replace replaces the object at path with in (PUT): required fields must
// be set, and optional fields in leaves out are reset.
func Replace[T any](ctx context.Context, c *Client, path string, in any, opts *WriteOptions) (T, *Meta, error) {
	var out api.Item[T]
	meta, err := c.do(ctx, &request{method: http.MethodPut, path: path, body: in, header: opts.header()}, &out)
	return out.Content, meta, err
}

// Delete deletes the object at path.
func Delete(ctx context.Context, c *Client, path string) (*Meta, error) {
	return c.do(ctx, &request{method: http.MethodDelete, path: path}, nil)
}

// Raw sends one request to any route of the API (path such as
// "/iaas/subnet/" or "/iaas/subnet/5/") with query, and body as the JSON
// request body (nil or empty sends none), and returns the response body as
// it came: the CloudCIX envelope included, nil for 204 No Content. opts, for
// PUT and PATCH, make the write a compare-and-swap. It is for callers that
// pass JSON through, as regentctl does; errors are the same *api.Error as
// the typed calls return.
func Raw(ctx context.Context, c *Client, method, path string, query url.Values, body json.RawMessage, opts *WriteOptions) (json.RawMessage, *Meta, error) {
	r := &request{method: method, path: path, query: query, header: opts.header()}
	if len(body) > 0 {
		r.body = body
	}
	var out json.RawMessage
	meta, err := c.do(ctx, r, &out)
	if err != nil {
		return nil, meta, err
	}
	return out, meta, nil
}

// Service is the typed client of one CloudCIX-style service: the list at
// Path and its objects at Path<id>/. T is the object as the API returns it
// (a pointer, such as *api.Member); In is the input struct with pointer
// fields, so that an update sends only what is set.
type Service[T any, In any] struct {
	c    *Client
	path string
}

// NewService returns the typed client of the service whose list is at path
// (with the trailing slash, e.g. "/membership/member/").
func NewService[T any, In any](c *Client, path string) *Service[T, In] {
	return &Service[T, In]{c: c, path: path}
}

// Path returns the list path of the service.
func (s *Service[T, In]) Path() string { return s.path }

func (s *Service[T, In]) objPath(id uint64) string {
	return s.path + strconv.FormatUint(id, 10) + "/"
}

// List fetches one page of objects.
func (s *Service[T, In]) List(ctx context.Context, opts *ListOptions) (*api.List[T], *Meta, error) {
	return List[T](ctx, s.c, s.path, opts)
}

// ListAll fetches every page of objects (see the function ListAll).
func (s *Service[T, In]) ListAll(ctx context.Context, opts *ListOptions) ([]T, *Meta, error) {
	return ListAll[T](ctx, s.c, s.path, opts)
}

// Get reads one object.
func (s *Service[T, In]) Get(ctx context.Context, id uint64, opts *QueryOptions) (T, *Meta, error) {
	return Get[T](ctx, s.c, s.objPath(id), opts)
}

// Create creates an object.
func (s *Service[T, In]) Create(ctx context.Context, in *In) (T, *Meta, error) {
	return Create[T](ctx, s.c, s.path, in)
}

// Update changes the fields set in in (PATCH).
func (s *Service[T, In]) Update(ctx context.Context, id uint64, in *In, opts *WriteOptions) (T, *Meta, error) {
	return Update[T](ctx, s.c, s.objPath(id), in, opts)
}

// Replace replaces the object (PUT): optional fields not set are reset.
func (s *Service[T, In]) Replace(ctx context.Context, id uint64, in *In, opts *WriteOptions) (T, *Meta, error) {
	return Replace[T](ctx, s.c, s.objPath(id), in, opts)
}

// Delete deletes one object.
func (s *Service[T, In]) Delete(ctx context.Context, id uint64) (*Meta, error) {
	return Delete(ctx, s.c, s.objPath(id))
}
