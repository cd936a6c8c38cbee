package hypervisor

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"testing"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/errs"
)

// embedRoot is the one embedded QEMU driver directory of this test
// process: libvirt refuses a second root in the same process ("Cannot
// open embedded driver at path ..., already open with path ...").
var embedRoot struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if embedRoot.dir != "" {
		cleanEmbed(embedRoot.dir)
	}
	os.Exit(code)
}

// embedURI returns the URI of the process's embedded QEMU driver.
func embedURI(t testing.TB) string {
	t.Helper()
	embedRoot.once.Do(func() {
		embedRoot.dir, embedRoot.err = os.MkdirTemp("", "hypervisor-embed-")
	})
	if embedRoot.err != nil {
		t.Fatalf("make the embedded driver's directory: %v", embedRoot.err)
	}
	return "qemu:///embed?root=" + embedRoot.dir
}

// cleanEmbed kills the QEMU processes a failed test may have left, since
// they outlive this process, and removes the directory.
func cleanEmbed(dir string) {
	ctx := context.Background()
	h, err := Open(ctx, "qemu:///embed?root="+dir, Options{})
	if err == nil {
		doms, _ := h.List(ctx)
		for _, d := range doms {
			_ = h.Destroy(ctx, d.UUID)
			_ = h.Undefine(ctx, d.UUID)
		}
		_ = h.Close()
	}
	_ = os.RemoveAll(dir)
}

// open connects to uri and closes the connection at the end of the test.
func open(t testing.TB, uri string) *Libvirt {
	t.Helper()
	h, err := Open(context.Background(), uri, Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", uri, err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// newUUID returns a random version 4 uuid.
func newUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// smallDomain is a domain that QEMU can run without any disk: its firmware
// finds nothing to boot and says so on the serial console.
func smallDomain(t testing.TB) Domain {
	t.Helper()
	id := newUUID(t)
	return Domain{UUID: id, Name: "stratus-" + id, CPU: 1, MemoryMiB: 64, SerialLog: t.TempDir() + "/serial.log"}
}

// wantCode fails the test unless err carries code (or is nil when code
// is empty).
func wantCode(t testing.TB, what string, err error, code errs.Code) {
	t.Helper()
	if got := errs.CodeOf(err); got != code {
		t.Fatalf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

// definition reads a domain's persistent (inactive) or live definition
// through the connection, as an operator's virsh dumpxml would.
func definition(t testing.TB, h *Libvirt, uuid string, inactive bool) *libvirtxml.Domain {
	t.Helper()
	var x *libvirtxml.Domain
	err := h.withDomain(context.Background(), uuid, func(dom *libvirt.Domain) error {
		var err error
		x, err = domainXMLOf(dom, inactive)
		return err
	})
	if err != nil {
		t.Fatalf("read the definition of %s: %v", uuid, err)
	}
	return x
}
