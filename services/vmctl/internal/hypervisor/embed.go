package hypervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"stratuslab.dev/platform/errs"
)

// eventLoop is libvirt's event loop, which is process-wide in libvirt
// itself: registering it twice is an error, so this is the one piece of
// package state.
var eventLoop struct {
	once sync.Once
	err  error
}

// startEventLoop registers libvirt's default event loop and runs it for the
// rest of the process. The embedded QEMU driver talks to its QEMU
// monitors through it, and keep-alives of remote connections need it.
func startEventLoop() error {
	eventLoop.once.Do(func() {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			eventLoop.err = err
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					time.Sleep(100 * time.Millisecond) // do not spin on a broken loop
				}
			}
		}()
	})
	return eventLoop.err
}

// prepareEmbedRoot makes the embedded driver's directory and, unless the
// operator wrote one, its qemu.conf.
//
// The embedded driver reads root/etc/qemu.conf. Its defaults do not suit
// a process that is not libvirtd: as root it would run QEMU as the
// distribution's QEMU user, which cannot open files under a test's
// private directories, and it would send QEMU's output to virtlogd,
// which does not run here ("Failed to connect socket to
// '/run/libvirt/virtlogd-sock'").
func prepareEmbedRoot(root string) error {
	if root == "" || !filepath.IsAbs(root) {
		return errs.Errorf(errs.Invalid, "The embedded QEMU driver needs an absolute directory: write qemu:///embed?root=/path (got %q).", root)
	}
	conf := filepath.Join(root, "etc", "qemu.conf")
	if _, err := os.Stat(conf); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check %s: %w", conf, err)
	}
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		return fmt.Errorf("make the embedded QEMU driver's directory: %w", err)
	}
	text := fmt.Sprintf(`# Written by the vmctl agent for the embedded QEMU driver.
# Run QEMU as the agent's own user and group ("+N" is a numeric id).
user = "+%d"
group = "+%d"
# No virtlogd runs beside an embedded driver: QEMU logs to files.
stdio_handler = "file"
# Files keep their owner, so there is nothing to remember in xattrs.
remember_owner = 0
`, os.Getuid(), os.Getgid())
	tmp := conf + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", conf, err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		return fmt.Errorf("write %s: %w", conf, err)
	}
	return nil
}
