//go:build !unix

package cluster

import (
	"os"
	"time"
)

// lockShared does nothing where there is no flock: bbolt's own lock
// refuses a second node when it opens the file.
func lockShared(*os.File, time.Duration) error { return nil }
