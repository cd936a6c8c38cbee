package rbd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
)

// TestContract runs the backend contract suite against the Ceph pool named
// by STRATUS_TEST_CEPH_POOL, in a fresh RBD namespace per subtest, as the
// Ceph user STRATUS_TEST_CEPH_USER with STRATUS_TEST_CEPH_CONF if those are
// set. Without a pool the suite is skipped, and says so rather than pass:
// the unit tests beside it check command lines and parsing only.
func TestContract(t *testing.T) {
	pool := os.Getenv("STRATUS_TEST_CEPH_POOL")
	if pool == "" {
		t.Skip("the backend contract suite did NOT run for rbd: no Ceph cluster is configured (STRATUS_TEST_CEPH_POOL is not set); " +
			"set STRATUS_TEST_CEPH_POOL=<pool> (and STRATUS_TEST_CEPH_USER, STRATUS_TEST_CEPH_CONF if needed) on a host with rbd " +
			"(Debian package ceph-common) and qemu-img with rbd support (qemu-block-extra), against Ceph 16 or later, to run it")
	}
	if _, err := exec.LookPath("rbd"); err != nil {
		t.Fatalf("STRATUS_TEST_CEPH_POOL is set but rbd is missing (Debian package ceph-common): %v", err)
	}
	cfg := Config{Pool: pool, User: os.Getenv("STRATUS_TEST_CEPH_USER"), ConfFile: os.Getenv("STRATUS_TEST_CEPH_CONF")}
	t.Run("Run", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend { return newNamespace(t, cfg)[0] })
	})
	t.Run("RunShared", func(t *testing.T) {
		backendtest.RunShared(t, func(t *testing.T) (backend.Backend, backend.Backend) {
			b := newNamespace(t, cfg)
			return b[0], b[1]
		})
	})
}

// newNamespace makes an RBD namespace in cfg's pool for one subtest,
// emptied and removed when the subtest ends, and returns two backends over
// it, as two pdisk instances would have.
func newNamespace(t *testing.T, cfg Config) [2]*Backend {
	t.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	cfg.Namespace = "pdisk-test-" + hex.EncodeToString(r[:])
	var bs [2]*Backend
	for i := range bs {
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		bs[i] = b
	}
	b := bs[0]
	if out, err := b.rbd(t.Context(), "namespace", "create", "--pool", cfg.Pool, "--namespace", cfg.Namespace); err != nil {
		t.Fatalf("rbd namespace create: %v: %s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Clones before their origins: each pass deletes what has no
		// clones left.
		for range 5 {
			out, err := b.rbd(ctx, append([]string{"ls", "--format", "json"}, b.poolArgs()...)...)
			var names []string
			if err != nil || json.Unmarshal(out, &names) != nil || len(names) == 0 {
				break
			}
			for _, name := range names {
				if backend.ValidID(name) {
					_ = b.Delete(ctx, name)
				}
			}
			_, _ = b.RemoveTemp(ctx, -time.Hour)
		}
		if _, err := b.rbd(ctx, "namespace", "remove", "--pool", cfg.Pool, "--namespace", cfg.Namespace); err != nil {
			t.Errorf("rbd namespace remove (the namespace %s is left behind): %v", cfg.Namespace, err)
		}
	})
	if err := b.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestNewRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Pool: ""},
		{Pool: "vol/umes"},
		{Pool: "volumes@x"},
		{Pool: "volumes:id=admin"},
		{Pool: "volumes", Namespace: "a/b"},
		{Pool: "volumes", User: "pdisk:conf=/tmp/evil"},
		{Pool: "volumes", ConfFile: "/etc/ceph/a:b.conf"},
		{Pool: "volumes", ConfFile: `/etc/ceph/a\b.conf`},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a name that does not fit an rbd spec or a QEMU rbd: URL", cfg)
		}
	}
	if _, err := New(Config{Pool: "volumes", Namespace: "pdisk", User: "pdisk.vm_1", ConfFile: "/etc/ceph/ceph.conf"}); err != nil {
		t.Errorf("New refused a valid configuration: %v", err)
	}
}
