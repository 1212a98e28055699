package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/internal/cli"
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
	resources["member"] = withCRUD(memberKind, memberEditor.create(), memberEditor.update())
	resources["user"] = withCRUD(userKind, userEditor.create(), userEditor.update())
	resources["region"] = withCRUD(regionKind, regionEditor.create(), regionEditor.update())
	resources["token"] = withCRUD(tokenKind, tokenCreate, verb{})
}

func withCRUD[T any](k kind[T], create, update verb) resource {
	r := resource{
		"list":   {synopsis: "[flags]", run: k.list},
		"get":    {synopsis: "ID [flags]", run: k.get},
		"delete": {synopsis: "ID [flags]", run: k.del},
	}
	if create.run != nil {
		r["create"] = create
	}
	if update.run != nil {
		r["update"] = update
	}
	return r
}

// writeService is what create and update need of a typed SDK service whose
// request body is In.
type writeService[T, In any] interface {
	Create(context.Context, *In) (T, *client.Meta, error)
	Update(context.Context, uint64, *In, *client.WriteOptions) (T, *client.Meta, error)
}

// fieldFlags registers the flags of a resource's fields on fs and returns
// what builds the request body from them: only the fields whose flags were
// given (set) are sent.
type fieldFlags[In any] func(fs *flag.FlagSet) (input func(set map[string]bool) *In)

// ifSet returns v if the flag name was given (is in set), else nil: a field
// of a request body that is sent only when given.
func ifSet[V any](set map[string]bool, name string, v *V) *V {
	if set[name] {
		return v
	}
	return nil
}

// editor makes the create and update commands of a resource.
type editor[T any, In comparable] struct {
	kind           kind[T]
	svc            func(*client.Client) writeService[T, In]
	flags          fieldFlags[In]
	createSynopsis string
	updateSynopsis string
	updateHint     string // the flags update asks for when none is given
}

func (e editor[T, In]) create() verb {
	return verb{synopsis: e.createSynopsis, run: func(c *cmd, args []string) error {
		input := e.flags(c.fs)
		if _, err := c.parse(args, 0); err != nil {
			return err
		}
		cl, err := c.conn.Client()
		if err != nil {
			return err
		}
		v, _, err := e.svc(cl).Create(c.ctx, input(c.set()))
		if err != nil {
			return err
		}
		return e.kind.show(c, v)
	}}
}

func (e editor[T, In]) update() verb {
	return verb{synopsis: e.updateSynopsis, run: func(c *cmd, args []string) error {
		input := e.flags(c.fs)
		var ifMatch uint64
		c.fs.Uint64Var(&ifMatch, "if-match", 0, "update only if the "+e.kind.name+"'s modified_index is still `N`")
		pos, err := c.parse(args, 1)
		if err != nil {
			return err
		}
		id, err := parseID(e.kind.name, pos[0])
		if err != nil {
			return err
		}
		in := input(c.set())
		if *in == *new(In) { // no field flag given
			return cli.UsageError(e.kind.name + " update: nothing to change; give " + e.updateHint)
		}
		cl, err := c.conn.Client()
		if err != nil {
			return err
		}
		v, _, err := e.svc(cl).Update(c.ctx, id, in, &client.WriteOptions{IfMatch: ifMatch})
		if err != nil {
			return err
		}
		return e.kind.show(c, v)
	}}
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
			return nil, cli.UsageError(fmt.Sprintf("-%s %q: expected FIELD[__OP]=VALUE, e.g. name__icontains=acme", kind, v))
		}
		out[field] = value
	}
	return out, nil
}

func (k kind[T]) list(c *cmd, args []string) error {
	return listObjects(c, args, k.name, k.svc, k.table)
}

// listObjects is the list command of a service: it registers the list
// flags on c's flag set, fetches one page (or every page with -all), sends
// the warnings of _metadata to stderr and prints the list as JSON or with
// table.
func listObjects[T any](c *cmd, args []string, name string, svc func(*client.Client) readService[T], table func(io.Writer, []T) error) error {
	var search, exclude multi
	var limit, page int
	var order string
	var all, stale bool
	c.fs.Var(&search, "search", "keep objects matching `FIELD[__OP]=VALUE` (repeatable); OP is exact (the default),\n"+
		"iexact, icontains, istartswith, iendswith, in, gt, gte, lt, lte, range, isnull; contains\n"+
		"and within on addresses and CIDRs; year, month, day, week_day, hour, minute on dates")
	c.fs.Var(&exclude, "exclude", "drop objects matching `FIELD[__OP]=VALUE` (repeatable)")
	c.fs.IntVar(&limit, "limit", 0, "page `size`, 1 to 100 (server default 50)")
	c.fs.IntVar(&page, "page", 0, "page `number`, from 0")
	c.fs.StringVar(&order, "order", "", "order by `FIELD`; -FIELD for descending")
	c.fs.BoolVar(&all, "all", false, "fetch every page")
	c.fs.BoolVar(&stale, "stale", false, "let any node answer from its local state")
	if _, err := c.parse(args, 0); err != nil {
		return err
	}
	if set := c.set(); set["limit"] && (limit < 1 || limit > client.MaxLimit) {
		return cli.UsageError(fmt.Sprintf("-limit must be 1 to %d, not %d", client.MaxLimit, limit))
	}
	if page < 0 {
		return cli.UsageError(fmt.Sprintf("-page counts from 0, not %d", page))
	}
	opts := &client.ListOptions{Limit: limit, Page: page, Order: order, Stale: stale}
	var err error
	if opts.Search, err = filters("search", search); err != nil {
		return err
	}
	if opts.Exclude, err = filters("exclude", exclude); err != nil {
		return err
	}
	cl, err := c.conn.Client()
	if err != nil {
		return err
	}
	var res *api.List[T]
	if all {
		items, meta, err := svc(cl).ListAll(c.ctx, opts)
		if err != nil {
			return err
		}
		// One list of every page: the first page's order and warnings
		// (an ignored filter must not go unnoticed), the whole as one page.
		md := api.ListMetadata{Order: order, Warnings: []string{}}
		if first := meta.ListMetadata; first != nil {
			md.Order = first.Order
			if first.Warnings != nil {
				md.Warnings = first.Warnings
			}
		}
		md.Limit, md.TotalRecords = len(items), len(items)
		res = &api.List[T]{Content: items, Metadata: md}
	} else if res, _, err = svc(cl).List(c.ctx, opts); err != nil {
		return err
	}
	warn(c, res.Metadata.Warnings)
	if c.conn.JSON() {
		return cli.PrintJSON(c.stdout, res)
	}
	if err := table(c.stdout, res.Content); err != nil {
		return err
	}
	// The hint only when records follow this page (not on the last one).
	md := res.Metadata
	if shown := len(res.Content); !all && md.Page*md.Limit+shown < md.TotalRecords {
		fmt.Fprintf(c.stderr, "(page %d: %d of %d %ss; use -page, -limit or -all for more)\n",
			md.Page, shown, md.TotalRecords, name)
	}
	return nil
}

// warn prints the warnings of a response's _metadata to stderr.
func warn(c *cmd, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
}

func parseID(kind, s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, cli.UsageError(fmt.Sprintf("%s ID must be a positive integer, not %q", kind, s))
	}
	return id, nil
}

func (k kind[T]) get(c *cmd, args []string) error {
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := parseID(k.name, pos[0])
	if err != nil {
		return err
	}
	cl, err := c.conn.Client()
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
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := parseID(k.name, pos[0])
	if err != nil {
		return err
	}
	cl, err := c.conn.Client()
	if err != nil {
		return err
	}
	if _, err := k.svc(cl).Delete(c.ctx, id); err != nil {
		return err
	}
	return deleted(c, k.name, id)
}

// deleted reports that the object id (a number, or a key such as a CIDR)
// of kind was deleted.
func deleted(c *cmd, kind string, id any) error {
	if c.conn.JSON() {
		return cli.PrintJSON(c.stdout, map[string]any{"deleted": kind, "id": id})
	}
	fmt.Fprintf(c.stdout, "Deleted %s %v.\n", kind, id)
	return nil
}

// show prints one object: JSON, or a two-column FIELD VALUE table.
func (k kind[T]) show(c *cmd, v T) error {
	if c.conn.JSON() {
		return cli.PrintJSON(c.stdout, v)
	}
	rows := make([][]string, len(k.cols))
	for i, col := range k.cols {
		rows[i] = []string{col.name, col.get(v)}
	}
	return cli.Table(c.stdout, rows)
}

// table prints items as a table, one column a field.
func (k kind[T]) table(w io.Writer, items []T) error {
	rows := make([][]string, 1+len(items))
	for _, col := range k.cols {
		rows[0] = append(rows[0], col.name)
	}
	for i, v := range items {
		for _, col := range k.cols {
			rows[1+i] = append(rows[1+i], col.get(v))
		}
	}
	return cli.Table(w, rows)
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
		{"SELF MANAGED", func(m *api.Member) string { return cli.YesNo(m.SelfManaged) }},
		{"CREATED", func(m *api.Member) string { return m.Created }},
		{"UPDATED", func(m *api.Member) string { return m.Updated }},
	},
}

var memberEditor = editor[*api.Member, api.MemberInput]{
	kind: memberKind,
	svc:  func(c *client.Client) writeService[*api.Member, api.MemberInput] { return c.Members() },
	flags: func(fs *flag.FlagSet) func(map[string]bool) *api.MemberInput {
		var name string
		var selfManaged bool
		fs.StringVar(&name, "name", "", "the member's `name` (unique)")
		fs.BoolVar(&selfManaged, "self-managed", false, "the member manages its own cloud (global users only)")
		return func(set map[string]bool) *api.MemberInput {
			return &api.MemberInput{
				Name:        ifSet(set, "name", &name),
				SelfManaged: ifSet(set, "self-managed", &selfManaged),
			}
		}
	},
	createSynopsis: "-name NAME [-self-managed] [flags]",
	updateSynopsis: "ID [-name NAME] [-self-managed=true|false] [-if-match N] [flags]",
	updateHint:     "-name or -self-managed",
}

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
		{"ADMIN", func(u *api.User) string { return cli.YesNo(u.Administrator) }},
		{"GLOBAL", func(u *api.User) string { return cli.YesNo(u.GlobalActive) }},
		{"CREATED", func(u *api.User) string { return u.Created }},
	},
}

var userEditor = editor[*api.User, api.UserInput]{
	kind: userKind,
	svc:  func(c *client.Client) writeService[*api.User, api.UserInput] { return c.Users() },
	flags: func(fs *flag.FlagSet) func(map[string]bool) *api.UserInput {
		var member uint64
		var username, email, firstName, surname string
		var admin, global bool
		fs.Uint64Var(&member, "member", 0, "member `id` of the user (default: the caller's member)")
		fs.StringVar(&username, "username", "", "login `name` (letters, digits and @.+-_)")
		fs.StringVar(&email, "email", "", "email `address`")
		fs.StringVar(&firstName, "first-name", "", "first `name`")
		fs.StringVar(&surname, "surname", "", "`surname`")
		fs.BoolVar(&admin, "admin", false, "administrator of the member")
		fs.BoolVar(&global, "global-active", false, "global user (users of the global member only; global users only)")
		return func(set map[string]bool) *api.UserInput {
			return &api.UserInput{
				MemberID:      ifSet(set, "member", &member),
				Username:      ifSet(set, "username", &username),
				Email:         ifSet(set, "email", &email),
				FirstName:     ifSet(set, "first-name", &firstName),
				Surname:       ifSet(set, "surname", &surname),
				Administrator: ifSet(set, "admin", &admin),
				GlobalActive:  ifSet(set, "global-active", &global),
			}
		}
	},
	createSynopsis: "-username NAME [-member ID] [-email E] [-first-name F] [-surname S] [-admin] [-global-active] [flags]",
	updateSynopsis: "ID [-username NAME] [-email E] [-first-name F] [-surname S] [-admin=true|false] [-global-active=true|false] [-if-match N] [flags]",
	updateHint:     "at least one field flag",
}

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

var regionEditor = editor[*api.Region, api.RegionInput]{
	kind: regionKind,
	svc:  func(c *client.Client) writeService[*api.Region, api.RegionInput] { return c.Regions() },
	flags: func(fs *flag.FlagSet) func(map[string]bool) *api.RegionInput {
		var name string
		var customers idList
		fs.StringVar(&name, "name", "", "the region's `name` (unique)")
		fs.Var(&customers, "customers", "comma-separated member `ids` that may use the region (\"\" for none)")
		return func(set map[string]bool) *api.RegionInput {
			return &api.RegionInput{
				Name:      ifSet(set, "name", &name),
				Customers: ifSet(set, "customers", &customers.v),
			}
		}
	},
	createSynopsis: "-name NAME [-customers ID,ID] [flags]",
	updateSynopsis: "ID [-name NAME] [-customers ID,ID] [-if-match N] [flags]",
	updateHint:     "-name or -customers",
}

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

var tokenCreate = verb{synopsis: "[-name NAME] [-user ID] [-robot-region ID [-server ID]] [-expires TIME] [flags]", run: func(c *cmd, args []string) error {
	var name, expires string
	var user, region, srv uint64
	c.fs.StringVar(&name, "name", "", "a `name` to tell the token apart")
	c.fs.Uint64Var(&user, "user", 0, "user `id` the token acts as (default: you)")
	c.fs.Uint64Var(&region, "robot-region", 0, "make a robot (agent) token bound to region `id` (global users only)")
	c.fs.Uint64Var(&srv, "server", 0, "bind the robot token to server `id` too")
	c.fs.StringVar(&expires, "expires", "", "expiry `time`, RFC 3339 such as 2030-01-02T15:04:05Z (default: never)")
	if _, err := c.parse(args, 0); err != nil {
		return err
	}
	if srv != 0 && region == 0 {
		return cli.UsageError("token create: -server needs -robot-region")
	}
	set := c.set()
	in := &api.TokenInput{
		Name:    ifSet(set, "name", &name),
		UserID:  ifSet(set, "user", &user),
		Expires: ifSet(set, "expires", &expires),
	}
	if region != 0 {
		in.Kind, in.RegionID = new(api.TokenKindRobot), &region
		if srv != 0 {
			in.ServerID = &srv
		}
	}
	cl, err := c.conn.Client()
	if err != nil {
		return err
	}
	t, _, err := cl.Tokens().Create(c.ctx, in)
	if err != nil {
		return err
	}
	if c.conn.JSON() {
		return cli.PrintJSON(c.stdout, t)
	}
	if err := tokenKind.show(c, t); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nSECRET  %s\n", t.Secret)
	fmt.Fprintln(c.stderr, "The secret is shown only this once; store it now.")
	return nil
}}
