package systest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestAgentVMBadInput (issue 7, bad input and faults) runs the agent
// process against VMs it cannot build, next to one it can: an image whose
// source does not exist, an image whose sha256 does not match, and a domain
// QEMU cannot start (its serial log path is a directory: a libvirt error,
// reported after the agent's retries). Each ends UNRESOURCED with its
// error_code and an error_detail that says what is wrong, with no domain
// running for it, while the good VM is built and keeps running. (A full
// pool needs a pool smaller than the capacity the agent reports, so it is
// tested on the builder over a real libvirtd: agent/vm
// TestSystemBuildFaults.)
func TestAgentVMBadInput(t *testing.T) {
	h := newHypervisor(t, 1)
	a, root := h.api, h.root
	image := func(name, source, sum string) uint64 {
		id := a.create(root, "/iaas/image/", map[string]any{"display_name": name, "server_type_id": 2,
			"cloud_init": true, "multiple_ips": true, "filename": name + ".qcow2"})
		a.create(root, "/iaas/region_image/", map[string]any{"region_id": h.region, "image_id": id})
		a.must(root, "PATCH", fmt.Sprintf("/iaas/image/%d/", id), map[string]any{"source": source, "sha256": sum}, 200)
		return id
	}
	good := a.must(root, "GET", fmt.Sprintf("/iaas/image/%d/", h.img), nil, 200)
	missing := image("missing", filepath.Join(h.vmRoot, "images", "no-such-image.qcow2"), strings.Repeat("0f", 32))
	wrongSum := image("wrongsum", good["source"].(string), strings.Repeat("ab", 32))

	project, ids := h.cloudWith("p-"+h.prefix, h.vmBody("good", h.img, 10, 1), h.vmBody("missing", missing, 11, 1),
		h.vmBody("wrongsum", wrongSum, 12, 1))
	goodVM := ids[0]

	// The next cloud's project and VM ids follow from these (each table
	// counts its own ids): make the serial log of its VM's domain a
	// directory before it exists, so that QEMU fails to start it.
	broken := h.domain(project+1, ids[len(ids)-1]+1)
	consoleLog := filepath.Join(h.vmRoot, "console", broken+"-serial.log")
	if err := os.MkdirAll(consoleLog, 0o755); err != nil {
		t.Fatal(err)
	}
	project2, ids2 := h.cloudWith("q-"+h.prefix, h.vmBody("unstartable", h.img, 20, 1))
	if got := h.domain(project2, ids2[0]); got != broken {
		t.Fatalf("the second cloud's VM is domain %s, not the predicted %s: ids are not per-table sequences any more", got, broken)
	}

	h.vmAt(goodVM, api.StateRunning, 3*time.Minute)
	goodDomain := h.domain(project, goodVM)
	for _, tc := range []struct {
		name   string
		id     uint64
		code   string
		detail string
	}{
		{"missing image", ids[1], "vm_image_missing", "does not exist"},
		{"checksum mismatch", ids[2], "vm_image_checksum", "sha256 is " + good["sha256"].(string)},
		{"libvirt error", ids2[0], "vm_libvirt", "serial.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec map[string]any
			took := eventually(t, fmt.Sprintf("VM %d UNRESOURCED", tc.id), 3*time.Minute, func() bool {
				rec = h.vmRecord(tc.id)
				return num(rec["state"]) == api.StateUnresourced
			})
			code, _ := rec["error_code"].(string)
			detail, _ := rec["error_detail"].(string)
			t.Logf("UNRESOURCED after %v: %s: %s", took.Round(time.Millisecond), code, detail)
			if code != tc.code || !strings.Contains(detail, tc.detail) {
				t.Errorf("error_code %q, error_detail %q; want %s and a detail with %q", code, detail, tc.code, tc.detail)
			}
			p := project
			if tc.id == ids2[0] {
				p = project2
			}
			if st := domState(h.domain(p, tc.id)); st == "running" {
				t.Errorf("domain of the failed VM is running")
			}
			if st := domState(goodDomain); st != "running" {
				t.Errorf("the good VM's domain is %q", st)
			}
		})
	}
	if st := num(h.vmRecord(goodVM)["state"]); st != api.StateRunning {
		t.Errorf("the good VM is %s", api.StateNames[int(st)])
	}
}
