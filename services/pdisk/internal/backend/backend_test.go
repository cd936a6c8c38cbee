package backend

import (
	"testing"

	"stratuslab.dev/platform/errs"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a", true},
		{"0B6F4F5E-2A7C-4D0E-9C1A-3F2E1D0C9B8A", false},
		{"0b6f4f5e2a7c4d0e9c1a3f2e1d0c9b8a", false},
		{"../../../../etc/passwd", false},
		{"0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8/", false},
		{"0b6f4f5e/2a7c-4d0e-9c1a-3f2e1d0c9b8a", false},
		{"{0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a}", false},
		{"", false},
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
		if err := CheckID(tc.id); (err == nil) != tc.want || (err != nil && errs.CodeOf(err) != errs.Invalid) {
			t.Errorf("CheckID(%q) = %v", tc.id, err)
		}
	}
}

func TestCheckSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int64
		ok   bool
	}{{1, true}, {MaxSizeGiB, true}, {0, false}, {-1, false}, {MaxSizeGiB + 1, false}} {
		if err := CheckSize(tc.size); (err == nil) != tc.ok {
			t.Errorf("CheckSize(%d) = %v", tc.size, err)
		}
	}
}

func TestLocationSpec(t *testing.T) {
	t.Parallel()
	if s := (Location{Path: "/a"}).Spec(); s != "/a" {
		t.Errorf("Spec = %q", s)
	}
	if s := (Location{URL: "rbd:pool/x"}).Spec(); s != "rbd:pool/x" {
		t.Errorf("Spec = %q", s)
	}
}
