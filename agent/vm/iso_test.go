package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/regentcloud/regent/pkg/api"
)

// readISOJoliet returns the files of the Joliet root directory of an image
// written by buildISO, and its Joliet volume label.
func readISOJoliet(img []byte) (label string, files map[string][]byte, err error) {
	files = map[string][]byte{}
	for lba := 16; (lba+1)*isoSector <= len(img); lba++ {
		s := img[lba*isoSector : (lba+1)*isoSector]
		if string(s[1:6]) != "CD001" {
			return "", nil, fmt.Errorf("iso: sector %d is not a volume descriptor", lba)
		}
		if s[0] == 255 {
			break
		}
		if s[0] != 2 || string(s[88:91]) != "%/E" {
			continue
		}
		label = strings.TrimRight(utf16String(s[40:72]), " ")
		rootLBA := binary.LittleEndian.Uint32(s[156+2:])
		rootLen := binary.LittleEndian.Uint32(s[156+10:])
		if int(rootLBA)*isoSector+int(rootLen) > len(img) {
			return "", nil, fmt.Errorf("iso: root directory outside the image")
		}
		dir := img[int(rootLBA)*isoSector : int(rootLBA)*isoSector+int(rootLen)]
		for off := 0; off < len(dir) && dir[off] != 0; off += int(dir[off]) {
			r := dir[off:]
			if int(r[0]) > len(r) || 33+int(r[32]) > int(r[0]) {
				return "", nil, fmt.Errorf("iso: bad directory record at %d", off)
			}
			name := r[33 : 33+int(r[32])]
			if r[25]&2 != 0 {
				continue
			}
			ext := binary.LittleEndian.Uint32(r[2:])
			size := binary.LittleEndian.Uint32(r[10:])
			if int(ext)*isoSector+int(size) > len(img) {
				return "", nil, fmt.Errorf("iso: file outside the image")
			}
			files[utf16String(name)] = img[int(ext)*isoSector : int(ext)*isoSector+int(size)]
		}
		return label, files, nil
	}
	return "", nil, fmt.Errorf("iso: no Joliet volume descriptor")
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func seedSpec() *api.VMSpec {
	return &api.VMSpec{ID: 7, ProjectID: 42, Name: "web1",
		NICs: []api.NICSpec{
			{MAC: "52:54:00:AB:CD:07", Addresses: []string{"10.0.0.2/24", "10.0.0.3/24"}, Gateway: "10.0.0.1", VNI: 100},
			{MAC: "52:54:00:ab:cd:17", Addresses: []string{"10.1.0.2/24"}, Gateway: "10.1.0.1", VNI: 101},
		},
		Metadata: api.MetadataSpec{PublicKeys: []string{"ssh-ed25519 AAAAC3 alice@example"}},
	}
}

func TestSeedFiles(t *testing.T) {
	files, err := seedFiles(seedSpec())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Name] = string(f.Data)
	}
	const meta = "instance-id: \"42_7\"\nlocal-hostname: \"web1\"\npublic-keys:\n  - \"ssh-ed25519 AAAAC3 alice@example\"\n"
	if got["meta-data"] != meta {
		t.Errorf("meta-data %q, want %q", got["meta-data"], meta)
	}
	if got["user-data"] != "#cloud-config\nhostname: \"web1\"\n" {
		t.Errorf("user-data:\n%s", got["user-data"])
	}
	want := `version: 2
ethernets:
  nic0:
    match:
      macaddress: "52:54:00:ab:cd:07"
    set-name: "eth0"
    addresses:
      - "10.0.0.2/24"
      - "10.0.0.3/24"
    routes:
      - to: default
        via: "10.0.0.1"
  nic1:
    match:
      macaddress: "52:54:00:ab:cd:17"
    set-name: "eth1"
    addresses:
      - "10.1.0.2/24"
`
	if got["network-config"] != want {
		t.Errorf("network-config:\n%s\nwant:\n%s", got["network-config"], want)
	}

	// Userdata from the controller is passed through untouched, and the
	// SSH keys still reach the VM (meta-data).
	spec := seedSpec()
	spec.Metadata.Userdata = "#!/bin/sh\necho hi\n"
	files, _ = seedFiles(spec)
	for _, f := range files {
		if f.Name == "user-data" && string(f.Data) != spec.Metadata.Userdata {
			t.Errorf("user-data %q", f.Data)
		}
		if f.Name == "meta-data" && string(f.Data) != meta {
			t.Errorf("meta-data with userdata %q, want %q", f.Data, meta)
		}
	}
	spec.NICs[0].Addresses = []string{"10.0.0.2"}
	if _, err := seedFiles(spec); err == nil {
		t.Error("address without length accepted")
	}
}

func TestSeedISO(t *testing.T) {
	img, err := seedISO(seedSpec())
	if err != nil {
		t.Fatal(err)
	}
	if len(img)%isoSector != 0 {
		t.Fatalf("size %d is not a whole number of sectors", len(img))
	}
	again, _ := seedISO(seedSpec())
	if !bytes.Equal(img, again) {
		t.Error("same spec, different image")
	}
	label, files, err := readISOJoliet(img)
	if err != nil {
		t.Fatal(err)
	}
	if label != "cidata" {
		t.Errorf("label %q", label)
	}
	want, _ := seedFiles(seedSpec())
	if len(files) != len(want) {
		t.Errorf("files %v", files)
	}
	for _, f := range want {
		if !bytes.Equal(files[f.Name], f.Data) {
			t.Errorf("%s: %q, want %q", f.Name, files[f.Name], f.Data)
		}
	}
	// The primary volume descriptor carries the label and level 2 names.
	if pvd := img[16*isoSector:]; pvd[0] != 1 || strings.TrimRight(string(pvd[40:72]), " ") != "cidata" {
		t.Errorf("primary volume descriptor: type %d label %q", pvd[0], pvd[40:72])
	}

	// Cross-check with other readers when they are installed.
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("isoinfo"); err == nil {
		for _, f := range want {
			out, err := exec.Command("isoinfo", "-J", "-i", path, "-x", "/"+f.Name).Output()
			if err != nil || !bytes.Equal(out, f.Data) {
				t.Errorf("isoinfo -J -x /%s: %v %q", f.Name, err, out)
			}
		}
		out, _ := exec.Command("isoinfo", "-d", "-i", path).Output()
		if !strings.Contains(string(out), "Volume id: cidata") || !strings.Contains(string(out), "Joliet with UCS level 3") {
			t.Errorf("isoinfo -d:\n%s", out)
		}
		out, _ = exec.Command("isoinfo", "-l", "-i", path).Output()
		if !strings.Contains(string(out), "USER_DATA.;1") {
			t.Errorf("isoinfo -l:\n%s", out)
		}
	} else {
		t.Log("isoinfo not installed: cross-check skipped")
	}
	if _, err := exec.LookPath("blkid"); err == nil {
		out, err := exec.Command("blkid", "-p", "-o", "export", path).Output()
		if err != nil || !strings.Contains(string(out), "LABEL=cidata") || !strings.Contains(string(out), "TYPE=iso9660") {
			t.Errorf("blkid: %v\n%s", err, out)
		}
	}
}

func TestISONameCollision(t *testing.T) {
	if _, err := buildISO("x", []isoFile{{Name: "a-b"}, {Name: "a_b"}}); err == nil {
		t.Error("colliding level 2 names accepted")
	}
	if _, err := buildISO("a-label-longer-than-16", nil); err == nil {
		t.Error("long label accepted")
	}
	img, err := buildISO("empty", []isoFile{{Name: "empty-file"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, files, err := readISOJoliet(img); err != nil || len(files["empty-file"]) != 0 {
		t.Errorf("empty file: %v %v", files, err)
	}
}

// TestSeedNameServers: the seed's network-config gives the gateway NIC the
// VM's DNS servers (cloud-init prefers the NoCloud seed, so without them
// a VM with static addresses resolves nothing), and a DNS server that is
// not an address is a bad spec.
func TestSeedNameServers(t *testing.T) {
	spec := seedSpec()
	spec.Metadata.DNS = []string{"1.1.1.1", "2606:4700:4700::1111"}
	files, err := seedFiles(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `    routes:
      - to: default
        via: "10.0.0.1"
    nameservers:
      addresses:
        - "1.1.1.1"
        - "2606:4700:4700::1111"
  nic1:
`
	for _, f := range files {
		if f.Name == "network-config" && !strings.Contains(string(f.Data), want) {
			t.Errorf("network-config lacks the gateway NIC's nameservers:\n%s", f.Data)
		}
	}
	spec.Metadata.DNS = []string{"dns.example"}
	if _, err := seedFiles(spec); err == nil {
		t.Error("a DNS server that is not an address was accepted")
	}
}
