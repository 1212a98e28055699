package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/internal/cli"
	"github.com/regentcloud/regent/pkg/client"
)

// iaasService is one CloudCIX service under /iaas/<name>/ as regentctl
// reaches it. Every service goes through the same commands: the bodies and
// responses pass through as JSON (client.Raw and client.List over
// json.RawMessage), so a field the API gains needs no change here. The
// table only says which routes exist (controller/api/iaas, docs/api.md) and
// which columns a list shows by default.
type iaasService struct {
	name string
	// verbs are the commands the routes allow, of list, get, create,
	// update and delete.
	verbs string
	// arg names get's argument when it is not the object's id (the
	// utilities: ALLOCATION_ID for subnet_space); "-" means get takes
	// none (ip_validator).
	arg string
	// key: get and delete also take a CIDR for the id (the CIX lists).
	key bool
	// query is get's default query, e.g. "force=true".
	query string
	// cols are the default table columns after id; nil shows id and name,
	// or id and the first scalar fields when the objects have no name.
	cols []string
}

const crud = "list get create update delete"

// iaasServices are the tenant-facing /iaas/ services. run_robot, the
// agents' work queue, is left out: robots speak it through the SDK.
var iaasServices = []iaasService{
	// IPAM.
	{name: "asn", verbs: crud, cols: []string{"number", "member_id", "is_pseudo"}},
	{name: "allocation", verbs: crud, cols: []string{"address_range", "name", "asn_id", "member_id"}},
	{name: "subnet", verbs: crud, cols: []string{"address_range", "name", "allocation_id", "vlan", "vxlan"}},
	{name: "ip_address", verbs: crud, cols: []string{"address", "name", "subnet_id", "public_ip_id", "vm_id"}},
	{name: "subnet_space", verbs: "get", arg: "ALLOCATION_ID", cols: []string{"address_range", "name"}},
	{name: "ip_validator", verbs: "get", arg: "-"},
	{name: "cix_blacklist", verbs: "list get create delete", key: true, cols: []string{"cidr", "comment"}},
	{name: "cix_whitelist", verbs: "list get create delete", key: true, cols: []string{"cidr", "comment"}},
	// DNS.
	{name: "domain", verbs: "list get create delete", cols: []string{"name", "member_id"}},
	{name: "record", verbs: crud, cols: []string{"domain_id", "name", "type", "content", "ttl"}},
	{name: "ptr_record", verbs: crud, cols: []string{"ip_address", "content", "ttl"}},
	// Compute.
	{name: "project", verbs: "list get create update", cols: []string{"name", "region_id", "min_state", "stable"}},
	{name: "cloud", verbs: "get create update"},
	{name: "virtual_router", verbs: "list get update", cols: []string{"project_id", "router_id", "ip_address", "state"}},
	{name: "vm", verbs: "list get create update", cols: []string{"name", "project_id", "state", "server_id", "cpu", "ram"}},
	{name: "vm_history", verbs: "list", cols: []string{"vm_id", "state", "cpu_quantity", "ram_quantity", "created"}},
	{name: "storage", verbs: "list get create", cols: []string{"name", "vm_id", "gb", "primary"}},
	{name: "storage_type", verbs: "list get create update"},
	{name: "image", verbs: "list get create update", cols: []string{"display_name", "filename", "os_variant"}},
	{name: "region_image", verbs: "list get create delete", cols: []string{"region_id", "image_id"}},
	{name: "server_type", verbs: "list get"},
	{name: "server", verbs: "list get create update", cols: []string{"hostname", "region_id", "type_id", "cores", "ram", "gb", "status"}},
	{name: "interface", verbs: crud, cols: []string{"server_id", "hostname", "ip_address", "mac_address"}},
	{name: "router", verbs: "list get create update", cols: []string{"hostname", "region_id", "capacity", "status"}},
	{name: "vpn", verbs: crud, cols: []string{"virtual_router_id", "project_id", "vpn_type", "ike_gateway_value"}},
	{name: "vpn_history", verbs: "list"},
	{name: "vpn_status", verbs: "get", arg: "VPN_ID"},
	{name: "snapshot", verbs: "list get create update", cols: []string{"name", "vm_id", "state", "active"}},
	{name: "snapshot_history", verbs: "list"},
	{name: "snapshot_tree", verbs: "get", arg: "VM_ID"},
	{name: "backup", verbs: "list get create update", cols: []string{"name", "vm_id", "state", "repository"}},
	{name: "backup_history", verbs: "list"},
	{name: "capacity", verbs: "get", arg: "REGION_ID"},
	{name: "metrics", verbs: "get", arg: "REGION_ID", query: "force=true"},
	{name: "policy_log", verbs: "get", arg: "PROJECT_ID"},
}

func iaasNames() string {
	names := make([]string, len(iaasServices))
	for i, s := range iaasServices {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// iaasHelp is the usage of "regentctl iaas help".
func iaasHelp() string {
	var b strings.Builder
	b.WriteString("Usage: regentctl iaas SERVICE COMMAND [flags] [args]\n\nServices and their commands (see docs/api.md for their fields):\n")
	rows := make([][]string, len(iaasServices))
	for i, s := range iaasServices {
		verbs := s.verbs
		if s.arg != "" && s.arg != "-" {
			verbs = strings.Replace(verbs, "get", "get "+s.arg, 1)
		}
		rows[i] = []string{"  " + s.name, verbs}
	}
	cli.Table(&b, rows)
	b.WriteString("\nRun 'regentctl -h' for bodies, output and list flags, and\n'regentctl iaas SERVICE COMMAND -h' for the flags of a command.\n")
	return b.String()
}

// iaasCommand finds the command of "iaas SERVICE VERB ARGS..." and returns
// its name, the verb and the arguments after it.
func iaasCommand(args []string, stdout io.Writer) (string, verb, []string, error) {
	if len(args) == 0 {
		return "", verb{}, nil, cli.UsageError("iaas needs a service: " + iaasNames())
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, iaasHelp())
		return "", verb{}, nil, cli.ErrHelp
	}
	var s *iaasService
	for i := range iaasServices {
		if iaasServices[i].name == args[0] {
			s = &iaasServices[i]
		}
	}
	if s == nil {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("unknown iaas service %q; the services are %s", args[0], iaasNames()))
	}
	verbs := strings.Fields(s.verbs)
	if len(args) < 2 {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("iaas %s needs a command: %s", s.name, strings.Join(verbs, ", ")))
	}
	if isHelp(args[1]) {
		fmt.Fprint(stdout, commandsUsage("iaas "+s.name, verbs, func(v string) string { return s.verb(v).synopsis }))
		return "", verb{}, nil, cli.ErrHelp
	}
	v := s.verb(args[1])
	if !strings.Contains(" "+s.verbs+" ", " "+args[1]+" ") || v.run == nil {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("unknown command %q for iaas %s (%s)", args[1], s.name, strings.Join(verbs, ", ")))
	}
	return "iaas " + s.name + " " + args[1], v, args[2:], nil
}

// verb returns the command name of the service (a zero verb for a name
// that is no command).
func (s *iaasService) verb(name string) verb {
	switch name {
	case "list":
		return verb{synopsis: "[-search FIELD[__OP]=VALUE ...] [-columns A,B] [flags]", run: s.list}
	case "get":
		return verb{synopsis: s.idSynopsis() + "[KEY=VALUE ...] [-columns A,B] [flags]", run: s.get}
	case "create":
		return verb{synopsis: "[-d JSON | -f FILE] [KEY=VALUE | KEY:=JSON ...] [flags]", run: s.create}
	case "update":
		return verb{synopsis: s.idSynopsis() + "[-d JSON | -f FILE] [KEY=VALUE | KEY:=JSON ...] [-put] [-if-match N] [flags]", run: s.update}
	case "delete":
		return verb{synopsis: s.idSynopsis() + "[flags]", run: s.del}
	}
	return verb{}
}

func (s *iaasService) idSynopsis() string {
	switch {
	case s.arg == "-":
		return ""
	case s.arg != "":
		return s.arg + " "
	case s.key:
		return "ID|CIDR "
	}
	return "ID "
}

// path returns the service's list path, or an object's path when id is
// given (escaped, so that a CIDR's "/" stays in its path segment).
func (s *iaasService) path(id ...string) string {
	p := "/iaas/" + s.name + "/"
	for _, v := range id {
		p += url.PathEscape(v) + "/"
	}
	return p
}

// splitID takes the id (or CIDR, or the utility's argument) off the
// positional arguments; the rest are returned. withRest says whether any
// may follow.
func (s *iaasService) splitID(c *cmd, pos []string, withRest bool) (id []string, rest []string, err error) {
	if s.arg == "-" {
		return nil, pos, nil
	}
	if len(pos) == 0 || (!withRest && len(pos) > 1) {
		return nil, nil, cli.UsageError(fmt.Sprintf("usage: regentctl %s %s", c.name, c.synopsis))
	}
	if !s.key {
		if _, err := parseID(s.name, pos[0]); err != nil {
			return nil, nil, err
		}
	} else if pos[0] == "" {
		return nil, nil, cli.UsageError(s.name + " ID or CIDR must not be empty")
	}
	return pos[:1], pos[1:], nil
}

// columnsFlag registers -columns on fs.
func columnsFlag(fs *flag.FlagSet) *string {
	return fs.String("columns", "", "comma-separated `fields` to show in the table (a.b for a field of a nested object)")
}

func splitColumns(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (s *iaasService) list(c *cmd, args []string) error {
	cols := columnsFlag(c.fs)
	svc := func(cl *client.Client) readService[json.RawMessage] {
		return client.NewService[json.RawMessage, json.RawMessage](cl, s.path())
	}
	return listObjects(c, args, s.name+" object", svc, func(w io.Writer, items []json.RawMessage) error {
		return s.table(w, c.stderr, items, splitColumns(*cols))
	})
}

func (s *iaasService) get(c *cmd, args []string) error {
	cols := columnsFlag(c.fs)
	pos, err := tool.Parse(c.fs, args, c.stdout)
	if err != nil {
		return err
	}
	id, pairs, err := s.splitID(c, pos, true)
	if err != nil {
		return err
	}
	query, err := url.ParseQuery(s.query)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return cli.UsageError(fmt.Sprintf("%s: %q: expected a query parameter KEY=VALUE", c.name, p))
		}
		query.Set(k, v)
	}
	return s.call(c, http.MethodGet, s.path(id...), query, nil, nil, splitColumns(*cols))
}

func (s *iaasService) create(c *cmd, args []string) error {
	_, body, cols, err := s.parseWrite(c, args, false)
	if err != nil {
		return err
	}
	if body == nil {
		body = json.RawMessage("{}") // the API says which fields are required
	}
	return s.call(c, http.MethodPost, s.path(), nil, body, nil, cols)
}

func (s *iaasService) update(c *cmd, args []string) error {
	var put bool
	var ifMatch uint64
	c.fs.BoolVar(&put, "put", false, "replace the object (PUT): optional fields not given are reset")
	c.fs.Uint64Var(&ifMatch, "if-match", 0, "update only if the object's modified_index is still `N` (else 409)")
	id, body, cols, err := s.parseWrite(c, args, true)
	if err != nil {
		return err
	}
	if body == nil {
		return cli.UsageError(c.name + ": nothing to change; give KEY=VALUE arguments, -d or -f")
	}
	method := http.MethodPatch
	if put {
		method = http.MethodPut
	}
	return s.call(c, method, s.path(id...), nil, body, &client.WriteOptions{IfMatch: ifMatch}, cols)
}

// parseWrite registers the flags of a create or update (-d, -f, -columns)
// and parses the arguments: the object's id when withID, then the fields of
// the body.
func (s *iaasService) parseWrite(c *cmd, args []string, withID bool) (id []string, body json.RawMessage, cols []string, err error) {
	b := bodyFlags(c.fs)
	columns := columnsFlag(c.fs)
	pos, err := tool.Parse(c.fs, args, c.stdout)
	if err == nil && withID {
		id, pos, err = s.splitID(c, pos, true)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	body, err = b.build(c.stdin, pos)
	return id, body, splitColumns(*columns), err
}

func (s *iaasService) del(c *cmd, args []string) error {
	pos, err := tool.Parse(c.fs, args, c.stdout)
	if err != nil {
		return err
	}
	id, _, err := s.splitID(c, pos, false)
	if err != nil {
		return err
	}
	cl, err := c.conn.Client()
	if err != nil {
		return err
	}
	if _, _, err := client.Raw(c.ctx, cl, http.MethodDelete, s.path(id...), nil, nil, nil); err != nil {
		return err
	}
	if n, err := strconv.ParseUint(id[0], 10, 64); err == nil {
		return deleted(c, s.name, n) // a number in JSON, as the other resources'
	}
	return deleted(c, s.name, id[0])
}

// call sends one request and shows the response.
func (s *iaasService) call(c *cmd, method, path string, query url.Values, body json.RawMessage, opts *client.WriteOptions, cols []string) error {
	cl, err := c.conn.Client()
	if err != nil {
		return err
	}
	resp, _, err := client.Raw(c.ctx, cl, method, path, query, body, opts)
	if err != nil {
		return err
	}
	return s.show(c, resp, cols)
}

// show prints a response: its content (the body itself when it has no
// CloudCIX envelope) as JSON, or as a table: an object as FIELD VALUE rows,
// a list with one column a field.
func (s *iaasService) show(c *cmd, resp json.RawMessage, cols []string) error {
	var env struct {
		Content  json.RawMessage `json:"content"`
		Metadata *struct {
			Warnings []string `json:"warnings"`
		} `json:"_metadata"`
	}
	content := resp
	if len(resp) == 0 {
		content = json.RawMessage("null") // 204 No Content
	} else if err := json.Unmarshal(resp, &env); err == nil && env.Content != nil {
		content = env.Content
		if env.Metadata != nil {
			warn(c, env.Metadata.Warnings)
		}
	}
	if c.conn.JSON() {
		return cli.PrintJSON(c.stdout, content)
	}
	switch firstByte(content) {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(content, &items); err != nil {
			return err
		}
		return s.table(c.stdout, c.stderr, items, cols)
	case '{':
		members, err := objectMembers(content)
		if err != nil {
			return err
		}
		var rows [][]string
		if len(cols) == 0 {
			for _, m := range members {
				rows = append(rows, []string{strings.ToUpper(m.key), cell(m.val, true)})
			}
		}
		for _, col := range cols {
			v, ok := lookup(content, col)
			rows = append(rows, []string{strings.ToUpper(col), cell(v, ok)})
			if !ok {
				s.unknownColumn(c.stderr, col)
			}
		}
		return cli.Table(c.stdout, rows)
	case 'n': // null: nothing to show
		return nil
	}
	_, err := fmt.Fprintln(c.stdout, cell(content, true))
	return err
}

// table prints items with the columns cols; without any, id and the
// service's default columns, or id and name, or id and the first scalar
// fields of the first item.
// A column that -columns names and no item has is warned about on warnw:
// a typo would otherwise show as a column of "-".
func (s *iaasService) table(w, warnw io.Writer, items []json.RawMessage, cols []string) error {
	named := len(cols) > 0
	if !named {
		cols = s.defaultColumns(items)
	}
	rows := make([][]string, 1+len(items))
	found := make([]bool, len(cols))
	for _, col := range cols {
		rows[0] = append(rows[0], strings.ToUpper(col))
	}
	for i, item := range items {
		for j, col := range cols {
			v, ok := lookup(item, col)
			rows[1+i] = append(rows[1+i], cell(v, ok))
			found[j] = found[j] || ok
		}
	}
	if named && len(items) > 0 {
		for j, col := range cols {
			if !found[j] {
				s.unknownColumn(warnw, col)
			}
		}
	}
	return cli.Table(w, rows)
}

// unknownColumn warns that the answer has no field col.
func (s *iaasService) unknownColumn(w io.Writer, col string) {
	fmt.Fprintf(w, "warning: no field %q in the %s answer (-columns takes its fields; a.b for a nested one)\n", col, s.name)
}

// maxScalarColumns bounds the columns picked for a service without defaults.
const maxScalarColumns = 5

func (s *iaasService) defaultColumns(items []json.RawMessage) []string {
	if s.cols != nil {
		return append([]string{"id"}, s.cols...)
	}
	cols := []string{"id"}
	if len(items) == 0 {
		return append(cols, "name")
	}
	members, _ := objectMembers(items[0])
	for _, m := range members {
		if m.key == "name" {
			return append(cols, "name")
		}
	}
	for _, m := range members {
		if b := firstByte(m.val); m.key != "id" && b != '{' && b != '[' && len(cols) <= maxScalarColumns {
			cols = append(cols, m.key)
		}
	}
	return cols
}

// member is one member of a JSON object.
type member struct {
	key string
	val json.RawMessage
}

// objectMembers returns the members of the JSON object raw in their order
// (a map would lose it).
func objectMembers(raw json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %.40s", raw)
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key: t.(string), val: v})
	}
	return out, nil
}

// lookup finds the field path (a.b for a field of a nested object) in the
// JSON object raw.
func lookup(raw json.RawMessage, path string) (json.RawMessage, bool) {
	for f := range strings.SplitSeq(path, ".") {
		if string(bytes.TrimSpace(raw)) == "null" {
			return raw, true // a field under a null object (no public IP): shown as "-"
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil, false
		}
		v, ok := obj[f]
		if !ok {
			return nil, false
		}
		raw = v
	}
	return raw, true
}

func firstByte(raw json.RawMessage) byte {
	if b := bytes.TrimSpace(raw); len(b) > 0 {
		return b[0]
	}
	return 0
}

// cellEscaper keeps a multi-line value on its table row.
var cellEscaper = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`)

// cell renders a JSON value as a table cell: "-" for missing, null and "",
// yes/no for booleans, a list of scalars joined with commas, any other list
// or object as compact JSON.
func cell(raw json.RawMessage, ok bool) string {
	if !ok {
		return "-"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return orDash(cellEscaper.Replace(v))
	case json.Number:
		return v.String()
	case bool:
		return cli.YesNo(v)
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			switch e.(type) {
			case string, json.Number, bool:
				parts = append(parts, fmt.Sprint(e))
			default:
				var b bytes.Buffer
				if json.Compact(&b, raw) != nil {
					return string(raw)
				}
				return b.String()
			}
		}
		return orDash(cellEscaper.Replace(strings.Join(parts, ",")))
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// body holds the -d and -f flags of a write.
type body struct{ data, file string }

func bodyFlags(fs *flag.FlagSet) *body {
	b := &body{}
	fs.StringVar(&b.data, "d", "", "the request body, a JSON `object`")
	fs.StringVar(&b.file, "f", "", "read the request body from `file` (- for stdin)")
	return b
}

// build makes the request body: -d or -f, with the KEY=VALUE and KEY:=JSON
// arguments set on top. It returns nil when none of them is given.
func (b *body) build(stdin io.Reader, pairs []string) (json.RawMessage, error) {
	var base []byte
	var from string
	switch {
	case b.data != "" && b.file != "":
		return nil, cli.UsageError("-d and -f exclude each other")
	case b.data != "":
		base, from = []byte(b.data), "-d"
	case b.file == "-":
		var err error
		if base, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("reading the body from stdin: %w", err)
		}
		from = "stdin"
	case b.file != "":
		var err error
		if base, err = os.ReadFile(b.file); err != nil {
			return nil, fmt.Errorf("reading the body: %w", err)
		}
		from = b.file
	}
	base = bytes.TrimSpace(base)
	if len(base) > 0 {
		var v any
		if err := json.Unmarshal(base, &v); err != nil {
			return nil, cli.UsageError(fmt.Sprintf("the body from %s is not JSON: %v", from, err))
		}
	}
	if len(pairs) == 0 {
		if len(base) == 0 {
			return nil, nil
		}
		return base, nil
	}
	obj := map[string]json.RawMessage{}
	if len(base) > 0 && (json.Unmarshal(base, &obj) != nil || obj == nil) { // null leaves obj nil
		return nil, cli.UsageError(fmt.Sprintf("KEY=VALUE arguments need the body from %s to be a JSON object", from))
	}
	for _, p := range pairs {
		k, v, err := parsePair(p)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
	return json.Marshal(obj)
}

// parsePair parses a KEY=VALUE argument (VALUE is a JSON number, true,
// false or null when it reads as one, else a string) or KEY:=JSON.
func parsePair(p string) (string, json.RawMessage, error) {
	k, v, ok := strings.Cut(p, "=")
	raw := strings.HasSuffix(k, ":")
	k = strings.TrimSuffix(k, ":")
	if !ok || k == "" {
		return "", nil, cli.UsageError(fmt.Sprintf("%q: expected KEY=VALUE or KEY:=JSON", p))
	}
	if raw {
		if !json.Valid([]byte(v)) {
			return "", nil, cli.UsageError(fmt.Sprintf("%s:=%s: the value is not JSON (a string is quoted: %s:='\"text\"')", k, v, k))
		}
		return k, json.RawMessage(v), nil
	}
	if v == "true" || v == "false" || v == "null" || (v != "" && strings.ContainsAny(v[:1], "-0123456789") && json.Valid([]byte(v))) {
		return k, json.RawMessage(v), nil
	}
	s, err := json.Marshal(v)
	return k, s, err
}
