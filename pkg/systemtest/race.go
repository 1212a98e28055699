//go:build race

package systemtest

// Race reports whether the binary was built with the race detector (go test
// -race). Tests that count allocations (the detector adds some) or sweep
// every route with bad input (five times slower under it) skip then; make
// test runs them again without it.
const Race = true
