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
// the process, and neither Reopen nor Close (bounded by its context) waits
// for the hung write. A batch written in part is followed by a newline, so
// the next line starts a line of its own.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// MaxQueued bounds the bytes waiting to be written.
const MaxQueued = 64 << 20

// Writer appends lines to one file.
type Writer struct {
	mu       sync.Mutex
	queue    []byte
	spare    []byte
	pending  uint64 // lines in queue
	busy     bool   // the loop is writing a batch
	f        *os.File
	path     string
	retired  []*os.File // files Reopen replaced while a batch was written to them
	closed   bool
	kick     chan struct{} // closed by Close: the loop writes what is left and stops
	done     chan struct{}
	settled  *sync.Cond // signalled when a batch is written
	tornOn   *os.File   // the file whose last write stopped inside a line (loop only)
	closeErr error      // the file's Close error, set before done is closed

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

// loop writes a batch per kick; when Close has closed kick it writes what
// is left, closes the file and stops.
func (w *Writer) loop() {
	defer close(w.done)
	for {
		_, open := <-w.kick
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
		retired := w.retired
		w.retired = nil
		w.settled.Broadcast()
		w.mu.Unlock()
		for _, old := range retired {
			old.Close()
		}
		if !open {
			w.closeErr = f.Close()
			return
		}
	}
}

func (w *Writer) write(f *os.File, buf []byte, n uint64) {
	if len(buf) == 0 {
		return
	}
	if w.tornOn == f {
		buf = append([]byte{'\n'}, buf...)
	}
	k, err := f.Write(buf)
	w.tornOn = nil
	if err != nil && k > 0 && k < len(buf) && buf[k-1] != '\n' {
		w.tornOn = f
	}
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
// file (written, or counted as failed), or the writer is closed.
func (w *Writer) Sync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for (w.pending > 0 || w.busy) && !w.closed {
		w.kickLocked()
		w.settled.Wait()
	}
}

// Reopen opens path (the same name, after a rotation moved the file away,
// or another) and sends the lines not yet written there. It does not wait
// for a write in progress: that one finishes into the old file, which is
// closed afterwards. On error the writer keeps the old file.
func (w *Writer) Reopen(path string) error {
	f, err := open(path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		f.Close()
		return errors.New("auditlog: closed")
	}
	old := w.f
	w.f, w.path = f, path
	if w.busy {
		w.retired = append(w.retired, old)
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	return old.Close()
}

// Close writes what is queued and closes the file. If ctx ends first (a
// write that does not return), Close returns an error saying how many
// lines wait; they are written if the write ever returns.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.kick)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return w.closeErr
	case <-ctx.Done():
	}
	select {
	case <-w.done: // both were ready
		return w.closeErr
	default:
	}
	w.mu.Lock()
	n, path := w.pending, w.path
	w.mu.Unlock()
	return fmt.Errorf("auditlog: a write to %s has not returned; %d more lines wait: %w", path, n, ctx.Err())
}
