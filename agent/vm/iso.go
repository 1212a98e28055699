package vm

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
)

// A minimal ISO 9660 writer with Joliet names: one root directory of small
// files, which is what a cloud-init NoCloud seed is. The primary volume
// descriptor carries ISO 9660 level 2 names (USER_DATA.;1) for readers
// without Joliet; Linux and blkid use the Joliet tree, where the names are
// exact (user-data, meta-data, network-config).

const isoSector = 2048

// isoFile is one file of the image.
type isoFile struct {
	Name string
	Data []byte
}

// isoDate is the fixed recording date of every record (2000-01-01 UTC), so
// the same files give a byte-identical image.
var isoDate = [7]byte{100, 1, 1, 0, 0, 0, 0}

func bothEndian32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:], v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func bothEndian16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b[0:], v)
	binary.BigEndian.PutUint16(b[2:], v)
}

// dirRecord renders one directory record.
func dirRecord(name []byte, extent, size uint32, dir bool) []byte {
	n := 33 + len(name)
	if len(name)%2 == 0 {
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	bothEndian32(r[2:], extent)
	bothEndian32(r[10:], size)
	copy(r[18:25], isoDate[:])
	if dir {
		r[25] = 2
	}
	bothEndian16(r[28:], 1)
	r[32] = byte(len(name))
	copy(r[33:], name)
	return r
}

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// isoLevel2Name maps a file name to d-characters: USER_DATA.;1.
func isoLevel2Name(s string) string {
	up := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, s)
	if len(up) > 30 {
		up = up[:30]
	}
	return up + ".;1"
}

// fillText writes s into b padded with spaces (ASCII) or UCS-2 spaces.
func fillText(b []byte, s string, joliet bool) {
	if joliet {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = 0, ' '
		}
		copy(b, ucs2(s))
		return
	}
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
}

// buildISO returns an ISO 9660 + Joliet image with the files in its root
// directory and the volume label.
func buildISO(label string, files []isoFile) ([]byte, error) {
	if len(label) > 16 {
		return nil, fmt.Errorf("iso: label %q longer than 16 characters", label)
	}
	files = append([]isoFile(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for i := 1; i < len(files); i++ {
		if isoLevel2Name(files[i].Name) == isoLevel2Name(files[i-1].Name) {
			return nil, fmt.Errorf("iso: names %q and %q collide", files[i-1].Name, files[i].Name)
		}
	}
	const (
		lbaPVD       = 16
		lbaSVD       = 17
		lbaTerm      = 18
		lbaPathL     = 19
		lbaPathM     = 20
		lbaJPathL    = 21
		lbaJPathM    = 22
		lbaRoot      = 23
		lbaJRoot     = 24
		lbaFirstFile = 25
	)
	extents := make([]uint32, len(files))
	next := uint32(lbaFirstFile)
	for i, f := range files {
		extents[i] = next
		next += uint32((len(f.Data) + isoSector - 1) / isoSector)
		if len(f.Data) == 0 {
			extents[i] = 0
		}
	}
	total := next
	img := make([]byte, int(total)*isoSector)
	sector := func(lba uint32) []byte { return img[int(lba)*isoSector : int(lba+1)*isoSector] }

	// Directories: ".", "..", then the files.
	dir := func(joliet bool, self uint32) ([]byte, error) {
		var b []byte
		b = append(b, dirRecord([]byte{0}, self, isoSector, true)...)
		b = append(b, dirRecord([]byte{1}, self, isoSector, true)...)
		for i, f := range files {
			name := []byte(isoLevel2Name(f.Name))
			if joliet {
				name = ucs2(f.Name)
			}
			b = append(b, dirRecord(name, extents[i], uint32(len(f.Data)), false)...)
		}
		if len(b) > isoSector {
			return nil, fmt.Errorf("iso: root directory larger than one sector")
		}
		return b, nil
	}
	root, err := dir(false, lbaRoot)
	if err != nil {
		return nil, err
	}
	jroot, err := dir(true, lbaJRoot)
	if err != nil {
		return nil, err
	}
	copy(sector(lbaRoot), root)
	copy(sector(lbaJRoot), jroot)

	// Path tables: one entry, the root.
	pathTable := func(b []byte, extent uint32, bigEndian bool) {
		b[0] = 1
		if bigEndian {
			binary.BigEndian.PutUint32(b[2:], extent)
			binary.BigEndian.PutUint16(b[6:], 1)
		} else {
			binary.LittleEndian.PutUint32(b[2:], extent)
			binary.LittleEndian.PutUint16(b[6:], 1)
		}
	}
	pathTable(sector(lbaPathL), lbaRoot, false)
	pathTable(sector(lbaPathM), lbaRoot, true)
	pathTable(sector(lbaJPathL), lbaJRoot, false)
	pathTable(sector(lbaJPathM), lbaJRoot, true)

	vd := func(b []byte, joliet bool) {
		if joliet {
			b[0] = 2
		} else {
			b[0] = 1
		}
		copy(b[1:6], "CD001")
		b[6] = 1
		fillText(b[8:40], "LINUX", joliet)
		fillText(b[40:72], label, joliet)
		bothEndian32(b[80:], total)
		if joliet {
			copy(b[88:91], "%/E") // UCS-2 level 3
		}
		bothEndian16(b[120:], 1)
		bothEndian16(b[124:], 1)
		bothEndian16(b[128:], isoSector)
		bothEndian32(b[132:], 10)
		self, l, m := uint32(lbaRoot), uint32(lbaPathL), uint32(lbaPathM)
		if joliet {
			self, l, m = lbaJRoot, lbaJPathL, lbaJPathM
		}
		binary.LittleEndian.PutUint32(b[140:], l)
		binary.BigEndian.PutUint32(b[148:], m)
		copy(b[156:190], dirRecord([]byte{0}, self, isoSector, true))
		for _, f := range [][]byte{b[190:318], b[318:446], b[446:574], b[574:702]} {
			fillText(f, "", joliet)
		}
		fillText(b[574:702], "REGENT", joliet)
		for _, f := range [][]byte{b[702:739], b[739:776], b[776:813]} {
			fillText(f, "", joliet)
		}
		for _, off := range []int{813, 830, 847, 864} {
			copy(b[off:off+16], "0000000000000000")
		}
		copy(b[813:829], "2000010100000000")
		copy(b[830:846], "2000010100000000")
		b[881] = 1
	}
	vd(sector(lbaPVD), false)
	vd(sector(lbaSVD), true)
	t := sector(lbaTerm)
	t[0] = 255
	copy(t[1:6], "CD001")
	t[6] = 1

	for i, f := range files {
		if len(f.Data) > 0 {
			copy(img[int(extents[i])*isoSector:], f.Data)
		}
	}
	return img, nil
}
