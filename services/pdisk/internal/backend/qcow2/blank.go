package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The layout of a blank image, chosen to be byte for byte what qemu-img 7.2
// writes for `qemu-img create -f qcow2 [-F qcow2 -b NAME] FILE SIZE`, so
// that a test can compare the two whole files: cluster 0 holds the header,
// cluster 1 the refcount table, cluster 2 its only refcount block, and the
// L1 table starts at cluster 3. The file ends where the L1 table ends.
const (
	clusterBits   = 16
	clusterSize   = 1 << clusterBits
	refcountOrder = 4 // 16-bit refcounts
	headerLength  = 112

	refcountTableOffset = 1 * clusterSize
	refcountBlockOffset = 2 * clusterSize
	l1Offset            = 3 * clusterSize

	// l2Coverage is the guest bytes one L1 entry maps: one L2 table of
	// clusterSize/8 entries, each one cluster.
	l2Coverage = clusterSize * (clusterSize / 8)
	// refcountBlockEntries is how many clusters one refcount block counts,
	// so the most metadata clusters a blank image may have.
	refcountBlockEntries = clusterSize * 8 >> refcountOrder
	// maxL1Bytes is QEMU's limit on the L1 table (QCOW_MAX_L1_SIZE); it
	// bounds the virtual size at 2 PiB for 64 KiB clusters.
	maxL1Bytes = 32 << 20
	// maxBlankSize is the largest virtual size writeBlank accepts.
	maxBlankSize = maxL1Bytes / 8 * l2Coverage

	sectorSize = 512
)

// One refcount block counts all the metadata of the largest blank image;
// this constant would be negative, and fail to compile, if it did not.
const _ = uint(refcountBlockEntries - (3 + maxL1Bytes/clusterSize))

// Header extension types (QEMU's docs/interop/qcow2.txt).
const (
	extBackingFormat    = 0xe2792aca
	extFeatureNameTable = 0x6803f857
)

// featureNames is the feature name table qemu-img writes into every new
// image: type (0 incompatible, 1 compatible, 2 autoclear), bit, name. It
// only helps tools name feature bits; none of them is set.
var featureNames = [...]struct {
	kind, bit byte
	name      string
}{
	{0, 0, "dirty bit"},
	{0, 1, "corrupt bit"},
	{0, 2, "external data file"},
	{0, 3, "compression type"},
	{0, 4, "extended L2 entries"},
	{1, 0, "lazy refcounts"},
	{2, 0, "bitmaps"},
	{2, 1, "raw external data"},
}

const featureNameLen = 46 // each table entry is 48 bytes: kind, bit, name

// imageFile is what writeBlank needs of the file it fills; *os.File has it.
type imageFile interface {
	io.WriterAt
	Truncate(size int64) error
}

// writeBlank fills the empty file f with a blank qcow2 version 3 image of
// size bytes, an overlay of the qcow2 image named backing when backing is
// not empty. size must be a positive multiple of 512. The L1 table is
// all zeros, so it is left as a hole: a blank image takes a few KiB whatever
// its size.
func writeBlank(f imageFile, size int64, backing string) error {
	if size <= 0 || size%sectorSize != 0 || size > maxBlankSize {
		return fmt.Errorf("qcow2 virtual size %d is not a positive multiple of %d up to %d", size, sectorSize, int64(maxBlankSize))
	}
	if len(backing) > maxBackingName {
		return errors.New("qcow2 backing file name too long")
	}
	l1Entries := (size + l2Coverage - 1) / l2Coverage
	l1Clusters := (l1Entries*8 + clusterSize - 1) / clusterSize
	metadata := 3 + l1Clusters // header, refcount table and block, L1

	hdr := make([]byte, headerLength, 1024)
	be := binary.BigEndian
	copy(hdr[0:4], "QFI\xfb")
	be.PutUint32(hdr[4:], 3)
	// 8: backing file offset and 16: its length, set below
	be.PutUint32(hdr[20:], clusterBits)
	be.PutUint64(hdr[24:], uint64(size))
	// 32: no encryption
	be.PutUint32(hdr[36:], uint32(l1Entries))
	be.PutUint64(hdr[40:], l1Offset)
	be.PutUint64(hdr[48:], refcountTableOffset)
	be.PutUint32(hdr[56:], 1) // refcount table clusters
	// 60: no snapshots; 72, 80, 88: no incompatible, compatible or
	// autoclear features (so no lazy refcounts, no dirty bit)
	be.PutUint32(hdr[96:], refcountOrder)
	be.PutUint32(hdr[100:], headerLength)
	// 104: compression type zlib (0), then padding to headerLength

	if backing != "" {
		hdr = appendExtension(hdr, extBackingFormat, []byte("qcow2"))
	}
	table := make([]byte, 0, len(featureNames)*(2+featureNameLen))
	for _, fn := range featureNames {
		var name [featureNameLen]byte
		copy(name[:], fn.name)
		table = append(append(table, fn.kind, fn.bit), name[:]...)
	}
	hdr = appendExtension(hdr, extFeatureNameTable, table)
	hdr = append(hdr, make([]byte, 8)...) // end of the extension area
	if backing != "" {
		be.PutUint64(hdr[8:], uint64(len(hdr)))
		be.PutUint32(hdr[16:], uint32(len(backing)))
		hdr = append(hdr, backing...)
	}

	var rt [8]byte
	be.PutUint64(rt[:], refcountBlockOffset)
	rb := make([]byte, 2*metadata)
	for i := range metadata {
		be.PutUint16(rb[2*i:], 1)
	}
	for _, w := range []struct {
		data []byte
		off  int64
	}{{hdr, 0}, {rt[:], refcountTableOffset}, {rb, refcountBlockOffset}} {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("writing qcow2 metadata: %w", err)
		}
	}
	if err := f.Truncate(l1Offset + 8*l1Entries); err != nil {
		return fmt.Errorf("sizing qcow2 L1 table: %w", err)
	}
	return nil
}

// appendExtension appends a header extension, padded to 8 bytes.
func appendExtension(hdr []byte, kind uint32, data []byte) []byte {
	hdr = binary.BigEndian.AppendUint32(hdr, kind)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(data)))
	hdr = append(hdr, data...)
	return append(hdr, make([]byte, (8-len(data)%8)%8)...)
}
