package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regentcloud/regent/controller/server"
)

// guidePath is the tenant's getting-started guide, whose command blocks
// TestGuide runs.
const guidePath = "../../docs/getting-started.md"

// The addresses the guide shows, those of `make run`: the test replaces them
// with its controller's.
const (
	guideHTTPAddr = "127.0.0.1:8080"
	guideDNSPort  = "8053"
)

// guideStep is one command of the guide with the output shown under it.
type guideStep struct {
	line    int      // in the guide, for messages
	cmd     string   // continuation lines joined
	heredoc []string // the lines of a <<EOF document
	want    []string // the expected output
}

// parseGuide returns the commands of the guide's tested blocks (```sh, not
// ```sh untested), in order, and the number of tested blocks.
func parseGuide(doc string) ([]guideStep, int, error) {
	var steps []guideStep
	lines := strings.Split(doc, "\n")
	blocks := 0
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		f := strings.Fields(info)
		tested := len(f) > 0 && f[0] == "sh" && !strings.Contains(info, "untested")
		// Find the block's end.
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		if end == len(lines) {
			return nil, 0, fmt.Errorf("line %d: a block that does not end", i+1)
		}
		if !tested {
			i = end
			continue
		}
		blocks++
		var cur *guideStep
		for j := i + 1; j < end; j++ {
			l := lines[j]
			cmd, isCmd := strings.CutPrefix(l, "$ ")
			if !isCmd {
				if cur == nil {
					return nil, 0, fmt.Errorf("line %d: output before any command: %q", j+1, l)
				}
				cur.want = append(cur.want, l)
				continue
			}
			steps = append(steps, guideStep{line: j + 1, cmd: cmd})
			cur = &steps[len(steps)-1]
			for strings.HasSuffix(cur.cmd, `\`) && j+1 < end {
				j++
				cur.cmd = strings.TrimSuffix(cur.cmd, `\`) + " " + strings.TrimSpace(lines[j])
			}
			if m := heredocRE.FindStringSubmatch(cur.cmd); m != nil {
				for j++; j < end && lines[j] != m[3]; j++ {
					cur.heredoc = append(cur.heredoc, lines[j])
				}
				if j == end {
					return nil, 0, fmt.Errorf("line %d: the heredoc does not end with %s", cur.line, m[3])
				}
			}
		}
		i = end
	}
	return steps, blocks, nil
}

var (
	heredocRE = regexp.MustCompile(`^cat > (\S+) <<(['"]?)([A-Z]+)['"]?$`)
	captureRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)$`)
	assignRE  = regexp.MustCompile(`^(?:export )?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	varRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
)

// guide runs the guide's commands against a controller of its own.
type guide struct {
	t       *testing.T
	httpURL string // http://127.0.0.1:PORT
	dnsAddr string
	vars    map[string]string
}

// TestGuide runs every tested command of docs/getting-started.md and checks
// its exit status and output as the guide shows them (the conventions are
// in the guide's last section). It fails when a command of the guide stops
// working or prints something else.
func TestGuide(t *testing.T) {
	doc, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	steps, blocks, err := parseGuide(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	// A change of the conventions must not leave the guide untested.
	if blocks < 10 || len(steps) < 60 {
		t.Fatalf("only %d tested blocks with %d commands in %s", blocks, len(steps), guidePath)
	}
	g := startGuide(t)
	for _, s := range steps {
		if !g.step(s) {
			return
		}
	}
}

func startGuide(t *testing.T) *guide {
	t.Helper()
	s, tok := startNode(t, "127.0.0.1:0")
	root := []byte(tok + "\n")
	// The guide runs in a directory like the repository's after make run:
	// regentctl finds ./data/root.token there.
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "data", server.RootTokenFile), root, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	t.Setenv("REGENT_ADDR", s.URL())
	t.Setenv("REGENT_TOKEN", "")
	t.Setenv("REGENT_CACERT", "")
	return &guide{t: t, httpURL: s.URL(), dnsAddr: s.DNSAddr(), vars: map[string]string{}}
}

// step runs one command and checks it; false stops the test (later
// commands depend on this one).
func (g *guide) step(s guideStep) bool {
	t := g.t
	t.Helper()
	where := fmt.Sprintf("%s:%d: $ %s", filepath.Base(guidePath), s.line, s.cmd)
	out, code, err := g.exec(s)
	if err != nil {
		t.Errorf("%s\n%v", where, err)
		return false
	}
	wantFail := false
	for _, w := range s.want {
		if strings.HasPrefix(w, "regentctl: ") {
			wantFail = true
		}
	}
	switch {
	case wantFail && code == 0:
		t.Errorf("%s\nsucceeded, the guide shows an error; it printed:\n%s", where, out)
		return false
	case !wantFail && code != 0:
		t.Errorf("%s\nexit %d:\n%s", where, code, out)
		return false
	}
	if err := matchOutput(s.want, out); err != nil {
		t.Errorf("%s\n%v\nit printed:\n%s", where, err, out)
		return false
	}
	return true
}

// exec runs a step: an assignment, a heredoc or a pipeline. It returns what
// the command printed (stdout, then stderr) and its exit status.
func (g *guide) exec(s guideStep) (string, int, error) {
	if m := heredocRE.FindStringSubmatch(s.cmd); m != nil {
		body := strings.Join(s.heredoc, "\n") + "\n"
		if m[2] == "" {
			var err error
			if body, err = g.expand(body); err != nil {
				return "", 0, err
			}
		}
		return "", 0, os.WriteFile(m[1], []byte(body), 0o600)
	}
	if m := captureRE.FindStringSubmatch(s.cmd); m != nil {
		out, errOut, code, err := g.pipeline(m[2])
		if err != nil || code != 0 {
			return out + errOut, code, err
		}
		v := strings.TrimRight(out, "\n")
		if v == "" || v == "null" {
			return out + errOut, 1, fmt.Errorf("%s is %q: the command printed no value", m[1], v)
		}
		g.vars[m[1]] = v
		return errOut, 0, nil
	}
	if m := assignRE.FindStringSubmatch(s.cmd); m != nil {
		w, err := g.words(m[2])
		if err != nil {
			return "", 0, err
		}
		if len(w) != 1 || w[0].op {
			return "", 0, fmt.Errorf("the value of %s is not one word", m[1])
		}
		v := w[0].text
		g.vars[m[1]] = v
		switch m[1] {
		case "REGENT_TOKEN", "REGENT_CACERT":
			g.t.Setenv(m[1], v)
		case "REGENT_ADDR":
			g.t.Setenv(m[1], g.rewriteURL(v))
		}
		return "", 0, nil
	}
	out, errOut, code, err := g.pipeline(s.cmd)
	return out + errOut, code, err
}

// pipeline runs "CMD | CMD ...". Unlike a shell, a stage that fails fails
// the pipeline (pipefail).
func (g *guide) pipeline(cmd string) (stdout, stderr string, code int, err error) {
	w, err := g.words(cmd)
	if err != nil {
		return "", "", 0, err
	}
	var stages [][]string
	cur := []string{}
	for _, x := range w {
		if x.op && x.text == "|" {
			stages = append(stages, cur)
			cur = []string{}
			continue
		}
		if x.op {
			return "", "", 0, fmt.Errorf("the test does not run %q", x.text)
		}
		cur = append(cur, x.text)
	}
	stages = append(stages, cur)
	var in, errs bytes.Buffer
	for _, args := range stages {
		if len(args) == 0 {
			return "", "", 0, fmt.Errorf("an empty command in %q", cmd)
		}
		var out, errOut bytes.Buffer
		c, err := g.command(args, &in, &out, &errOut)
		errs.Write(errOut.Bytes())
		if err != nil {
			return "", errs.String(), 0, err
		}
		if c != 0 {
			return out.String(), errs.String(), c, nil
		}
		in = out
	}
	return in.String(), errs.String(), 0, nil
}

// command runs one command of a pipeline: only those the guide's last
// section lists.
func (g *guide) command(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	switch args[0] {
	case "regentctl":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return run(ctx, args[1:], stdin, stdout, stderr), nil
	case "echo":
		fmt.Fprintln(stdout, strings.Join(args[1:], " "))
		return 0, nil
	case "jq":
		return jq(args[1:], stdin, stdout, stderr)
	case "curl":
		return g.curl(args[1:], stdout, stderr)
	case "dig":
		return g.dig(args[1:], stdout)
	}
	return 0, fmt.Errorf("the test does not run %q: use a command the guide's last section lists, or an untested block", args[0])
}

func (g *guide) rewriteURL(u string) string {
	return strings.Replace(u, "http://"+guideHTTPAddr, g.httpURL, 1)
}

// curl runs curl -s [-X METHOD] [-H HEADER]... [-d BODY] URL.
func (g *guide) curl(args []string, stdout, stderr io.Writer) (int, error) {
	method, url := "", ""
	var body io.Reader
	hdr := http.Header{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-s":
		case (a == "-X" || a == "-H" || a == "-d") && i+1 < len(args):
			i++
			switch a {
			case "-X":
				method = args[i]
			case "-H":
				k, v, ok := strings.Cut(args[i], ":")
				if !ok {
					return 0, fmt.Errorf("curl -H %q: not a header", args[i])
				}
				hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			case "-d":
				body = strings.NewReader(args[i])
				if method == "" {
					method = http.MethodPost
				}
			}
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			return 0, fmt.Errorf("the test's curl does not take %q", a)
		}
	}
	if !strings.HasPrefix(url, "http://"+guideHTTPAddr+"/") {
		return 0, fmt.Errorf("curl %q: the guide's URLs start with http://%s/", url, guideHTTPAddr)
	}
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, g.rewriteURL(url), body)
	if err != nil {
		return 0, err
	}
	req.Header = hdr
	cl := &http.Client{Timeout: 2 * time.Minute}
	resp, err := cl.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "curl: %v\n", err)
		return 7, nil
	}
	defer resp.Body.Close()
	_, err = io.Copy(stdout, resp.Body)
	return 0, err
}

// dig runs dig @127.0.0.1 -p 8053 NAME TYPE +short against the test
// controller's DNS server, printing the answers' data as dig does.
func (g *guide) dig(args []string, stdout io.Writer) (int, error) {
	if len(args) != 6 || args[0] != "@127.0.0.1" || args[1] != "-p" || args[2] != guideDNSPort || args[5] != "+short" {
		return 0, fmt.Errorf("the test runs dig @127.0.0.1 -p %s NAME TYPE +short only", guideDNSPort)
	}
	qtype, ok := dns.StringToType[strings.ToUpper(args[4])]
	if !ok {
		return 0, fmt.Errorf("dig: unknown type %q", args[4])
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(args[3]), qtype)
	// The DNS server follows the state a moment after a write's commit
	// (it rebuilds the changed zones when it sees the change): a query sent
	// at once may miss the change, where a person typing dig would not.
	// Ask again for up to 2 s while the answer is empty.
	c := &dns.Client{Timeout: 5 * time.Second}
	start := time.Now()
	var r *dns.Msg
	for {
		var err error
		if r, _, err = c.Exchange(m, g.dnsAddr); err != nil {
			return 0, fmt.Errorf("dig: %v", err)
		}
		if len(r.Answer) > 0 || time.Since(start) > 2*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d > 5*time.Millisecond {
		g.t.Logf("dig %s %s: answered after %v (rcode %s)", args[3], args[4], d.Round(time.Millisecond), dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		fmt.Fprintln(stdout, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return 0, nil
}

// matchOutput checks that each expected line appears, in order, among the
// output's lines: runs of spaces compare as one, a word <...> stands for
// one or more words, a line "..." for any lines.
func matchOutput(want []string, out string) error {
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := range got {
		got[i] = strings.Join(strings.Fields(got[i]), " ")
	}
	at := 0
	for _, w := range want {
		if strings.TrimSpace(w) == "..." || strings.TrimSpace(w) == "" {
			continue
		}
		re := lineRE(w)
		for at < len(got) && !re.MatchString(got[at]) {
			at++
		}
		if at == len(got) {
			return fmt.Errorf("no line (after the ones matched before) matches %q", w)
		}
		at++
	}
	return nil
}

var placeholderRE = regexp.MustCompile(`<[^<> ]+>`)

func lineRE(want string) *regexp.Regexp {
	words := strings.Fields(want)
	for i, w := range words {
		// A placeholder may stand inside a word: "<id>." is a number and a dot.
		var b strings.Builder
		last := 0
		for _, m := range placeholderRE.FindAllStringIndex(w, -1) {
			b.WriteString(regexp.QuoteMeta(w[last:m[0]]) + `.+?`)
			last = m[1]
		}
		b.WriteString(regexp.QuoteMeta(w[last:]))
		words[i] = b.String()
	}
	return regexp.MustCompile(`^` + strings.Join(words, " ") + `$`)
}

// jq runs jq [-r] PATH, PATH made of .key, [N] and [] steps.
func jq(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	raw := false
	if len(args) > 0 && args[0] == "-r" {
		raw, args = true, args[1:]
	}
	if len(args) != 1 {
		return 0, fmt.Errorf("the test runs jq [-r] PATH only, not jq %q", args)
	}
	dec := json.NewDecoder(stdin)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		fmt.Fprintf(stderr, "jq: the input is not JSON: %v\n", err)
		return 2, nil
	}
	vals, err := jqPath(args[0], []any{v})
	if err != nil {
		return 0, err
	}
	for _, v := range vals {
		if s, ok := v.(string); ok && raw {
			fmt.Fprintln(stdout, s)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		fmt.Fprintln(stdout, string(b))
	}
	return 0, nil
}

func jqPath(path string, vals []any) ([]any, error) {
	if !strings.HasPrefix(path, ".") {
		return nil, fmt.Errorf("jq %q: the test takes a path starting with .", path)
	}
	p := path
	for p != "" && p != "." {
		var next []any
		switch {
		case strings.HasPrefix(p, "[]") || strings.HasPrefix(p, ".[]"):
			p = p[strings.Index(p, "]")+1:]
			for _, v := range vals {
				switch v := v.(type) {
				case []any:
					next = append(next, v...)
				case map[string]any:
					for _, x := range v {
						next = append(next, x)
					}
				default:
					return nil, fmt.Errorf("jq %q: cannot iterate over %v", path, v)
				}
			}
		case strings.HasPrefix(p, "[") || strings.HasPrefix(p, ".["):
			end := strings.Index(p, "]")
			if end < 0 {
				return nil, fmt.Errorf("jq %q: no ]", path)
			}
			n, err := strconv.Atoi(p[strings.Index(p, "[")+1 : end])
			if err != nil {
				return nil, fmt.Errorf("jq %q: %v", path, err)
			}
			p = p[end+1:]
			for _, v := range vals {
				l, _ := v.([]any)
				if n < len(l) {
					next = append(next, l[n])
				} else {
					next = append(next, nil)
				}
			}
		case strings.HasPrefix(p, "."):
			key := varRE.FindString(p[1:])
			if key == "" {
				return nil, fmt.Errorf("jq %q: the test takes .key, [N] and [] only", path)
			}
			p = p[1+len(key):]
			for _, v := range vals {
				m, _ := v.(map[string]any)
				next = append(next, m[key])
			}
		default:
			return nil, fmt.Errorf("jq %q: the test takes .key, [N] and [] only", path)
		}
		vals = next
	}
	return vals, nil
}

// word is a word of a command line, or an operator (|, >, <, ;, &).
type word struct {
	text string
	op   bool
}

// words splits a command line as a shell does: quotes, backslashes, $VAR and
// ${VAR} (an unknown variable is an error), # comments; | and the other
// operators are words of their own. $(...) is not taken here.
func (g *guide) words(s string) ([]word, error) {
	var out []word
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			out = append(out, word{text: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			return out, nil
		case strings.IndexByte("|<>;&()`", c) >= 0:
			flush()
			if c == '(' || c == ')' || c == '`' {
				return nil, fmt.Errorf("the test does not run %q (only VAR=$(...) as a whole command)", s)
			}
			out = append(out, word{text: string(c), op: true})
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("an unclosed ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
					i++
					cur.WriteByte(s[i])
				case s[i] == '$':
					n, v, err := g.variable(s[i:])
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					i += n - 1
				default:
					cur.WriteByte(s[i])
				}
			}
			if i == len(s) {
				return nil, fmt.Errorf(`an unclosed " in %q`, s)
			}
		case c == '$':
			n, v, err := g.variable(s[i:])
			if err != nil {
				return nil, err
			}
			cur.WriteString(v) // unquoted values hold no spaces in the guide
			i += n - 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return out, nil
}

// variable expands the $VAR or ${VAR} at the start of s and returns its
// length and value.
func (g *guide) variable(s string) (int, string, error) {
	var name string
	n := 0
	if strings.HasPrefix(s, "${") {
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return 0, "", fmt.Errorf("an unclosed ${ in %q", s)
		}
		name, n = s[2:end], end+1
	} else {
		name = varRE.FindString(s[1:])
		n = 1 + len(name)
	}
	if name == "" {
		return 0, "", fmt.Errorf("a $ that names no variable in %q (the test takes $VAR and ${VAR})", s)
	}
	v, ok := g.vars[name]
	if !ok {
		return 0, "", fmt.Errorf("$%s is not set by an earlier command of the guide", name)
	}
	return n, v, nil
}

// expand expands $VAR and ${VAR} in a heredoc.
func (g *guide) expand(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		n, v, err := g.variable(s[i:])
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i += n - 1
	}
	return b.String(), nil
}
