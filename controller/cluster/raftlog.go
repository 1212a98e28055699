package cluster

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// peerFailures are the lines raft's leader logs at every retry to a peer it
// cannot reach: with the heartbeat backoff capped at half the heartbeat
// timeout, about three error lines a second for each peer that is down,
// for as long as it is (dead_server_cleanup, or ever when it cannot be
// removed).
var peerFailures = map[string]bool{"failed to heartbeat to": true, "failed to appendEntries to": true}

// repeatEvery is how often a peer failure line that keeps recurring is
// logged, with the number of times it was left out.
const repeatEvery = time.Minute

// quietRepeats wraps raft's logger so that each of peerFailures is logged
// the first time for a peer and then at most once every repeatEvery while
// it recurs, with "repeated" counting the lines left out since the last
// one. A failure after repeatEvery without one is logged at once.
func quietRepeats(l hclog.Logger) hclog.Logger {
	return &repeatLogger{Logger: l, seen: map[string]*repeat{}, now: time.Now}
}

type repeatLogger struct {
	hclog.Logger
	mu   sync.Mutex
	seen map[string]*repeat // by message and peer
	now  func() time.Time
}

type repeat struct {
	logged, last time.Time
	left         int // left out since logged
}

// pass reports whether the line msg with args is to be logged, and the
// number of lines left out before it.
func (l *repeatLogger) pass(msg string, args []any) (bool, int) {
	if !peerFailures[msg] {
		return true, 0
	}
	key := msg
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "peer" {
			key += "\x00" + fmt.Sprint(args[i+1])
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.seen[key]
	if r == nil || now.Sub(r.last) >= repeatEvery || now.Sub(r.logged) >= repeatEvery {
		left := 0
		if r != nil && now.Sub(r.last) < repeatEvery {
			left = r.left
		}
		l.seen[key] = &repeat{logged: now, last: now}
		return true, left
	}
	r.last = now
	r.left++
	return false, 0
}

func (l *repeatLogger) Log(level hclog.Level, msg string, args ...any) {
	if ok, left := l.pass(msg, args); ok {
		if left > 0 {
			args = append(args, "repeated", left)
		}
		l.Logger.Log(level, msg, args...)
	}
}

func (l *repeatLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
