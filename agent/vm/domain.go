package vm

import (
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"strconv"
)

// Domain XML, the subset the builder writes and reads back. Field names
// follow https://libvirt.org/formatdomain.html.

type domainXML struct {
	XMLName       xml.Name     `xml:"domain"`
	Type          string       `xml:"type,attr"`
	Name          string       `xml:"name"`
	UUID          string       `xml:"uuid,omitempty"`
	Title         string       `xml:"title,omitempty"`
	Metadata      *metadataXML `xml:"metadata,omitempty"`
	Memory        memoryXML    `xml:"memory"`
	CurrentMemory memoryXML    `xml:"currentMemory"`
	VCPU          vcpuXML      `xml:"vcpu"`
	SysInfo       *sysinfoXML  `xml:"sysinfo,omitempty"`
	OS            osXML        `xml:"os"`
	Features      *featuresXML `xml:"features,omitempty"`
	OnPoweroff    string       `xml:"on_poweroff,omitempty"`
	OnReboot      string       `xml:"on_reboot,omitempty"`
	OnCrash       string       `xml:"on_crash,omitempty"`
	Devices       devicesXML   `xml:"devices"`
}

// regentNS is the namespace of the builder's own domain metadata.
const regentNS = "https://regentcloud.github.io/xmlns/vm/1"

type metadataXML struct {
	VM *regentMetaXML `xml:"https://regentcloud.github.io/xmlns/vm/1 vm,omitempty"`
}

type regentMetaXML struct {
	ID         uint64 `xml:"id,attr"`
	ProjectID  uint64 `xml:"project,attr"`
	Generation uint64 `xml:"generation,attr"`
	ImageID    uint64 `xml:"image,attr"`
	// Server is the controller's id of the server the agent was
	// registered as when it defined the domain (0, absent: an older
	// agent's domain). Garbage collection takes only its own server's.
	Server uint64 `xml:"server,attr,omitempty"`
}

type memoryXML struct {
	Unit  string `xml:"unit,attr"`
	Value uint64 `xml:",chardata"`
}

// bytes converts a memory element to bytes.
func (m memoryXML) bytes() uint64 {
	switch m.Unit {
	case "b", "bytes":
		return m.Value
	case "", "KiB", "k":
		return m.Value << 10
	case "MiB", "M":
		return m.Value << 20
	case "GiB", "G":
		return m.Value << 30
	}
	return m.Value << 10
}

type vcpuXML struct {
	Placement string `xml:"placement,attr,omitempty"`
	Current   int    `xml:"current,attr,omitempty"`
	Value     int    `xml:",chardata"`
}

type sysinfoXML struct {
	Type   string     `xml:"type,attr"`
	System []entryXML `xml:"system>entry"`
}

type entryXML struct {
	Name  string `xml:"name,attr"`
	Value string `xml:",chardata"`
}

type osXML struct {
	Type   osTypeXML  `xml:"type"`
	Boot   []bootXML  `xml:"boot"`
	SMBIOS *smbiosXML `xml:"smbios,omitempty"`
}

type osTypeXML struct {
	Arch    string `xml:"arch,attr,omitempty"`
	Machine string `xml:"machine,attr,omitempty"`
	Value   string `xml:",chardata"`
}

type bootXML struct {
	Dev string `xml:"dev,attr"`
}

type smbiosXML struct {
	Mode string `xml:"mode,attr"`
}

type featuresXML struct {
	ACPI *struct{} `xml:"acpi"`
	APIC *struct{} `xml:"apic"`
}

type devicesXML struct {
	Disks      []diskXML      `xml:"disk"`
	Interfaces []interfaceXML `xml:"interface"`
	Serials    []serialXML    `xml:"serial"`
	Consoles   []consoleXML   `xml:"console"`
	MemBalloon *balloonXML    `xml:"memballoon,omitempty"`
}

type diskXML struct {
	XMLName  xml.Name       `xml:"disk"`
	Type     string         `xml:"type,attr"`
	Device   string         `xml:"device,attr"`
	Snapshot string         `xml:"snapshot,attr,omitempty"`
	Driver   *diskDriverXML `xml:"driver,omitempty"`
	Source   *diskSourceXML `xml:"source,omitempty"`
	Target   diskTargetXML  `xml:"target"`
	ReadOnly *struct{}      `xml:"readonly,omitempty"`
	Serial   string         `xml:"serial,omitempty"`
}

type diskDriverXML struct {
	Name string `xml:"name,attr"`
	Type string `xml:"type,attr"`
}

type diskSourceXML struct {
	File string `xml:"file,attr,omitempty"`
}

type diskTargetXML struct {
	Dev string `xml:"dev,attr"`
	Bus string `xml:"bus,attr,omitempty"`
}

type interfaceXML struct {
	Type   string          `xml:"type,attr"`
	MAC    *macXML         `xml:"mac,omitempty"`
	Source *ifaceSourceXML `xml:"source,omitempty"`
	Target *ifaceTargetXML `xml:"target,omitempty"`
	Model  *ifaceModelXML  `xml:"model,omitempty"`
}

type macXML struct {
	Address string `xml:"address,attr"`
}

type ifaceSourceXML struct {
	Bridge string `xml:"bridge,attr,omitempty"`
}

type ifaceTargetXML struct {
	Dev string `xml:"dev,attr,omitempty"`
}

type ifaceModelXML struct {
	Type string `xml:"type,attr"`
}

type serialXML struct {
	Type   string           `xml:"type,attr"`
	Log    *logXML          `xml:"log,omitempty"`
	Target *serialTargetXML `xml:"target,omitempty"`
}

type logXML struct {
	File   string `xml:"file,attr"`
	Append string `xml:"append,attr,omitempty"`
}

type serialTargetXML struct {
	Type string `xml:"type,attr,omitempty"`
	Port *int   `xml:"port,attr,omitempty"`
}

type consoleXML struct {
	Type   string           `xml:"type,attr"`
	Target *serialTargetXML `xml:"target,omitempty"`
}

type balloonXML struct {
	Model string `xml:"model,attr"`
}

// domainUUID derives a stable UUID (version 5 layout) from the domain name,
// so redefining a domain replaces its definition instead of conflicting.
func domainUUID(name string) string {
	h := sha1.Sum([]byte("regent/vm/" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// diskTarget is the virtio name of the i-th disk: vda, vdb, ... vdz, vdaa.
func diskTarget(i int) string {
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return "vd" + name
}

// disk is one virtio disk of a planned domain.
type disk struct {
	StorageID uint64
	Target    string
	Volume    string // volume name in the pool
	Path      string
	Bytes     uint64
	Primary   bool
}

// nic is one planned interface.
type nic struct {
	MAC    string
	Bridge string
}

// domainPlan is everything the domain XML is made from.
type domainPlan struct {
	Type       string
	Name       string
	Machine    string
	VMID       uint64
	ProjectID  uint64
	Generation uint64
	ImageID    uint64
	ServerID   uint64
	CPU        int
	MemoryMiB  uint64
	Disks      []disk
	NICs       []nic
	SeedPath   string // "" for none
	ConsoleLog string
}

// domainXMLFor renders the persistent definition of a planned domain.
func domainXMLFor(p domainPlan) ([]byte, error) {
	port0 := 0
	d := domainXML{
		Type:  p.Type,
		Name:  p.Name,
		UUID:  domainUUID(p.Name),
		Title: "regent vm " + strconv.FormatUint(p.VMID, 10),
		Metadata: &metadataXML{VM: &regentMetaXML{ID: p.VMID, ProjectID: p.ProjectID,
			Generation: p.Generation, ImageID: p.ImageID, Server: p.ServerID}},
		Memory:        memoryXML{Unit: "KiB", Value: p.MemoryMiB << 10},
		CurrentMemory: memoryXML{Unit: "KiB", Value: p.MemoryMiB << 10},
		VCPU:          vcpuXML{Placement: "static", Value: p.CPU},
		SysInfo: &sysinfoXML{Type: "smbios", System: []entryXML{
			{Name: "manufacturer", Value: "Regent"},
			{Name: "product", Value: "CloudCIX"},
			{Name: "serial", Value: fmt.Sprintf("%d_%d", p.ProjectID, p.VMID)},
		}},
		OS: osXML{
			Type:   osTypeXML{Arch: "x86_64", Machine: p.Machine, Value: "hvm"},
			Boot:   []bootXML{{Dev: "hd"}},
			SMBIOS: &smbiosXML{Mode: "sysinfo"},
		},
		Features:   &featuresXML{ACPI: &struct{}{}, APIC: &struct{}{}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
	}
	for _, dk := range p.Disks {
		d.Devices.Disks = append(d.Devices.Disks, diskXML{
			Type: "file", Device: "disk",
			Driver: &diskDriverXML{Name: "qemu", Type: "qcow2"},
			Source: &diskSourceXML{File: dk.Path},
			Target: diskTargetXML{Dev: dk.Target, Bus: "virtio"},
			Serial: "regent-" + strconv.FormatUint(dk.StorageID, 10),
		})
	}
	if p.SeedPath != "" {
		d.Devices.Disks = append(d.Devices.Disks, diskXML{
			Type: "file", Device: "cdrom", Snapshot: "no",
			Driver:   &diskDriverXML{Name: "qemu", Type: "raw"},
			Source:   &diskSourceXML{File: p.SeedPath},
			Target:   diskTargetXML{Dev: "hdc", Bus: "ide"},
			ReadOnly: &struct{}{},
		})
	}
	for _, n := range p.NICs {
		d.Devices.Interfaces = append(d.Devices.Interfaces, interfaceXML{
			Type:   "bridge",
			MAC:    &macXML{Address: n.MAC},
			Source: &ifaceSourceXML{Bridge: n.Bridge},
			Model:  &ifaceModelXML{Type: "virtio"},
		})
	}
	d.Devices.Serials = []serialXML{{Type: "pty", Log: &logXML{File: p.ConsoleLog, Append: "on"},
		Target: &serialTargetXML{Port: &port0}}}
	d.Devices.Consoles = []consoleXML{{Type: "pty", Target: &serialTargetXML{Type: "serial", Port: &port0}}}
	d.Devices.MemBalloon = &balloonXML{Model: "virtio"}
	return xml.MarshalIndent(d, "", "  ")
}

// diskDeviceXML is the <disk> element of one planned disk, for attaching.
func diskDeviceXML(dk disk) ([]byte, error) {
	return xml.Marshal(diskXML{
		Type: "file", Device: "disk",
		Driver: &diskDriverXML{Name: "qemu", Type: "qcow2"},
		Source: &diskSourceXML{File: dk.Path},
		Target: diskTargetXML{Dev: dk.Target, Bus: "virtio"},
		Serial: "regent-" + strconv.FormatUint(dk.StorageID, 10),
	})
}

// parseDomainXML reads a domain description libvirt returned.
func parseDomainXML(s string) (*domainXML, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("parse domain xml: %w", err)
	}
	return &d, nil
}
