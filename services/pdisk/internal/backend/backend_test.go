package backend

import (
	"errors"
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

func TestCheckSnapshot(t *testing.T) {
	t.Parallel()
	a, b := "0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a", "6c1b2a9e-0f4d-4c3b-9a8e-1d2c3b4a5f60"
	for _, tc := range []struct {
		id, origin string
		ok         bool
	}{{a, b, true}, {a, a, false}, {"x", b, false}, {a, "x", false}} {
		if err := CheckSnapshot(tc.id, tc.origin); (err == nil) != tc.ok || (err != nil && errs.CodeOf(err) != errs.Invalid) {
			t.Errorf("CheckSnapshot(%q, %q) = %v", tc.id, tc.origin, err)
		}
	}
}

func TestGrowTo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size, sizeGiB, want int64
		code                errs.Code
	}{
		{GiB, 3, 3 * GiB, ""},
		{3 * GiB, 3, 3 * GiB, ""},
		{GiB + 1, 2, 2 * GiB, ""},
		{3 * GiB, 2, 0, errs.Invalid},
		{GiB + 1, 1, 0, errs.Invalid},
	} {
		if got, err := GrowTo("v", tc.size, tc.sizeGiB); got != tc.want || errs.CodeOf(err) != tc.code {
			t.Errorf("GrowTo(%d bytes, %d GiB) = %d, %v; want %d, code %q", tc.size, tc.sizeGiB, got, err, tc.want, tc.code)
		}
	}
}

func TestAbsent(t *testing.T) {
	t.Parallel()
	broken := errors.New("the storage did not answer")
	for _, tc := range []struct {
		lookup error
		code   errs.Code
	}{
		{nil, errs.Conflict},
		{NotFound("v"), ""},
		{broken, errs.Internal},
	} {
		if err := Absent("v", tc.lookup); errs.CodeOf(err) != tc.code {
			t.Errorf("Absent after a lookup that gave %v = %v; want code %q", tc.lookup, err, tc.code)
		}
	}
	if err := Absent("v", broken); err != broken {
		t.Errorf("Absent does not pass the lookup's own error on: %v", err)
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
