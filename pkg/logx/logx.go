// Package logx holds what the controller's and the agent's go-hclog
// loggers share.
package logx

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// Durations wraps l so that a time.Duration value among the key/value
// pairs of a log line (its own and those of With) is written as its text,
// "1.5ms": the text format shows it so already, but the JSON format would
// write a bare number of nanoseconds, which a log pipeline cannot tell
// from milliseconds. Loggers derived with Named, ResetNamed and With keep
// the wrapping, so raft's lines (it gets a Named logger) are covered too.
func Durations(l hclog.Logger) hclog.Logger {
	if _, ok := l.(durations); ok {
		return l
	}
	return durations{l}
}

type durations struct{ hclog.Logger }

// texts returns args with every time.Duration value as its text, args
// itself when there is none.
func texts(args []any) []any {
	var out []any
	for i := 1; i < len(args); i += 2 {
		d, ok := args[i].(time.Duration)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = d.String()
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
