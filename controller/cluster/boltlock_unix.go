//go:build unix

package cluster

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockShared takes a shared flock on f, waiting up to timeout while another
// process holds bbolt's exclusive one (bbolt locks the file with flock
// too). It is released when f is closed.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}
