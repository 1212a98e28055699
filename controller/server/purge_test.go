package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestLeaderPurgesReleasedAddresses: a released (soft-deallocated) address
// stays taken for keep_deallocated_ips_for, then the leader's purge command
// frees it; an address released later is kept until its own time comes.
func TestLeaderPurgesReleasedAddresses(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		// 4 s, the second release 2 s after the first: each check below
		// has 2 s of slack (a loaded machine under -race needs it).
		c.KeepDeallocatedIPsFor = "4s"
		c.PurgeInterval = 100 * time.Millisecond
	}})
	cl := n.Server.Cluster()
	apply := func(typ fsm.MessageType, payload any) any {
		t.Helper()
		cmd, err := fsm.NewCommand(typ, time.Now(), fsm.Actor{UserID: 1, MemberID: 1}, payload)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := cmd.Encode()
		resp, _, err := cl.Apply(context.Background(), data)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.(fsm.Result)
		if r.Err != nil {
			t.Fatalf("command %d: %v", typ, r.Err)
		}
		return r.Value
	}
	block := apply(fsm.IPBlockCreateType, &wire.IPBlock{MemberID: 1, Dialect: wire.DialectMelange, CIDR: "10.20.0.0/28"}).(*wire.IPBlock)
	first := apply(fsm.IPAddressAllocateType, &wire.IPAddress{BlockID: block.ID}).(*wire.IPAddress)
	second := apply(fsm.IPAddressAllocateType, &wire.IPAddress{BlockID: block.ID}).(*wire.IPAddress)
	apply(fsm.IPAddressReleaseType, state.IPRef{ID: first.ID})
	time.Sleep(2 * time.Second)
	apply(fsm.IPAddressReleaseType, state.IPRef{ID: second.ID})

	held := func(id uint64) bool { _, ok := n.Server.Store().Read().IPAddress(id); return ok }
	if !held(first.ID) || !held(second.ID) {
		t.Fatal("released addresses must stay taken until purged")
	}
	deadline := time.Now().Add(30 * time.Second)
	for held(first.ID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if held(first.ID) {
		t.Fatal("the leader did not purge an address released longer ago than keep_deallocated_ips_for")
	}
	if !held(second.ID) {
		t.Fatal("an address released more recently than keep_deallocated_ips_for was purged with the first")
	}
	for held(second.ID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if held(second.ID) {
		t.Fatal("the second released address was never purged")
	}
	// The purged addresses are free again: the lowest comes back first.
	again := apply(fsm.IPAddressAllocateType, &wire.IPAddress{BlockID: block.ID}).(*wire.IPAddress)
	if again.Address != first.Address {
		t.Fatalf("after the purge the next free address is %s, want %s", again.Address, first.Address)
	}
}
