//go:build race

package state

// raceEnabled: the race detector is on, and sync.Pool drops some of what is
// put back, so allocation counts are higher (the allocation tests skip).
const raceEnabled = true
