package main

import "testing"

// TestEntryStatsOf reads the group commit histogram's sum and count from a
// Prometheus text exposition, and nothing from one without it.
func TestEntryStatsOf(t *testing.T) {
	text := `# HELP regent_raft_entry_commands Commands per raft entry.
# TYPE regent_raft_entry_commands histogram
regent_raft_entry_commands_bucket{le="1"} 3
regent_raft_entry_commands_bucket{le="+Inf"} 10
regent_raft_entry_commands_sum 412
regent_raft_entry_commands_count 10
regent_raft_commands_deferred_total 0
`
	if sum, n := entryStatsOf(text); sum != 412 || n != 10 {
		t.Fatalf("sum %v count %v", sum, n)
	}
	if sum, n := entryStatsOf("go_goroutines 12\n"); sum != 0 || n != 0 {
		t.Fatalf("without the histogram: %v %v", sum, n)
	}
}
