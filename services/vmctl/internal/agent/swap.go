package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// swapPageSize is the page size of the guests' kernels: x86_64, whose
// Linux accepts a swap area only when its header was written for its own
// page size.
const swapPageSize = 4096

// swapSpace names the uuids of swap areas, derived from the machine uuid
// so that a file written again carries the same one.
var swapSpace = uuid.MustParse("9b2c4d1e-7f3a-5b60-8c4d-2e1f0a9b8c7d")

// swapHeader returns the first page of a Linux swap area of size bytes,
// in the format mkswap writes (version 1, little-endian, no label): the
// guest can swapon the disk as it is. Offsets are those of the kernel's
// union swap_header: 1024 bytes left for a boot block, then version,
// last_page, nr_badpages, the uuid and the label; the magic closes the
// page.
func swapHeader(size int64, id uuid.UUID) []byte {
	b := make([]byte, swapPageSize)
	le := binary.LittleEndian
	le.PutUint32(b[1024:], 1)                           // version
	le.PutUint32(b[1028:], uint32(size/swapPageSize-1)) // last_page
	le.PutUint32(b[1032:], 0)                           // nr_badpages
	copy(b[1036:1052], id[:])                           // sws_uuid
	copy(b[swapPageSize-len(swapMagic):], swapMagic)    // magic
	return b
}

const swapMagic = "SWAPSPACE2"

// writeSwap makes path a sparse raw swap disk of mib MiB for machine id,
// unless it is one already: a define sent again must not wipe the swap of
// a guest that runs. The file appears whole or not at all.
func writeSwap(path string, mib int64, machineUUID string) error {
	size := mib << 20
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vmctl agent: check the swap disk: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".swap-*")
	if err != nil {
		return fmt.Errorf("vmctl agent: write the swap disk: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	header := swapHeader(size, uuid.NewSHA1(swapSpace, []byte(machineUUID)))
	_, err = tmp.Write(header)
	if err == nil {
		err = tmp.Truncate(size)
	}
	if err == nil {
		err = tmp.Chmod(0o600) // swap holds the guest's memory
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("vmctl agent: write the swap disk: %w", err)
	}
	return nil
}
