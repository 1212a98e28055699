// Package systest holds Regent's system tests: they build the real
// regent-controller binary once, run clusters of it as separate processes on
// loopback ports (each node with its own temporary data dir), and drive them
// only through the HTTP API, the way an operator or a tenant would. Killing
// a process with SIGKILL is the failure they inject.
//
// The tests need no root and no daemons. Run them with
//
//	go test -v -count=1 ./controller/systest/
//
// Each node's stderr is captured to a file and printed when a test fails.
// The package has no non-test code besides this comment.
package systest
