package vm

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestSystemGCTakesOnlyThisServersDomains: garbage collection (Domains,
// ScrubDomain) takes only the domains tagged with the server the agent is
// registered as. An agent registered under a new server id leaves the
// domains it made as another server alone; a domain an older agent made
// (no server tag) is left alone until its VM is converged again, which
// tags it.
func TestSystemGCTakesOnlyThisServersDomains(t *testing.T) {
	c := needLibvirt(t)
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := systemBuilder(t, c, c, e, e.config())
	spec := testSpec(e)
	name := b.DomainName(spec)
	collected := func(b *Builder) bool {
		t.Helper()
		doms, err := b.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(doms, name)
	}
	// Defined as an older agent did: no server tag.
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build: %v", err)
	}
	b.SetServerID(1)
	if collected(b) {
		t.Error("a domain without a server tag is collectable")
	}
	if err := b.ScrubDomain(ctx, name); err == nil {
		t.Error("ScrubDomain took a domain without a server tag")
	}
	// Its VM's converge tags it.
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if !collected(b) {
		t.Error("a domain tagged with this server is not collectable")
	}
	// The agent registered under a new server id.
	other, err := New(e.config(), c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	other.SetServerID(2)
	if collected(other) {
		t.Error("an agent registered as server 2 collects server 1's domain")
	}
	if err := other.ScrubDomain(ctx, name); err == nil {
		t.Error("ScrubDomain of server 2 took server 1's domain")
	}
	wantState(t, ctx, b, spec, StateRunning)
	if err := b.ScrubDomain(ctx, name); err != nil {
		t.Fatalf("scrub by its own server: %v", err)
	}
}
