package promcheck

import (
	"fmt"
	"slices"
	"strings"
)

// expr is what the checks need of a PromQL expression.
type expr struct {
	selectors []*selector
	divides   bool // a binary / (rate over rate: not a per-second figure)
}

// selector is a vector selector and the calls and aggregations around it,
// outermost first.
type selector struct {
	name     string
	matchers []matcher
	frames   []frame
}

type matcher struct{ label, op, value string }

// frame is an open parenthesis: a function call or aggregation (fn), with
// the grouping labels of by (...), or a plain group (fn "").
type frame struct {
	fn       string
	grouping []string
	without  bool // grouping lists the labels dropped: without (...)
}

func (s *selector) job() string {
	for _, m := range s.matchers {
		if m.label == "job" && m.op == "=" {
			return m.value
		}
	}
	return ""
}

func (s *selector) within(fns ...string) bool {
	return slices.ContainsFunc(s.frames, func(f frame) bool { return slices.Contains(fns, f.fn) })
}

func (s *selector) suffix() string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(s.name, suf) {
			return suf
		}
	}
	return ""
}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tRange // [5m], [$__rate_interval]
	tOp    // ( ) { } , and operators
)

type token struct {
	kind tokKind
	s    string
}

func lex(src string) ([]token, error) {
	var out []token
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && c != '`' && j+1 < len(src) {
					j++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, token{tString, b.String()})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(src[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated range at %d", i)
			}
			out = append(out, token{tRange, src[i : i+j+1]})
			i += j + 1
		case isIdentStart(c):
			j := i
			for j < len(src) && isIdent(src[j]) {
				j++
			}
			out = append(out, token{tIdent, src[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(src) && (isIdent(src[j]) || src[j] == '.' || (src[j] == '-' || src[j] == '+') && (src[j-1] == 'e' || src[j-1] == 'E')) {
				j++
			}
			out = append(out, token{tNumber, src[i:j]})
			i = j
		default:
			op := string(c)
			if i+1 < len(src) {
				if two := src[i : i+2]; slices.Contains([]string{"=~", "!~", "!=", "==", ">=", "<="}, two) {
					op = two
				}
			}
			if !strings.Contains("(){},=!~<>+-*/%^", string(c)) {
				return nil, fmt.Errorf("unexpected %q at %d", c, i)
			}
			out = append(out, token{tOp, op})
			i += len(op)
		}
	}
	return out, nil
}

// Keywords that are not metric names.
var (
	groupingKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	otherKeywords    = []string{"bool", "and", "or", "unless", "offset", "atan2"}
)

func parse(src string) (*expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	e := &expr{}
	var stack []frame
	var pending *frame // an aggregation whose body "(" is still to come
	labelList := func(i int) ([]string, int, error) {
		if i >= len(toks) || toks[i].s != "(" {
			return nil, i, fmt.Errorf("expected ( after %s", toks[i-1].s)
		}
		var out []string
		for i++; i < len(toks) && toks[i].s != ")"; i++ {
			switch {
			case toks[i].kind == tIdent:
				out = append(out, toks[i].s)
			case toks[i].s != ",":
				return nil, i, fmt.Errorf("unexpected %q in a label list", toks[i].s)
			}
		}
		if i >= len(toks) {
			return nil, i, fmt.Errorf("unterminated label list")
		}
		return out, i + 1, nil
	}
	for i := 0; i < len(toks); {
		t := toks[i]
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1].s
		}
		switch {
		case t.kind == tIdent && slices.Contains(groupingKeywords, t.s):
			if (t.s == "group_left" || t.s == "group_right") && next != "(" {
				i++
				continue
			}
			labels, j, err := labelList(i + 1)
			if err != nil {
				return nil, err
			}
			if (t.s == "by" || t.s == "without") && pending == nil {
				// sum (...) by (x): kept simple, the grouping must come first
				return nil, fmt.Errorf("write %s (...) before the aggregation's body", t.s)
			}
			if t.s == "by" || t.s == "without" {
				pending.grouping, pending.without = labels, t.s == "without"
			}
			i = j
		case t.kind == tIdent && slices.Contains(otherKeywords, t.s):
			i++
		case t.kind == tIdent && slices.Contains(grouping, t.s) && (next == "by" || next == "without"):
			pending = &frame{fn: t.s}
			i++
		case t.kind == tIdent && next == "(":
			stack = append(stack, frame{fn: t.s})
			i += 2
		case t.kind == tIdent:
			s := &selector{name: t.s, frames: slices.Clone(stack)}
			i++
			if i < len(toks) && toks[i].s == "{" {
				for i++; i < len(toks) && toks[i].s != "}"; {
					if toks[i].s == "," {
						i++
						continue
					}
					if i+2 >= len(toks) || toks[i].kind != tIdent || toks[i+1].kind != tOp || toks[i+2].kind != tString {
						return nil, fmt.Errorf("%s: malformed matcher", s.name)
					}
					s.matchers = append(s.matchers, matcher{label: toks[i].s, op: toks[i+1].s, value: toks[i+2].s})
					i += 3
				}
				if i >= len(toks) {
					return nil, fmt.Errorf("%s: unterminated matchers", s.name)
				}
				i++
			}
			e.selectors = append(e.selectors, s)
		case t.s == "{":
			return nil, fmt.Errorf("a selector without a metric name")
		case t.s == "(":
			if pending != nil {
				stack = append(stack, *pending)
				pending = nil
			} else {
				stack = append(stack, frame{})
			}
			i++
		case t.s == ")":
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced )")
			}
			stack = stack[:len(stack)-1]
			i++
		default:
			if t.s == "/" {
				e.divides = true
			}
			i++
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("unbalanced (")
	}
	if len(e.selectors) == 0 && !strings.Contains(src, "time()") {
		return nil, fmt.Errorf("no metric in %q", src)
	}
	return e, nil
}
