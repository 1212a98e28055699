// Package logx holds what the controller's and the agent's go-hclog
// loggers share.
package logx

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/hashicorp/go-hclog"
)

// Durations wraps l so that a value among the key/value pairs of a log line
// (its own and those of With) that has a String method but no JSON or text
// form of its own is written as its String, as the text format writes it:
// a time.Duration is "1.5ms", not a bare number of nanoseconds a log
// pipeline cannot tell from milliseconds, and raft's own values are what
// its text lines show ("Node at 10.0.0.1:8300 [Leader]" for the node that
// enters a state, not its exported fields {"RestoreCommittedLogs":false};
// a suffrage "Voter", not 0). Errors are left to hclog, which writes their
// Error. Loggers derived with Named, ResetNamed and With keep the wrapping,
// so raft's lines (it gets a Named logger) are covered too.
func Durations(l hclog.Logger) hclog.Logger {
	if _, ok := l.(durations); ok {
		return l
	}
	return durations{l}
}

type durations struct{ hclog.Logger }

// text is v's String when the JSON format would not write v as that.
func text(v any) (string, bool) {
	switch v.(type) {
	case error, json.Marshaler, encoding.TextMarshaler:
		return "", false
	}
	s, ok := v.(fmt.Stringer)
	if !ok {
		return "", false
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return "", false
	}
	return s.String(), true
}

// texts returns args with every such value as its text, args itself when
// there is none.
func texts(args []any) []any {
	var out []any
	for i := 1; i < len(args); i += 2 {
		s, ok := text(args[i])
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = s
	}
	if out == nil {
		return args
	}
	return out
}

func (d durations) Log(level hclog.Level, msg string, args ...any) {
	d.Logger.Log(level, msg, texts(args)...)
}
func (d durations) Trace(msg string, args ...any) { d.Logger.Trace(msg, texts(args)...) }
func (d durations) Debug(msg string, args ...any) { d.Logger.Debug(msg, texts(args)...) }
func (d durations) Info(msg string, args ...any)  { d.Logger.Info(msg, texts(args)...) }
func (d durations) Warn(msg string, args ...any)  { d.Logger.Warn(msg, texts(args)...) }
func (d durations) Error(msg string, args ...any) { d.Logger.Error(msg, texts(args)...) }

func (d durations) With(args ...any) hclog.Logger    { return durations{d.Logger.With(texts(args)...)} }
func (d durations) Named(name string) hclog.Logger   { return durations{d.Logger.Named(name)} }
func (d durations) ResetNamed(n string) hclog.Logger { return durations{d.Logger.ResetNamed(n)} }
