package contextdisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// This file writes ISO 9660 images with Rock Ridge names: a single root
// directory of a handful of small files is all a context disk needs, and a
// writer of that size is shorter than the glue around a general library
// (those we looked at mangle names to upper case 8.3, stamp the current time
// or stage files on disk).
//
// Layout, in 2048-byte sectors:
//
//	0-15   system area (zeros)
//	16     primary volume descriptor
//	17     volume descriptor set terminator
//	18     path table, little-endian
//	19     path table, big-endian
//	20-    root directory
//	then   each file, starting on a sector of its own
//	then   zeros up to minImageSize
//
// Each directory record carries the file's real name in a Rock Ridge NM
// entry, so Linux, xorriso and cloud-init see "user-data" rather than the
// ISO 9660 name "USER_DATA.;1".

const (
	sectorSize = 2048
	// minImageSize pads small images: busybox's findfs and blkid read a
	// fixed window from the start of the device and give up on shorter ones,
	// so a bare 50 KiB image would have no label for them.
	minImageSize   = 1 << 20
	firstDirSector = 20
)

// isoFile is one file of the root directory.
type isoFile struct {
	name string // the Rock Ridge name, as the guest sees it
	mode uint32 // permission bits
	data []byte
}

// Every image is recorded at the same fixed time, 2010-01-01 00:00 UTC, so
// that the same input always gives the same bytes: imageYear is that year
// as a directory record stores it (since 1900), imageTimeText as the volume
// descriptor does.
const (
	imageYear     = 110
	imageTimeText = "2010010100000000"
)

// writeISO returns an ISO 9660 image labelled label holding files in its
// root directory.
func writeISO(label string, files []isoFile) ([]byte, error) {
	if len(label) == 0 || len(label) > 32 {
		return nil, fmt.Errorf("volume label %q: want 1 to 32 bytes", label)
	}
	type entry struct {
		isoFile
		id     string
		extent uint32
	}
	entries := make([]entry, len(files))
	seen := map[string]bool{}
	for i, f := range files {
		id := isoName(f.name)
		if seen[id] {
			return nil, fmt.Errorf("two files map to the ISO 9660 name %s", id)
		}
		seen[id] = true
		entries[i] = entry{isoFile: f, id: id}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })

	// Directory records never straddle a sector: lay them out once to learn
	// how many sectors the root directory takes, which fixes every extent.
	rootRec := func(extent, size uint32) [][]byte {
		recs := [][]byte{
			dirRecord([]byte{0}, extent, size, true, rootSystemUse()),
			dirRecord([]byte{1}, extent, size, true, px(0o40555, 2)),
		}
		for _, e := range entries {
			su := append(px(0o100000|e.mode, 1), nm(e.name)...)
			recs = append(recs, dirRecord([]byte(e.id), e.extent, uint32(len(e.data)), false, su))
		}
		return recs
	}
	dirSectors := uint32(len(packRecords(rootRec(0, 0))) / sectorSize)
	next := firstDirSector + dirSectors
	for i := range entries {
		entries[i].extent = next
		next += uint32((len(entries[i].data) + sectorSize - 1) / sectorSize)
	}
	total := next
	if total < minImageSize/sectorSize {
		total = minImageSize / sectorSize
	}
	dir := packRecords(rootRec(firstDirSector, dirSectors*sectorSize))

	img := make([]byte, int(total)*sectorSize)
	copy(img[16*sectorSize:], primaryDescriptor(label, total, dirRecord([]byte{0}, firstDirSector, dirSectors*sectorSize, true, nil)))
	term := img[17*sectorSize:]
	term[0] = 255
	copy(term[1:6], "CD001")
	term[6] = 1
	pathTable(img[18*sectorSize:], binary.LittleEndian)
	pathTable(img[19*sectorSize:], binary.BigEndian)
	copy(img[firstDirSector*sectorSize:], dir)
	for _, e := range entries {
		copy(img[int(e.extent)*sectorSize:], e.data)
	}
	return img, nil
}

// isoName maps a name to an ISO 9660 level 2 identifier: upper case
// d-characters, one dot, version 1.
func isoName(name string) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	base, ext = clean(base), clean(ext)
	if len(base)+len(ext) > 30 {
		base = base[:30-len(ext)]
	}
	return base + "." + ext + ";1"
}

// packRecords places directory records in sectors, starting a new sector
// when the next record would cross a boundary.
func packRecords(recs [][]byte) []byte {
	var out []byte
	used := 0
	for _, r := range recs {
		if used+len(r) > sectorSize {
			out = append(out, make([]byte, sectorSize-used)...)
			used = 0
		}
		out = append(out, r...)
		used += len(r)
	}
	return append(out, make([]byte, sectorSize-used)...)
}

// dirRecord returns an ECMA-119 directory record with system use field su.
func dirRecord(id []byte, extent, size uint32, dir bool, su []byte) []byte {
	n := 33 + len(id)
	if len(id)%2 == 0 {
		n++ // padding field
	}
	suAt := n
	n += len(su)
	if n%2 == 1 {
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	both32(r[2:], extent)
	both32(r[10:], size)
	r[18], r[19], r[20] = imageYear, 1, 1 // hour, minute, second and zone stay 0
	if dir {
		r[25] = 2
	}
	both16(r[28:], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	copy(r[suAt:], su)
	return r
}

// rootSystemUse is the root's "." entry: the SUSP indicator, the root's
// attributes and the extension reference that names Rock Ridge.
func rootSystemUse() []byte {
	sp := []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0}
	const (
		id  = "RRIP_1991A"
		des = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
		src = "SEE RRIP 1.09"
	)
	er := []byte{'E', 'R', byte(8 + len(id) + len(des) + len(src)), 1, byte(len(id)), byte(len(des)), byte(len(src)), 1}
	er = append(append(append(er, id...), des...), src...)
	out := append(sp, px(0o40555, 2)...)
	return append(out, er...)
}

// px is a Rock Ridge 1.09 POSIX attributes entry, owned by root.
func px(mode, links uint32) []byte {
	b := make([]byte, 36)
	copy(b, "PX")
	b[2], b[3] = 36, 1
	both32(b[4:], mode)
	both32(b[12:], links)
	return b // uid and gid 0
}

// nm is a Rock Ridge alternate name entry.
func nm(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

// primaryDescriptor returns the primary volume descriptor sector.
func primaryDescriptor(label string, sectors uint32, root []byte) []byte {
	d := make([]byte, sectorSize)
	d[0] = 1
	copy(d[1:6], "CD001")
	d[6] = 1
	pad := func(at, n int, s string) { copy(d[at:at+n], s+strings.Repeat(" ", n-len(s))) }
	pad(8, 32, "")
	pad(40, 32, label)
	both32(d[80:], sectors)
	both16(d[120:], 1) // volume set size
	both16(d[124:], 1) // volume sequence number
	both16(d[128:], sectorSize)
	both32(d[132:], 10) // path table size: the root only
	binary.LittleEndian.PutUint32(d[140:], 18)
	binary.BigEndian.PutUint32(d[148:], 19)
	copy(d[156:190], root)
	pad(190, 128, "")
	pad(318, 128, "")
	pad(446, 128, "")
	pad(574, 128, "STRATUSLAB VMCTL")
	pad(702, 37, "")
	pad(739, 37, "")
	pad(776, 37, "")
	for _, at := range []int{813, 830} { // creation, modification
		copy(d[at:], imageTimeText)
	}
	for _, at := range []int{847, 864} { // expiration, effective: not specified
		copy(d[at:], bytes.Repeat([]byte{'0'}, 16))
	}
	d[881] = 1
	return d
}

// pathTable writes the one-entry path table (the root directory).
func pathTable(b []byte, order binary.ByteOrder) {
	b[0] = 1
	order.PutUint32(b[2:], firstDirSector)
	order.PutUint16(b[6:], 1)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}
