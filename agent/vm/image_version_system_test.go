package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemNewImageVersionLeavesVMsAlone: a new version of a VM's image
// (a new sha256, here larger than the VM's disk) and then a broken one
// (its source gone) reach the spec of a running VM. Its drift repair
// (Build) neither imports the image nor grows the disk to the image's
// size, nor fails; a new VM gets the new version, at its size.
func TestSystemNewImageVersionLeavesVMsAlone(t *testing.T) {
	c := needLibvirt(t)
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := systemBuilder(t, c, c, e, e.config())
	b.SetServerID(1) // registered
	spec := testSpec(e)
	name := b.DomainName(spec)
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build: %v", err)
	}
	pool := filepath.Join(e.root, "pools", "ssd")
	vda := func(name string) uint64 {
		t.Helper()
		vi, err := c.VolumeInfo(ctx, b.poolName("ssd"), volumeName(name, spec.Storages[0].ID))
		if err != nil {
			t.Fatal(err)
		}
		return vi.Capacity
	}
	if got := vda(name); got != 1<<30 {
		t.Fatalf("primary volume %d bytes, want 1 GiB", got)
	}

	// Version 2: 2 GiB virtual, larger than the VM's 1 GiB disk.
	v2 := filepath.Join(e.root, "tiny-v2.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", v2, "2G")
	data, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	spec.Image.Source, spec.Image.SHA256 = v2, hex.EncodeToString(sum[:])
	spec.Generation++
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("drift repair with a new image version: %v", err)
	}
	if got := vda(name); got != 1<<30 {
		t.Errorf("a new image version grew the running VM's disk to %d bytes", got)
	}
	if _, err := os.Stat(filepath.Join(pool, imageVolume(spec.Image))); !os.IsNotExist(err) {
		t.Errorf("the new image version was imported for a VM built already (stat: %v)", err)
	}
	if d := liveXML(t, ctx, c, name); d.Devices.Disks[0].Source == nil ||
		filepath.Base(d.Devices.Disks[0].Source.File) != volumeName(name, spec.Storages[0].ID) {
		t.Errorf("vda of the running VM: %+v", d.Devices.Disks[0].Source)
	}

	// A broken version (its source gone) fails no VM built already.
	v3 := sha256.Sum256([]byte("version 3"))
	spec.Image.Source, spec.Image.SHA256 = filepath.Join(e.root, "no-such-image.qcow2"), hex.EncodeToString(v3[:])
	spec.Generation++
	if err := b.Build(ctx, spec); err != nil {
		t.Errorf("drift repair with a broken image version: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)

	// A new VM is built from the new version, at least its size.
	spec2 := testSpec(e)
	spec2.ID, spec2.Image.Source, spec2.Image.SHA256 = 8, v2, hex.EncodeToString(sum[:])
	spec2.Storages[0].ID = 21
	spec2.NICs[0].MAC = "52:54:00:ab:cd:08"
	if err := b.Build(ctx, spec2); err != nil {
		t.Fatalf("build of a new VM with the new version: %v", err)
	}
	vi, err := c.VolumeInfo(ctx, b.poolName("ssd"), volumeName(b.DomainName(spec2), 21))
	if err != nil || vi.Capacity != 2<<30 {
		t.Errorf("new VM's primary volume: %d bytes (%v), want 2 GiB (the image's size)", vi.Capacity, err)
	}
	for _, s := range []string{name, b.DomainName(spec2)} {
		if err := b.ScrubDomain(ctx, s); err != nil {
			t.Error(err)
		}
	}
}
