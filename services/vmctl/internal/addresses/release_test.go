package addresses_test

import (
	"context"
	"testing"

	"stratuslab.dev/services/vmctl/internal/addresses"
)

// TestReleaseOne frees one address of a machine and leaves its others,
// and does nothing to an address that is free or another machine's.
func TestReleaseOne(t *testing.T) {
	e := newEnv(t, five(), addresses.Pool{Network: addresses.Local, Subnet: "192.168.0.0/24", Range: "192.168.0.10-192.168.0.20"})
	l := e.replica()
	ctx := context.Background()
	pub, err := l.Allocate(ctx, addresses.Public, machine(1))
	if err != nil {
		t.Fatal(err)
	}
	local, err := l.Allocate(ctx, addresses.Local, machine(1))
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.Allocate(ctx, addresses.Public, machine(2))
	if err != nil {
		t.Fatal(err)
	}

	// Another machine's address, named as machine 1's: left alone.
	stolen := other
	stolen.Machine = machine(1)
	if err := l.ReleaseOne(ctx, stolen); err != nil {
		t.Fatal(err)
	}
	if got := e.holder(addresses.Public, other.IP); got != machine(2) {
		t.Fatalf("releasing another machine's address: it is %q's, want %q's", got, machine(2))
	}

	if err := l.ReleaseOne(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if got := e.holder(addresses.Public, pub.IP); got != "" {
		t.Errorf("%s is still %q's after ReleaseOne", pub.IP, got)
	}
	if got := e.holder(addresses.Local, local.IP); got != machine(1) {
		t.Errorf("the machine's other address %s is %q's, want %q's", local.IP, got, machine(1))
	}
	// Again, on a free address: nothing to do.
	if err := l.ReleaseOne(ctx, pub); err != nil {
		t.Errorf("releasing a free address: %v", err)
	}
	if err := l.ReleaseOne(ctx, addresses.Lease{}); err != nil {
		t.Errorf("releasing a lease of no machine: %v", err)
	}
	if n := e.stored(); n != 2 {
		t.Errorf("%d leases stored, want 2", n)
	}
}
