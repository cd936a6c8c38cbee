package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// header is the part of a qcow2 header the backend needs. Reading it directly
// (QEMU's docs/interop/qcow2.txt) keeps List at one small read per volume
// instead of one qemu-img process, and works while QEMU holds the file lock.
type header struct {
	size    int64
	backing string
}

const maxBackingName = 1023 // the qcow2 specification's limit

func readHeader(r io.ReaderAt) (header, error) {
	var buf [32]byte
	if _, err := r.ReadAt(buf[:], 0); err != nil {
		return header{}, fmt.Errorf("reading qcow2 header: %w", err)
	}
	if string(buf[:4]) != "QFI\xfb" {
		return header{}, errors.New("not a qcow2 file")
	}
	off := binary.BigEndian.Uint64(buf[8:16])
	n := binary.BigEndian.Uint32(buf[16:20])
	h := header{size: int64(binary.BigEndian.Uint64(buf[24:32]))}
	if h.size < 0 {
		return header{}, errors.New("qcow2 virtual size out of range")
	}
	if off == 0 || n == 0 {
		return h, nil
	}
	if n > maxBackingName || off > 1<<40 {
		return header{}, errors.New("qcow2 backing file name out of range")
	}
	name := make([]byte, n)
	if _, err := r.ReadAt(name, int64(off)); err != nil {
		return header{}, fmt.Errorf("reading qcow2 backing file name: %w", err)
	}
	h.backing = string(name)
	return h, nil
}
