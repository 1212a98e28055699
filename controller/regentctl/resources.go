package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// readService is what list, get and delete need of a typed SDK service.
type readService[T any] interface {
	List(context.Context, *client.ListOptions) (*api.List[T], *client.Meta, error)
	ListAll(context.Context, *client.ListOptions) ([]T, *client.Meta, error)
	Get(context.Context, uint64, *client.QueryOptions) (T, *client.Meta, error)
	Delete(context.Context, uint64) (*client.Meta, error)
}

// column is one column of a table: its header and how to render a cell.
type column[T any] struct {
	name string
	get  func(T) string
}

// kind describes how regentctl shows one resource.
type kind[T any] struct {
	name string // singular, e.g. "member"
	svc  func(*client.Client) readService[T]
	cols []column[T]
}

func init() {
	resources["member"] = withCRUD(memberKind, memberCreate, memberUpdate)
	resources["user"] = withCRUD(userKind, userCreate, userUpdate)
	resources["region"] = withCRUD(regionKind, regionCreate, regionUpdate)
	resources["token"] = withCRUD(tokenKind, tokenCreate, verb{})
}

func withCRUD[T any](k kind[T], create, update verb) resource {
	r := resource{
		"list":   {run: k.list},
		"get":    {run: k.get},
		"delete": {run: k.del},
	}
	if create.run != nil {
		r["create"] = create
	}
	if update.run != nil {
		r["update"] = update
	}
	return r
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ", ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func filters(kind string, vals multi) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		field, value, ok := strings.Cut(v, "=")
		if !ok || field == "" {
			return nil, usageError{fmt.Sprintf("-%s %q: expected FIELD[__OP]=VALUE, e.g. name__icontains=acme", kind, v)}
		}
		out[field] = value
	}
	return out, nil
}

func (k kind[T]) list(c *cmd, args []string) error {
	var search, exclude multi
	var limit, page int
	var order string
	var all, stale bool
	c.fs.Var(&search, "search", "keep objects matching `FIELD[__OP]=VALUE` (repeatable); OP is one of iexact, icontains,\n"+
		"istartswith, iendswith, in, gt, gte, lt, lte, range, isnull")
	c.fs.Var(&exclude, "exclude", "drop objects matching `FIELD[__OP]=VALUE` (repeatable)")
	c.fs.IntVar(&limit, "limit", 0, "page `size`, 1 to 100 (server default 50)")
	c.fs.IntVar(&page, "page", 0, "page `number`, from 0")
	c.fs.StringVar(&order, "order", "", "order by `FIELD`; -FIELD for descending")
	c.fs.BoolVar(&all, "all", false, "fetch every page")
	c.fs.BoolVar(&stale, "stale", false, "let any node answer from its local state")
	if _, err := c.parse(args, "[flags]", 0); err != nil {
		return err
	}
	opts := &client.ListOptions{Limit: limit, Page: page, Order: order, Stale: stale}
	var err error
	if opts.Search, err = filters("search", search); err != nil {
		return err
	}
	if opts.Exclude, err = filters("exclude", exclude); err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	var res *api.List[T]
	if all {
		items, _, err := k.svc(cl).ListAll(c.ctx, opts)
		if err != nil {
			return err
		}
		res = &api.List[T]{Content: items, Metadata: api.ListMetadata{Order: order, Limit: len(items), TotalRecords: len(items), Warnings: []string{}}}
	} else if res, _, err = k.svc(cl).List(c.ctx, opts); err != nil {
		return err
	}
	for _, w := range res.Metadata.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	if c.g.output == "json" {
		return printJSON(c.stdout, res)
	}
	if err := k.table(c.stdout, res.Content); err != nil {
		return err
	}
	if shown := len(res.Content); !all && res.Metadata.TotalRecords > shown {
		fmt.Fprintf(c.stderr, "(page %d: %d of %d %ss; use -page, -limit or -all for more)\n",
			res.Metadata.Page, shown, res.Metadata.TotalRecords, k.name)
	}
	return nil
}

func parseID(kind, s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usageError{fmt.Sprintf("%s ID must be a positive integer, not %q", kind, s)}
	}
	return id, nil
}

func (k kind[T]) get(c *cmd, args []string) error {
	pos, err := c.parse(args, "ID [flags]", 1)
	if err != nil {
		return err
	}
	id, err := parseID(k.name, pos[0])
	if err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	v, _, err := k.svc(cl).Get(c.ctx, id, nil)
	if err != nil {
		return err
	}
	return k.show(c, v)
}

func (k kind[T]) del(c *cmd, args []string) error {
	pos, err := c.parse(args, "ID [flags]", 1)
	if err != nil {
		return err
	}
	id, err := parseID(k.name, pos[0])
	if err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	if _, err := k.svc(cl).Delete(c.ctx, id); err != nil {
		return err
	}
	if c.g.output == "json" {
		return printJSON(c.stdout, map[string]any{"deleted": k.name, "id": id})
	}
	fmt.Fprintf(c.stdout, "Deleted %s %d.\n", k.name, id)
	return nil
}

// show prints one object: JSON, or a two-column FIELD VALUE table.
func (k kind[T]) show(c *cmd, v T) error {
	if c.g.output == "json" {
		return printJSON(c.stdout, v)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, col := range k.cols {
		fmt.Fprintf(tw, "%s\t%s\n", col.name, col.get(v))
	}
	return tw.Flush()
}

func (k kind[T]) table(w io.Writer, items []T) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	names := make([]string, len(k.cols))
	for i, col := range k.cols {
		names[i] = col.name
	}
	fmt.Fprintln(tw, strings.Join(names, "\t"))
	for _, v := range items {
		cells := make([]string, len(k.cols))
		for i, col := range k.cols {
			cells[i] = col.get(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func num(n uint64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatUint(n, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ids(v []uint64) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}

// idList is a flag holding a comma-separated list of ids; "" is the empty list.
type idList struct {
	v   []uint64
	set bool
}

func (l *idList) String() string {
	if l == nil || !l.set {
		return ""
	}
	return ids(l.v)
}

func (l *idList) Set(s string) error {
	l.set, l.v = true, []uint64{}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an id", f)
		}
		l.v = append(l.v, id)
	}
	return nil
}

// --- members ---

var memberKind = kind[*api.Member]{
	name: "member",
	svc:  func(c *client.Client) readService[*api.Member] { return c.Members() },
	cols: []column[*api.Member]{
		{"ID", func(m *api.Member) string { return num(m.ID) }},
		{"NAME", func(m *api.Member) string { return m.Name }},
		{"SELF MANAGED", func(m *api.Member) string { return yesNo(m.SelfManaged) }},
		{"CREATED", func(m *api.Member) string { return m.Created }},
		{"UPDATED", func(m *api.Member) string { return m.Updated }},
	},
}

type memberFlags struct {
	name        string
	selfManaged bool
	ifMatch     uint64
}

func (f *memberFlags) register(c *cmd, update bool) {
	c.fs.StringVar(&f.name, "name", "", "the member's `name` (unique)")
	c.fs.BoolVar(&f.selfManaged, "self-managed", false, "the member manages its own cloud (global users only)")
	if update {
		c.fs.Uint64Var(&f.ifMatch, "if-match", 0, "update only if the member's modified_index is still `N`")
	}
}

func (f *memberFlags) input(set map[string]bool) *api.MemberInput {
	in := &api.MemberInput{}
	if set["name"] {
		in.Name = &f.name
	}
	if set["self-managed"] {
		in.SelfManaged = &f.selfManaged
	}
	return in
}

var memberCreate = verb{run: func(c *cmd, args []string) error {
	var f memberFlags
	f.register(c, false)
	if _, err := c.parse(args, "-name NAME [-self-managed] [flags]", 0); err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	m, _, err := cl.Members().Create(c.ctx, f.input(c.set()))
	if err != nil {
		return err
	}
	return memberKind.show(c, m)
}}

var memberUpdate = verb{run: func(c *cmd, args []string) error {
	var f memberFlags
	f.register(c, true)
	pos, err := c.parse(args, "ID [-name NAME] [-self-managed=true|false] [-if-match N] [flags]", 1)
	if err != nil {
		return err
	}
	id, err := parseID("member", pos[0])
	if err != nil {
		return err
	}
	in := f.input(c.set())
	if *in == (api.MemberInput{}) {
		return usageError{"member update: nothing to change; give -name or -self-managed"}
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	m, _, err := cl.Members().Update(c.ctx, id, in, &client.WriteOptions{IfMatch: f.ifMatch})
	if err != nil {
		return err
	}
	return memberKind.show(c, m)
}}

// --- users ---

var userKind = kind[*api.User]{
	name: "user",
	svc:  func(c *client.Client) readService[*api.User] { return c.Users() },
	cols: []column[*api.User]{
		{"ID", func(u *api.User) string { return num(u.ID) }},
		{"MEMBER", func(u *api.User) string { return num(u.MemberID) }},
		{"USERNAME", func(u *api.User) string { return u.Username }},
		{"EMAIL", func(u *api.User) string { return orDash(u.Email) }},
		{"NAME", func(u *api.User) string { return orDash(strings.TrimSpace(u.FirstName + " " + u.Surname)) }},
		{"ADMIN", func(u *api.User) string { return yesNo(u.Administrator) }},
		{"GLOBAL", func(u *api.User) string { return yesNo(u.GlobalActive) }},
		{"CREATED", func(u *api.User) string { return u.Created }},
	},
}

type userFlags struct {
	member                              uint64
	username, email, firstName, surname string
	admin, global                       bool
	ifMatch                             uint64
}

func (f *userFlags) register(c *cmd, update bool) {
	c.fs.Uint64Var(&f.member, "member", 0, "member `id` of the user (default: the caller's member)")
	c.fs.StringVar(&f.username, "username", "", "login `name` (letters, digits and @.+-_)")
	c.fs.StringVar(&f.email, "email", "", "email `address`")
	c.fs.StringVar(&f.firstName, "first-name", "", "first `name`")
	c.fs.StringVar(&f.surname, "surname", "", "`surname`")
	c.fs.BoolVar(&f.admin, "admin", false, "administrator of the member")
	c.fs.BoolVar(&f.global, "global-active", false, "global user (users of the global member only; global users only)")
	if update {
		c.fs.Uint64Var(&f.ifMatch, "if-match", 0, "update only if the user's modified_index is still `N`")
	}
}

func (f *userFlags) input(set map[string]bool) *api.UserInput {
	in := &api.UserInput{}
	if set["member"] {
		in.MemberID = &f.member
	}
	if set["username"] {
		in.Username = &f.username
	}
	if set["email"] {
		in.Email = &f.email
	}
	if set["first-name"] {
		in.FirstName = &f.firstName
	}
	if set["surname"] {
		in.Surname = &f.surname
	}
	if set["admin"] {
		in.Administrator = &f.admin
	}
	if set["global-active"] {
		in.GlobalActive = &f.global
	}
	return in
}

var userCreate = verb{run: func(c *cmd, args []string) error {
	var f userFlags
	f.register(c, false)
	if _, err := c.parse(args, "-username NAME [-member ID] [-email E] [-first-name F] [-surname S] [-admin] [-global-active] [flags]", 0); err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	u, _, err := cl.Users().Create(c.ctx, f.input(c.set()))
	if err != nil {
		return err
	}
	return userKind.show(c, u)
}}

var userUpdate = verb{run: func(c *cmd, args []string) error {
	var f userFlags
	f.register(c, true)
	pos, err := c.parse(args, "ID [-username NAME] [-email E] [-first-name F] [-surname S] [-admin=true|false] [-global-active=true|false] [-if-match N] [flags]", 1)
	if err != nil {
		return err
	}
	id, err := parseID("user", pos[0])
	if err != nil {
		return err
	}
	in := f.input(c.set())
	if *in == (api.UserInput{}) {
		return usageError{"user update: nothing to change; give at least one field flag"}
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	u, _, err := cl.Users().Update(c.ctx, id, in, &client.WriteOptions{IfMatch: f.ifMatch})
	if err != nil {
		return err
	}
	return userKind.show(c, u)
}}

// --- regions ---

var regionKind = kind[*api.Region]{
	name: "region",
	svc:  func(c *client.Client) readService[*api.Region] { return c.Regions() },
	cols: []column[*api.Region]{
		{"ID", func(r *api.Region) string { return num(r.ID) }},
		{"NAME", func(r *api.Region) string { return r.Name }},
		{"CUSTOMERS", func(r *api.Region) string { return ids(r.Customers) }},
		{"CREATED", func(r *api.Region) string { return r.Created }},
	},
}

type regionFlags struct {
	name      string
	customers idList
	ifMatch   uint64
}

func (f *regionFlags) register(c *cmd, update bool) {
	c.fs.StringVar(&f.name, "name", "", "the region's `name` (unique)")
	c.fs.Var(&f.customers, "customers", "comma-separated member `ids` that may use the region (\"\" for none)")
	if update {
		c.fs.Uint64Var(&f.ifMatch, "if-match", 0, "update only if the region's modified_index is still `N`")
	}
}

func (f *regionFlags) input(set map[string]bool) *api.RegionInput {
	in := &api.RegionInput{}
	if set["name"] {
		in.Name = &f.name
	}
	if f.customers.set {
		in.Customers = &f.customers.v
	}
	return in
}

var regionCreate = verb{run: func(c *cmd, args []string) error {
	var f regionFlags
	f.register(c, false)
	if _, err := c.parse(args, "-name NAME [-customers ID,ID] [flags]", 0); err != nil {
		return err
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	in := f.input(c.set())
	r, _, err := cl.Regions().Create(c.ctx, in)
	if err != nil {
		return err
	}
	return regionKind.show(c, r)
}}

var regionUpdate = verb{run: func(c *cmd, args []string) error {
	var f regionFlags
	f.register(c, true)
	pos, err := c.parse(args, "ID [-name NAME] [-customers ID,ID] [-if-match N] [flags]", 1)
	if err != nil {
		return err
	}
	id, err := parseID("region", pos[0])
	if err != nil {
		return err
	}
	in := f.input(c.set())
	if in.Name == nil && in.Customers == nil {
		return usageError{"region update: nothing to change; give -name or -customers"}
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	r, _, err := cl.Regions().Update(c.ctx, id, in, &client.WriteOptions{IfMatch: f.ifMatch})
	if err != nil {
		return err
	}
	return regionKind.show(c, r)
}}

// --- tokens ---

var tokenKind = kind[*api.Token]{
	name: "token",
	svc:  func(c *client.Client) readService[*api.Token] { return c.Tokens() },
	cols: []column[*api.Token]{
		{"ID", func(t *api.Token) string { return num(t.ID) }},
		{"NAME", func(t *api.Token) string { return orDash(t.Name) }},
		{"KIND", func(t *api.Token) string { return t.Kind }},
		{"USER", func(t *api.Token) string { return num(t.UserID) }},
		{"MEMBER", func(t *api.Token) string { return num(t.MemberID) }},
		{"REGION", func(t *api.Token) string { return num(t.RegionID) }},
		{"SERVER", func(t *api.Token) string { return num(t.ServerID) }},
		{"PREFIX", func(t *api.Token) string { return t.Prefix }},
		{"EXPIRES", func(t *api.Token) string { return orDash(t.Expires) }},
		{"CREATED", func(t *api.Token) string { return t.Created }},
	},
}

var tokenCreate = verb{run: func(c *cmd, args []string) error {
	var name, expires string
	var user, region, srv uint64
	c.fs.StringVar(&name, "name", "", "a `name` to tell the token apart")
	c.fs.Uint64Var(&user, "user", 0, "user `id` the token acts as (default: you)")
	c.fs.Uint64Var(&region, "robot-region", 0, "make a robot (agent) token bound to region `id` (global users only)")
	c.fs.Uint64Var(&srv, "server", 0, "bind the robot token to server `id` too")
	c.fs.StringVar(&expires, "expires", "", "expiry `time`, RFC 3339 such as 2030-01-02T15:04:05Z (default: never)")
	if _, err := c.parse(args, "[-name NAME] [-user ID] [-robot-region ID [-server ID]] [-expires TIME] [flags]", 0); err != nil {
		return err
	}
	if srv != 0 && region == 0 {
		return usageError{"token create: -server needs -robot-region"}
	}
	set := c.set()
	in := &api.TokenInput{}
	if set["name"] {
		in.Name = &name
	}
	if set["user"] {
		in.UserID = &user
	}
	if region != 0 {
		in.Kind, in.RegionID = new(api.TokenKindRobot), &region
		if srv != 0 {
			in.ServerID = &srv
		}
	}
	if set["expires"] {
		in.Expires = &expires
	}
	cl, err := c.g.client()
	if err != nil {
		return err
	}
	t, _, err := cl.Tokens().Create(c.ctx, in)
	if err != nil {
		return err
	}
	if c.g.output == "json" {
		return printJSON(c.stdout, t)
	}
	if err := tokenKind.show(c, t); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nSECRET  %s\n", t.Secret)
	fmt.Fprintln(c.stderr, "The secret is shown only this once; store it now.")
	return nil
}}
