package qcow2

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

// lockPrefix names the per-volume lock files: ".lock-<id>". The dot keeps
// them out of a casual ls and, with no ".qcow2" suffix, out of List.
const lockPrefix = ".lock-"

// maxPoll bounds the wait between two tries at a lock another process holds.
const maxPoll = 16 * time.Millisecond

// volumeLocks makes deleting a volume exclusive against snapshotting it, so
// that a Delete never removes an origin a Snapshot is about to name as its
// backing file. Between processes sharing the directory it is an flock(2)
// on the volume's lock file: shared for Snapshot, exclusive for Delete.
// Inside one process the RWMutex does the same, and all goroutines
// snapshotting one origin share a single flocked descriptor. That matters
// on NFS, where Linux emulates flock with POSIX locks, which belong to the
// process and are all dropped when any of its descriptors of the file is
// closed.
type volumeLocks struct {
	dir string
	// mu is held for reading by snapshots and for writing by deletes and
	// by the lock-file sweep.
	mu sync.RWMutex
	// sharedMu guards shared, which holds the origins being snapshotted.
	sharedMu sync.Mutex
	shared   map[string]*sharedLock
}

// sharedLock is one process's shared flock on one volume's lock file.
type sharedLock struct {
	// mu is held while the flock is being taken, so that the other
	// goroutines wait for it rather than open the file again.
	mu sync.Mutex
	fd int // -1 until locked
	// users counts the goroutines holding or waiting for the lock; guarded
	// by volumeLocks.sharedMu. The last one out closes fd.
	users int
}

func newVolumeLocks(dir string) *volumeLocks {
	return &volumeLocks{dir: dir, shared: map[string]*sharedLock{}}
}

func (l *volumeLocks) path(id string) string { return filepath.Join(l.dir, lockPrefix+id) }

func (l *volumeLocks) volumeGone(id string) bool {
	_, err := os.Lstat(filepath.Join(l.dir, id+ext))
	return errors.Is(err, fs.ErrNotExist)
}

// lockShared keeps volume id from being deleted, by this process or any
// other, until the returned function is called.
func (l *volumeLocks) lockShared(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.RLock()
	l.sharedMu.Lock()
	s := l.shared[id]
	if s == nil {
		s = &sharedLock{fd: -1}
		l.shared[id] = s
	}
	s.users++
	l.sharedMu.Unlock()

	s.mu.Lock()
	if s.fd < 0 {
		s.fd, err = flockFile(ctx, l.path(id), unix.LOCK_SH)
	}
	s.mu.Unlock()
	unlock = func() {
		l.sharedMu.Lock()
		s.users--
		if s.users == 0 {
			if s.fd >= 0 {
				_ = unix.Close(s.fd)
			}
			delete(l.shared, id)
		}
		l.sharedMu.Unlock()
		l.mu.RUnlock()
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// lockExclusive waits until no process snapshots volume id and keeps any
// from starting until the returned function is called. That function
// removes the lock file if the volume is gone by then.
func (l *volumeLocks) lockExclusive(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.Lock()
	fd, err := flockFile(ctx, l.path(id), unix.LOCK_EX)
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return func() {
		if l.volumeGone(id) {
			// Unlinking while locked is safe: a process waiting on the
			// old file sees it is no longer the one under the name.
			_ = unix.Unlink(l.path(id))
		}
		_ = unix.Close(fd)
		l.mu.Unlock()
	}, nil
}

// removeStale removes the lock files of volumes that do not exist and that
// no process holds, and returns their names: they are left when a Snapshot
// loses a race with the Delete of its origin, or by a process that died.
// Only the file of volume id is considered when id is not empty.
func (l *volumeLocks) removeStale(id string) ([]string, error) {
	var ids []string
	if id != "" {
		ids = []string{id}
	} else {
		ents, err := os.ReadDir(l.dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if v, ok := strings.CutPrefix(e.Name(), lockPrefix); ok && backend.ValidID(v) {
				ids = append(ids, v)
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var removed []string
	for _, id := range ids {
		if !l.volumeGone(id) {
			continue
		}
		fd, err := unix.Open(l.path(id), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone already
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil && l.volumeGone(id) {
			if same, err := sameFile(fd, l.path(id)); err == nil && same && unix.Unlink(l.path(id)) == nil {
				removed = append(removed, lockPrefix+id)
			}
		}
		_ = unix.Close(fd)
	}
	return removed, nil
}

// flockFile opens (creating it if needed) and flocks the file name with how
// (LOCK_SH or LOCK_EX), polling while another process holds it, and returns
// the descriptor. A lock holder may unlink the file before letting go, so
// a lock won on a file that is no longer under name is dropped and the
// file under name, which may be new, is locked instead.
func flockFile(ctx context.Context, name string, how int) (int, error) {
	delay := time.Millisecond
	for {
		// Read-only and readable by all suffices for flock, and lets
		// replicas running as different users share the directory.
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		for {
			err = unix.Flock(fd, how|unix.LOCK_NB)
			if err == unix.EINTR {
				continue
			}
			if err != unix.EWOULDBLOCK {
				break
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				_ = unix.Close(fd)
				return -1, ctx.Err()
			case <-t.C:
			}
			delay = min(2*delay, maxPoll)
		}
		if err != nil {
			_ = unix.Close(fd)
			return -1, &fs.PathError{Op: "flock", Path: name, Err: err}
		}
		same, err := sameFile(fd, name)
		if err != nil {
			_ = unix.Close(fd)
			return -1, err
		}
		if same {
			return fd, nil
		}
		_ = unix.Close(fd)
	}
}

// sameFile reports whether fd is the file now under name.
func sameFile(fd int, name string) (bool, error) {
	var open, named unix.Stat_t
	if err := unix.Fstat(fd, &open); err != nil {
		return false, fmt.Errorf("fstat %s: %w", name, err)
	}
	if err := unix.Stat(name, &named); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return open.Dev == named.Dev && open.Ino == named.Ino, nil
}

// lockError turns a failure to lock into what a caller of the backend sees.
func lockError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errs.Wrap(errs.Internal, err, "the storage backend could not lock the volume")
}
