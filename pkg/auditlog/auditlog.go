// Package auditlog appends lines (JSON records) to a file for an audit
// trail, without making the callers wait for the disk: a line is queued in
// memory and a background goroutine writes everything queued in one write
// call (group write), so a burst of requests costs a few writes, not one
// each. Reopen starts a new file at the path (after logrotate moved the old
// one away); Close writes what is queued and closes the file.
//
// What is queued but not yet written when the process dies is lost (at
// most a few milliseconds of lines). A batch the file refuses (a full
// disk) is counted as failed and not tried again; while a write hangs (a
// stuck network file system) at most MaxQueued bytes wait, and further
// lines are dropped and counted, so the disk never takes the memory of
// the process. A batch written in part is followed by a newline, so the
// next line starts a line of its own.
package auditlog

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// MaxQueued bounds the bytes waiting to be written.
const MaxQueued = 64 << 20

// Writer appends lines to one file.
type Writer struct {
	mu      sync.Mutex
	queue   []byte
	spare   []byte
	pending uint64 // lines in queue
	busy    bool   // the loop is writing a batch
	f       *os.File
	path    string
	closed  bool
	torn    bool // the last write stopped inside a line (loop and Close only)
	kick    chan struct{}
	done    chan struct{}
	settled *sync.Cond // signalled when a batch is written

	// OnChange, when set (before the first Append), is called when writes
	// start failing (with the error) and when they succeed again (nil).
	OnChange func(error)

	written  atomic.Uint64
	dropped  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Value // errBox: the last write's error
}

// Open opens (creates, mode 0600) path for appending and starts the writer.
func Open(path string) (*Writer, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path, kick: make(chan struct{}, 1), done: make(chan struct{})}
	w.settled = sync.NewCond(&w.mu)
	w.lastErr.Store(errBox{})
	go w.loop()
	return w, nil
}

func open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

// Path is the file the writer appends to.
func (w *Writer) Path() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.path
}

// Append queues line (a newline is added) and returns at once. After
// Close, or with MaxQueued bytes waiting, the line is dropped (counted).
func (w *Writer) Append(line []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.queue)+len(line)+1 > MaxQueued {
		w.dropped.Add(1)
		return
	}
	w.queue = append(append(w.queue, line...), '\n')
	w.pending++
	w.kickLocked()
}

// kickLocked wakes the loop (w.mu held, so Close cannot close kick meanwhile).
func (w *Writer) kickLocked() {
	if w.closed {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	for range w.kick {
		w.mu.Lock()
		buf, n, f := w.queue, w.pending, w.f
		w.queue, w.spare, w.pending, w.busy = w.spare[:0], nil, 0, true
		w.mu.Unlock()
		w.write(f, buf, n)
		w.mu.Lock()
		if cap(buf) <= 1<<20 { // keep a moderate buffer for the next round
			w.spare = buf[:0]
		}
		w.busy = false
		w.settled.Broadcast()
		w.mu.Unlock()
	}
}

func (w *Writer) write(f *os.File, buf []byte, n uint64) {
	if len(buf) == 0 {
		return
	}
	if w.torn {
		buf = append([]byte{'\n'}, buf...)
	}
	k, err := f.Write(buf)
	w.torn = err != nil && k > 0 && k < len(buf) && buf[k-1] != '\n'
	if err != nil {
		w.failures.Add(n)
	} else {
		w.written.Add(n)
	}
	prev := w.lastErr.Swap(errBox{err}).(errBox).err
	if (prev == nil) != (err == nil) && w.OnChange != nil {
		w.OnChange(err)
	}
}

// errBox lets atomic.Value hold a nil error.
type errBox struct{ err error }

// Err is the error of the last write, nil if it succeeded.
func (w *Writer) Err() error { return w.lastErr.Load().(errBox).err }

// Counts are the lines written, the lines a write failed for, and the
// lines dropped (queue full, or appended after Close).
func (w *Writer) Counts() (written, failed, dropped uint64) {
	return w.written.Load(), w.failures.Load(), w.dropped.Load()
}

// Sync waits until every line appended before it has been handed to the
// file (written, or counted as failed).
func (w *Writer) Sync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncLocked()
}

func (w *Writer) syncLocked() {
	for (w.pending > 0 || w.busy) && !w.closed {
		w.kickLocked()
		w.settled.Wait()
	}
}

// Reopen writes what is queued to the current file, closes it and opens
// path (the same name, after a rotation moved the file away, or another).
// On error the writer keeps the old file.
func (w *Writer) Reopen(path string) error {
	f, err := open(path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.syncLocked()
	if w.closed {
		w.mu.Unlock()
		f.Close()
		return errors.New("auditlog: closed")
	}
	// Nothing is queued or being written: the loop takes the new file
	// with its next batch.
	old := w.f
	w.f, w.path = f, path
	w.mu.Unlock()
	return old.Close()
}

// Close writes what is queued and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.syncLocked()
	if w.closed { // another Close finished meanwhile
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	close(w.kick)
	w.mu.Unlock()
	<-w.done
	// Lines appended while the last batch was written.
	w.mu.Lock()
	buf, n := w.queue, w.pending
	w.queue, w.pending = nil, 0
	w.mu.Unlock()
	w.write(w.f, buf, n)
	return w.f.Close()
}
