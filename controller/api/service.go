package api

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Request is one authenticated API request as a service sees it.
type Request struct {
	*http.Request
	W   http.ResponseWriter
	API *API
	// P is the caller.
	P *auth.Principal
	// Txn is a consistent read view taken after authentication.
	Txn *state.ReadTxn
	// Service and Action name the route, for error codes.
	App, Service string
	Action       auth.Action
	// Created, when a Create function sets it, renders the created object
	// instead of the service's View (a token's secret is shown only then).
	Created func(any) any
	// parent, on a route nested under another service's item
	// (Service.Nested), is that item's id: only its objects are served.
	parent *uint64
}

// ParseQuery is the request's query string, or 400 regent_request_005 when
// it cannot be decoded: url.Values drops a pair it cannot decode, and an
// answer without the filter (or limit, or parameter) the client sent would
// look like a good answer.
func (q *Request) ParseQuery() (url.Values, error) {
	v, err := url.ParseQuery(q.URL.RawQuery)
	if err != nil {
		return nil, wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery, "The query string is malformed (%v): a '%%' must start a %%XX escape, and pairs are separated by '&'.", err)
	}
	return v, nil
}

// Code builds a CloudCIX error code for this route: <app>_<service>_<method>_<nnn>.
func (q *Request) Code(n int) string {
	return fmt.Sprintf("%s_%s_%s_%03d", q.App, q.Service, q.Action, n)
}

// Parent is the parent item's id on a route nested under it
// (Service.Nested); ok is false on the service's own routes.
func (q *Request) Parent() (id uint64, ok bool) {
	if q.parent == nil {
		return 0, false
	}
	return *q.parent, true
}

// Stale reports whether q is a ?stale read, answered by the node it
// reached from its local state (not forwarded to the leader).
func (q *Request) Stale() bool { return staleRead(q.Request) }

// Decode reads the JSON body strictly into dst.
func (q *Request) Decode(dst any) error { return DecodeBody(q.Request, dst) }

// Command builds a replicated command stamped with the leader's clock and
// the caller's identity.
func (q *Request) Command(t fsm.MessageType, payload any) (*fsm.Command, error) {
	actor := fsm.Actor{TokenID: q.P.TokenID, UserID: q.P.UserID, MemberID: q.P.MemberID, Robot: q.P.Role == auth.Robot}
	return fsm.NewCommand(t, q.API.Now(), actor, payload)
}

// Service describes a CloudCIX-style service over stored objects of type T.
// Register turns it into list, create, read, update and delete routes that
// share authentication, permissions, filtering, paging, the envelope,
// blocking queries, compare-and-swap updates and error handling.
type Service[T wire.Object] struct {
	App, Name string
	// Tables drive X-Regent-Index and blocking queries.
	Tables []string
	// Query declares the searchable fields and allowed orderings.
	Query query.Spec
	// FilterView applies the filters and the ordering to the response form
	// (View or Expand) instead of the stored object, so a list accepts
	// exactly the names it shows, derived ones included, and nothing it
	// hides: Query then names fields of the view.
	FilterView bool
	// Stored maps the Query fields whose value in the view (of the
	// redacted object) is exactly the stored object's field of the mapped
	// json name, as the query package compares and orders it, whatever
	// Redact does (see StoredFields). A list whose filters and order name
	// only such fields, and "id", filters and orders the stored objects
	// and redacts and renders only its page; any other list renders
	// every visible object first. Only for a service that has FilterView
	// or Redact: without either the lists already render only the page.
	Stored map[string]string
	All    func(*state.ReadTxn) []T
	// AllFor, when set, replaces All for a list: the objects the caller
	// may see, or more (Visible still decides), read from an index where
	// the caller sees only its member's: a member's list then costs its
	// own objects, not the region's.
	AllFor func(*Request) []T
	Get    func(*state.ReadTxn, uint64) (T, bool)
	// Key, when set, also finds an item by a path value that is not a
	// numeric id (a CIX list entry by its CIDR).
	Key func(*state.ReadTxn, string) (T, bool)
	// SlashKey: a Key holds one "/" (a CIDR), so each item route is also
	// served as <base>/{id}/{id2}/, read as the key "{id}/{id2}"; the
	// escaped form <base>/10.0.0.0%2F8/ matches the plain item route.
	SlashKey bool
	// Visible hides other members' objects (they are 404); nil shows all.
	Visible func(*Request, T) bool
	// Redact, when set, is what the caller may see of a visible object
	// (a copy without other members' parts): lists filter and render it,
	// reads and writes answer with it.
	Redact func(*Request, T) T
	// View projects a stored object to its response form; nil sends T.
	View func(T) any
	// Expand, when set, replaces View for views that include related
	// objects; it reads them from r (after a write: the state the write made).
	Expand func(r *state.ReadTxn, v T) any
	// Expander, when set, replaces Expand: it returns the expand function
	// of one request, which may cache what items share (their subnet)
	// across the items of a list; the function is used by one goroutine.
	Expander func(r *state.ReadTxn) func(T) any
	// NoList and NoRead leave out the list and the read route.
	NoList, NoRead bool
	// Nested, when set, also serves the list, read and create routes under
	// an item of another service, as CloudCIX's vm/<vm_id>/storage/ (a
	// Create reads the item with Request.Parent).
	Nested *Nested[T]
	// Create, Update and Delete validate the request and build the command;
	// a nil function means the route does not exist.
	Create func(*Request) (*fsm.Command, error)
	Update func(q *Request, cur T, partial bool) (*fsm.Command, error)
	Delete func(q *Request, cur T) (*fsm.Command, error)
	// StateErr, when set, rewrites an error the command met inside the FSM
	// (a state code such as ipam_…, for a request that passed the checks
	// against its read view but lost a race) into the service's own code.
	StateErr func(q *Request, err error) error
}

// Nested serves a service's list, read and create under an item of its
// parent service too: /<app>/<Parent>/{parent_id}/<name>/ and
// …/<name>/{id}/, the same routes (permissions, filters, paging, envelope,
// views) restricted to that item's objects.
type Nested[T wire.Object] struct {
	// Parent is the parent service's name.
	Parent string
	// Of is the id of an object's parent.
	Of func(T) uint64
	// Sees reports whether the parent exists and the caller may see it;
	// when not, the route is 404 (as the parent's own read would be).
	Sees func(q *Request, id uint64) bool
}

// Register adds the routes of s under /<app>/<name>/.
func Register[T wire.Object](a *API, s Service[T]) {
	base := "/" + s.App + "/" + s.Name + "/"
	if s.View == nil {
		s.View = func(v T) any { return v }
	}
	if !s.NoList {
		a.lists = append(a.lists, ListSpec{App: s.App, Name: s.Name, Query: s.Query})
		a.Handle("GET "+base+"{$}", a.route(s.App, s.Name, auth.List, func(q *Request) error { return s.list(q) }))
	}
	if !s.NoRead {
		a.Handle("GET "+base+"{id}/{$}", a.route(s.App, s.Name, auth.Read, func(q *Request) error { return s.read(q) }))
	}
	if s.Create != nil {
		a.Handle("POST "+base+"{$}", a.route(s.App, s.Name, auth.Create, func(q *Request) error { return s.create(q) }))
	}
	if s.Update != nil {
		a.Handle("PUT "+base+"{id}/{$}", a.route(s.App, s.Name, auth.Update, func(q *Request) error { return s.update(q, false) }))
		a.Handle("PATCH "+base+"{id}/{$}", a.route(s.App, s.Name, auth.Update, func(q *Request) error { return s.update(q, true) }))
	}
	if s.Delete != nil {
		a.Handle("DELETE "+base+"{id}/{$}", a.route(s.App, s.Name, auth.Delete, func(q *Request) error { return s.del(q) }))
	}
	if n := s.Nested; n != nil {
		nested := func(fn func(*Request) error) func(*Request) error {
			return func(q *Request) error {
				id, err := strconv.ParseUint(q.PathValue("parent_id"), 10, 64)
				if err != nil || !n.Sees(q, id) {
					return wire.NotFound(q.Code(1))
				}
				q.parent = &id
				return fn(q)
			}
		}
		nbase := "/" + s.App + "/" + n.Parent + "/{parent_id}/" + s.Name + "/"
		if !s.NoList {
			a.Handle("GET "+nbase+"{$}", a.route(s.App, s.Name, auth.List, nested(s.list)))
		}
		if !s.NoRead {
			a.Handle("GET "+nbase+"{id}/{$}", a.route(s.App, s.Name, auth.Read, nested(s.read)))
		}
		if s.Create != nil {
			a.Handle("POST "+nbase+"{$}", a.route(s.App, s.Name, auth.Create, nested(s.create)))
		}
	}
	if s.SlashKey {
		joined := func(fn func(*Request) error) func(*Request) error {
			return func(q *Request) error {
				q.SetPathValue("id", q.PathValue("id")+"/"+q.PathValue("id2"))
				return fn(q)
			}
		}
		a.Handle("GET "+base+"{id}/{id2}/{$}", a.route(s.App, s.Name, auth.Read, joined(s.read)))
		if s.Delete != nil {
			a.Handle("DELETE "+base+"{id}/{id2}/{$}", a.route(s.App, s.Name, auth.Delete, joined(s.del)))
		}
	}
}

// Route is route for packages that add routes of their own (agent
// protocol, utilities): authentication, the permission table, errors in the
// CloudCIX shape.
func (a *API) Route(app, service string, action auth.Action, fn func(*Request) error) http.HandlerFunc {
	return a.route(app, service, action, fn)
}

// route authenticates, checks the permission table and runs fn; an error
// returned by fn is written in the CloudCIX shape.
func (a *API) route(app, service string, action auth.Action, fn func(*Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := a.newRequest(w, r, app, service, action)
		if err == nil {
			err = fn(q)
		}
		if err != nil {
			a.writeErr(w, r, err)
		}
	}
}

func (a *API) newRequest(w http.ResponseWriter, r *http.Request, app, service string, action auth.Action) (*Request, error) {
	p, err := a.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if err := a.perms.Check(p, app, service, action); err != nil {
		return nil, err
	}
	return &Request{Request: r, W: w, API: a, P: p, Txn: a.store.Read(), App: app, Service: service, Action: action}, nil
}

func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	a.LogUnexpected(r, err)
	WriteError(w, err)
}

// LogUnexpected logs err when it is not an *api.Error, i.e. when it will be
// answered as a 500: dialects that render errors themselves call it too.
func (a *API) LogUnexpected(r *http.Request, err error) {
	var e *wire.Error
	if !errors.As(err, &e) {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
}

// Apply replicates cmd and returns the FSM's result and the raft index.
func (a *API) Apply(q *Request, cmd *fsm.Command) (any, uint64, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, 0, err
	}
	resp, index, err := a.cluster.Apply(q.Context(), data)
	if err != nil {
		switch {
		case isNotLeader(err), errors.Is(err, cluster.ErrLeadershipTransferInProgress):
			return nil, 0, NoLeader("Leadership moved to another node before the write was submitted; retry.")
		case errors.Is(err, cluster.ErrNoLeader):
			return nil, 0, NoLeader("No leader is available: the cluster is electing one or has lost quorum. Retry shortly.")
		case errors.Is(err, cluster.ErrLeadershipLost):
			return nil, 0, &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeForwardFailed,
				Detail: "Leadership was lost while the write was being committed; its outcome is unknown. Check, then retry.", RetryAfter: 1}
		case errors.Is(err, cluster.ErrCommitTimeout):
			return nil, 0, &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeForwardFailed,
				Detail: "The write was not committed in time: a majority of the controller nodes cannot store it (a full or failing disk?); its outcome is unknown. Check, then retry.", RetryAfter: 5}
		case errors.Is(err, cluster.ErrNotSubmitted):
			return nil, 0, &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeNoLeader,
				Detail: "The cluster is not committing writes: a majority of the controller nodes cannot store them (a full or failing disk?). Nothing was written; retry later.", RetryAfter: 5}
		}
		a.log.Error("write failed", "error", err)
		return nil, 0, &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeNoLeader,
			Detail: "The leader could not commit the write (its log says why; a full disk?). Retry shortly.", RetryAfter: 1}
	}
	v, err := resultErr(resp)
	return v, index, err
}

// setIndex sets X-Regent-Index. It is never 0, which would mean "do not
// block" to a client that passes it back as ?index.
func setIndex(w http.ResponseWriter, index uint64) {
	if index == 0 {
		index = 1
	}
	w.Header().Set("X-Regent-Index", strconv.FormatUint(index, 10))
}

// Blocking waits, for ?index=N&wait=D, until the tables pass index N, and
// then refreshes q.Txn. Without ?index it returns at once.
//
// The caller is authenticated again when the wait ends, against the state
// it is answered from: a token revoked or expired, or a user deleted, while
// the query waited is refused (401), and a user whose privileges changed is
// answered as it is now (403 if the route is no longer its, else what it
// may see now). A change of the caller's token or user ends the wait at
// once, and the wait ends when the token expires, so that a caller who has
// lost access is not kept waiting for an answer it will not get.
func (q *Request) Blocking(tables ...string) error { return q.BlockingUnless(nil, tables...) }

// RecheckEvery is how often at most BlockingUnless asks whether the
// answer changed while the tables keep changing: a change of the caller's
// own answer that follows another change within it is answered up to this
// much later.
var RecheckEvery = 20 * time.Millisecond

// WatchReads makes BlockingUnless wait, once the answer is found
// unchanged, on what it was read from (state.Watch) rather than on every
// write to its tables. Off only to compare the two (BenchmarkAgentWorkWakeups).
var WatchReads = true

// BlockingUnless is Blocking for an answer the caller may already hold:
// when the tables pass index N but same reports, against the refreshed
// q.Txn, that the answer is still the one the caller has, it waits on past
// the new index, until the answer differs or the wait ends (then the
// unchanged answer is given, with the index it is now at). A nil same is
// Blocking. Consul's hash-based blocking queries do the same: a long poll
// on a small part of a busy table wakes for changes to that part only.
func (q *Request) BlockingUnless(same func() bool, tables ...string) error {
	raw := q.URL.Query().Get("index")
	if raw == "" {
		return nil
	}
	min, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery, "index must be a non-negative integer, got %q.", raw)
	}
	wait := 5 * time.Minute
	if w := q.URL.Query().Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery, "wait must be a duration such as 30s or 5m, got %q.", w)
		}
		wait = min2(d, 10*time.Minute)
	}
	if rw, ok := q.W.(*respWriter); ok {
		rw.blocking = true // its latency is the wait, not the work
	}
	deadline := time.Now().Add(wait)
	if exp := q.P.Expires; !exp.IsZero() && exp.Before(deadline) {
		deadline = exp.Add(time.Second) // past it, so that the token is expired then
	}
	ctx, cancel := context.WithDeadline(q.Context(), deadline)
	defer cancel()
	defer context.AfterFunc(q.API.drain, cancel)() // the node stops: answer now
	// waitTables waits until the tables pass min, or the caller's token or
	// user changes (then it reports true), or ctx ends.
	waitTables := func() (credentialsChanged bool) {
		tokenCh, userCh := q.Txn.CredentialWatch(q.P.TokenID, q.P.UserID)
		wctx, stop := context.WithCancel(ctx)
		changed := make(chan struct{})
		go func() {
			select {
			case <-tokenCh:
			case <-userCh:
			case <-wctx.Done():
				return
			}
			close(changed)
			stop()
		}()
		q.API.store.Wait(wctx, min, tables...)
		stop()
		select {
		case <-changed:
			return true
		default:
			return false
		}
	}
	woken := false // by a precise watch: look again without waiting on the tables
	for {
		credentialsChanged := false
		if !woken {
			// (After a watch woke it, the tables may even be behind min: a
			// restore of an older snapshot.)
			credentialsChanged = waitTables()
		}
		woken = false
		q.Txn = q.API.store.Read()
		if err := q.reauthenticate(); err != nil {
			return err
		}
		if credentialsChanged && ctx.Err() == nil {
			continue // the caller keeps its access: wait on
		}
		if same == nil || ctx.Err() != nil {
			return nil
		}
		// same() reads through a watching transaction: when every read
		// could be watched, the wait below ends only when something the
		// answer was made from changes, not at every write to its tables.
		txn, watch := q.Txn.Watching()
		q.Txn = txn
		checked := time.Now()
		if !same() {
			return nil
		}
		q.API.metrics.unchanged.Inc()
		min = q.Txn.MaxIndex(tables...) // the state same() compared
		if !watch.Precise() {
			q.API.metrics.broad.Inc()
		}
		if WatchReads && watch.Precise() {
			tokenCh, userCh := q.Txn.CredentialWatch(q.P.TokenID, q.P.UserID)
			if watch.Wait(ctx, tokenCh, userCh) != nil {
				continue // ctx ended: answered unchanged below
			}
			woken = true
		}
		// Changed elsewhere (or, watched, maybe changed): under a steady
		// stream of writes every wait would return at once and same() run
		// at each: it runs at most every RecheckEvery, each time for all
		// the writes since.
		if d := RecheckEvery - time.Since(checked); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
}

// reauthenticate resolves the request's token again against q.Txn and
// checks the route's permission for the principal it now is.
func (q *Request) reauthenticate() error {
	p, err := auth.Authenticate(q.Txn, auth.FromRequest(q.Request), q.API.Now())
	if err != nil {
		return err
	}
	if err := q.API.perms.Check(p, q.App, q.Service, q.Action); err != nil {
		return err
	}
	q.P = p
	return nil
}

func min2(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func (s *Service[T]) visible(q *Request, v T) bool {
	if q.parent != nil && s.Nested.Of(v) != *q.parent {
		return false
	}
	return s.Visible == nil || s.Visible(q, v)
}

func (s *Service[T]) list(q *Request) error {
	if err := q.Blocking(s.Tables...); err != nil {
		return err
	}
	params, err := q.ParseQuery()
	if err != nil {
		return err
	}
	qry := query.Parse(s.Query, params)
	var (
		out   []any
		total int
	)
	render := s.renderer(q.Txn)
	desc, byID := qry.ByID()
	var stored *query.Query
	if !byID && s.Stored != nil && (s.FilterView || s.Redact != nil) {
		stored, _ = qry.On(s.Stored)
	}
	if q.API.cfg.GenericLists {
		byID, stored = false, nil
	}
	// The page is found from the stored objects, and only its items are
	// redacted and rendered (a list used to render every visible object
	// for a page of one), when there is no filter and the order is by id,
	// or when the filters and the order name only fields the views hold
	// as stored (Service.Stored): the same Apply then filters and orders
	// the stored objects as it would the views, with the same tie-break
	// (by id, then by position).
	var page []T
	paged := false
	if byID || stored != nil {
		var items []T
		for _, v := range s.all(q) {
			if s.visible(q, v) {
				items = append(items, v)
			}
		}
		if byID {
			slices.SortFunc(items, func(a, b T) int {
				if desc {
					a, b = b, a
				}
				return cmp.Compare(a.GetMeta().ID, b.GetMeta().ID)
			})
			total = len(items)
			start, end := qry.Window(total)
			page, paged = items[start:end], true
		} else {
			page, total = query.Apply(stored, items)
			// Apply warns of a declared field T lacks (a wrong
			// declaration, which TestListStoredFields finds): the generic
			// path answers then.
			paged = len(stored.Warnings) == len(qry.Warnings)
		}
	}
	if paged {
		out = make([]any, 0, len(page))
		for _, v := range page {
			out = append(out, render(s.redact(q, v)))
		}
	} else {
		var items []T
		for _, v := range s.all(q) {
			if s.visible(q, v) {
				items = append(items, s.redact(q, v))
			}
		}
		if s.FilterView {
			views := make([]any, 0, len(items))
			for _, v := range items {
				views = append(views, render(v))
			}
			out, total = query.Apply(qry, views)
		} else {
			page, total = query.Apply(qry, items)
			out = make([]any, 0, len(page))
			for _, v := range page {
				out = append(out, render(v))
			}
		}
	}
	w := q.W
	setIndex(w, q.Txn.MaxIndex(s.Tables...))
	warnings := qry.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	WriteJSON(w, http.StatusOK, wire.List[any]{Content: out, Metadata: wire.ListMetadata{
		Page: qry.Page, Limit: qry.Limit, Order: qry.Order, TotalRecords: total, Warnings: warnings}})
	return nil
}

// all is the objects a list reads for q, a superset of those it shows.
func (s *Service[T]) all(q *Request) []T {
	if s.AllFor != nil {
		return s.AllFor(q)
	}
	return s.All(q.Txn)
}

// lookup finds the object named by the {id} path value, or 404.
func (s *Service[T]) lookup(q *Request) (T, error) {
	var zero T
	raw := q.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err == nil {
		if v, ok := s.Get(q.Txn, id); ok && s.visible(q, v) {
			return v, nil
		}
	} else if s.Key != nil {
		if v, ok := s.Key(q.Txn, raw); ok && s.visible(q, v) {
			return v, nil
		}
	}
	return zero, wire.NotFound(q.Code(1))
}

func (s *Service[T]) read(q *Request) error {
	if err := q.Blocking(s.Tables...); err != nil {
		return err
	}
	v, err := s.lookup(q)
	if err != nil {
		return err
	}
	w := q.W
	setIndex(w, q.Txn.MaxIndex(s.Tables...))
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(v.GetMeta().ModifiedIndex, 10)))
	WriteJSON(w, http.StatusOK, wire.Item[any]{Content: s.render(q.Txn, s.redact(q, v))})
	return nil
}

func (s *Service[T]) redact(q *Request, v T) T {
	if s.Redact == nil {
		return v
	}
	return s.Redact(q, v)
}

// render is the response form of v, read in r when the service expands.
func (s *Service[T]) render(r *state.ReadTxn, v T) any { return s.renderer(r)(v) }

// renderer is the function that renders the items of one request.
func (s *Service[T]) renderer(r *state.ReadTxn) func(T) any {
	switch {
	case s.Expander != nil:
		return s.Expander(r)
	case s.Expand != nil:
		return func(v T) any { return s.Expand(r, v) }
	}
	return s.View
}

func (s *Service[T]) create(q *Request) error {
	cmd, err := s.Create(q)
	if err != nil {
		return err
	}
	v, index, err := q.API.Apply(q, cmd)
	if err != nil {
		return s.stateErr(q, err)
	}
	w := q.W
	setIndex(w, index)
	view := s.render(q.API.store.Read(), s.redact(q, v.(T)))
	if q.Created != nil {
		view = q.Created(v)
	}
	WriteJSON(w, http.StatusCreated, wire.Item[any]{Content: view})
	return nil
}

// ConflictRetries bounds how often an update the caller did not make
// conditional is made again after another write changed the object between
// its read and its commit. Concurrent writes to one object are committed
// one per raft entry (see fsm.BatchType), so a burst of N writers needs up
// to N rounds; each round takes one commit (milliseconds).
const ConflictRetries = 64

// update retries on a concurrent modification unless the client asked for
// compare-and-swap itself with If-Match.
func (s *Service[T]) update(q *Request, partial bool) error {
	ifMatch, err := parseIfMatch(q.Request)
	if err != nil {
		return err
	}
	// An attempt that lost a race is made again from the current version,
	// decoding the body again: keep it (DecodeBody still sees one byte over
	// the limit, and answers 413).
	body, err := io.ReadAll(io.LimitReader(q.Request.Body, MaxBodyBytes+1))
	if err != nil {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body could not be read: %v.", err)
	}
	for attempt := 0; ; attempt++ {
		q.Request.Body = io.NopCloser(bytes.NewReader(body))
		cur, err := s.lookup(q)
		if err != nil {
			return err
		}
		cmd, err := s.Update(q, cur, partial)
		if err != nil {
			return err
		}
		cmd.Expect = cur.GetMeta().ModifiedIndex
		if ifMatch != 0 {
			cmd.Expect = ifMatch
		}
		v, index, err := q.API.Apply(q, cmd)
		var e *wire.Error
		if err != nil && ifMatch == 0 && attempt < ConflictRetries && errors.As(err, &e) && e.Status == http.StatusConflict && strings.HasSuffix(e.ErrorCode, "_update_002") {
			q.Txn = q.API.store.Read()
			continue
		}
		if err != nil {
			return s.stateErr(q, err)
		}
		w := q.W
		setIndex(w, index)
		WriteJSON(w, http.StatusOK, wire.Item[any]{Content: s.render(q.API.store.Read(), s.redact(q, v.(T)))})
		return nil
	}
}

func parseIfMatch(r *http.Request) (uint64, error) {
	h := r.Header.Get("If-Match")
	if h == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(trimQuotes(h), 10, 64)
	if err != nil || n == 0 {
		// 0 names no object's index, and would read as "no If-Match":
		// a robot's state change would skip its compare-and-swap.
		return 0, wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery, "If-Match must be the object's modified_index (1 or more), got %q.", h)
	}
	return n, nil
}

func trimQuotes(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// stateErr is the answer to an error the command met inside the FSM: the
// service's StateErr, if any, and then, in the service's own code rather
// than state's for the table (ipam_block_update_002 on /iaas/subnet/):
//   - an update or delete whose object was deleted meanwhile (a request
//     that lost a race with a delete passes the handler's lookup and meets
//     it gone in Apply) is the service's 404 <app>_<service>_<action>_001;
//   - an update whose compare-and-swap failed (If-Match, or cmd.Expect,
//     not the object's modified_index: state's replace answers 409
//     <table code>_update_002, and so do the compute updates that check it
//     themselves) is the service's 409 <app>_<service>_update_002, its
//     detail kept.
func (s *Service[T]) stateErr(q *Request, err error) error {
	if s.StateErr != nil {
		err = s.StateErr(q, err)
	}
	var e *wire.Error
	if !errors.As(err, &e) || strings.HasPrefix(e.ErrorCode, fmt.Sprintf("%s_%s_", q.App, q.Service)) {
		return err
	}
	switch {
	case (q.Action == auth.Update || q.Action == auth.Delete) && e.Status == http.StatusNotFound:
		return wire.NotFound(q.Code(1))
	case q.Action == auth.Update && e.Status == http.StatusConflict && strings.HasSuffix(e.ErrorCode, "_update_002"):
		return &wire.Error{Status: http.StatusConflict, ErrorCode: q.Code(2), Detail: e.Detail}
	}
	return err
}

func (s *Service[T]) del(q *Request) error {
	cur, err := s.lookup(q)
	if err != nil {
		return err
	}
	cmd, err := s.Delete(q, cur)
	if err != nil {
		return err
	}
	_, index, err := q.API.Apply(q, cmd)
	if err != nil {
		return s.stateErr(q, err)
	}
	w := q.W
	setIndex(w, index)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// StoredFields is a Service's Stored: the fields every view has as the
// stored object's (id, timestamps and raft indexes), the names in same,
// which a view holds under the stored object's json name, and renamed,
// view name to stored json name.
func StoredFields(renamed map[string]string, same ...string) map[string]string {
	out := map[string]string{"id": "id", "created": "created", "updated": "updated",
		"created_index": "created_index", "modified_index": "modified_index"}
	for _, k := range same {
		out[k] = k
	}
	for k, v := range renamed {
		out[k] = v
	}
	return out
}

// MetaFields returns the searchable fields every stored object has (id,
// timestamps and raft indexes) together with a service's own.
func MetaFields(own map[string]query.FieldType) map[string]query.FieldType {
	out := map[string]query.FieldType{"id": query.Number, "created": query.Date, "updated": query.Date,
		"created_index": query.Number, "modified_index": query.Number}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// Set copies *v into *dst when v is not nil: how PATCH applies a field.
func Set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
