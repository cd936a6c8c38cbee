package volume

import (
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
)

func TestAttachDetach(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	rw := func() *Volume { return &Volume{UUID: "u", Type: DataImageRawReadWrite, State: Available} }
	ro := func() *Volume { return &Volume{UUID: "u", Type: DataImageRawReadOnly, State: Available} }
	tests := []struct {
		name      string
		v         *Volume
		steps     func(v *Volume) error
		wantCode  errs.Code
		wantCount int
		wantState State
		wantMach  string
	}{
		{"attach read-write", rw(), func(v *Volume) error { return v.Attach("Machine/a", "vdb", true, at) }, "", 1, InUse, "Machine/a"},
		{"same machine twice is one attachment", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", true, at)
			return v.Attach("Machine/a", "vdb", true, at)
		}, "", 1, InUse, "Machine/a"},
		{"read-write holds one machine", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", true, at)
			return v.Attach("Machine/b", "vdb", true, at)
		}, errs.Conflict, 1, InUse, "Machine/a"},
		{"read-only holds many", ro(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdc", false, at)
			return v.Attach("Machine/b", "vdc", false, at)
		}, "", 2, InUse, "Machine/a"},
		{"hot unplug of a launch disk is refused", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", false, at)
			_, _, err := v.Detach("Machine/a", true)
			return err
		}, errs.Conflict, 1, InUse, "Machine/a"},
		{"launch disk leaves at the end", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", false, at)
			_, _, err := v.Detach("Machine/a", false)
			return err
		}, "", 0, Available, ""},
		{"hot-plugged disk unplugs", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", true, at)
			_, ok, err := v.Detach("Machine/a", true)
			if !ok {
				t.Error("detach of a held volume reported nothing held")
			}
			return err
		}, "", 0, Available, ""},
		{"detaching a stranger is a no-op", rw(), func(v *Volume) error {
			_ = v.Attach("Machine/a", "vdb", true, at)
			_, ok, err := v.Detach("Machine/b", true)
			if ok {
				t.Error("detach of a machine that does not hold it reported a detachment")
			}
			return err
		}, "", 1, InUse, "Machine/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.steps(tt.v)
			if got := errs.CodeOf(err); (err == nil) != (tt.wantCode == "") || (err != nil && got != tt.wantCode) {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.wantCode)
			}
			if tt.v.Count != tt.wantCount || tt.v.State != tt.wantState || tt.v.Machine != tt.wantMach {
				t.Errorf("count %d state %s machine %q, want %d %s %q", tt.v.Count, tt.v.State, tt.v.Machine, tt.wantCount, tt.wantState, tt.wantMach)
			}
		})
	}
}

func TestHotPlugMessage(t *testing.T) {
	t.Parallel()
	v := &Volume{UUID: "u", Type: DataImageRawReadWrite, State: Available}
	_ = v.Attach("Machine/a", "vdb", false, time.Now())
	_, _, err := v.Detach("Machine/a", true)
	if err == nil || !contains(err.Error(), "Disk have not been hot-plugged") {
		t.Fatalf("got %v, want the original message", err)
	}
}

func TestUUIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"Volume/0f8e8a4c-1d2b-4c3d-9e8f-0a1b2c3d4e5f", "0f8e8a4c-1d2b-4c3d-9e8f-0a1b2c3d4e5f", true},
		{"0f8e8a4c-1d2b-4c3d-9e8f-0a1b2c3d4e5f", "0f8e8a4c-1d2b-4c3d-9e8f-0a1b2c3d4e5f", true},
		{"0F8E8A4C-1D2B-4C3D-9E8F-0A1B2C3D4E5F", "", false},
		{"../../etc/passwd", "", false},
		{"Volume/", "", false},
		{"0f8e8a4c1d2b4c3d9e8f0a1b2c3d4e5f", "", false},
	} {
		got, err := UUIDOf(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("UUIDOf(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && errs.CodeOf(err) != errs.Invalid {
			t.Errorf("UUIDOf(%q): code %q, want invalid", tt.in, errs.CodeOf(err))
		}
	}
	a, b := OriginUUID("BEE8-MMAw-Lk_IgsEExAy3d9R8h"), OriginUUID("GOaxJFdoEXvqAm9ArJgnZ0_ky6F")
	if !ValidUUID(a) || !ValidUUID(b) || a == b || a != OriginUUID("BEE8-MMAw-Lk_IgsEExAy3d9R8h") {
		t.Errorf("origin uuids %q %q: want valid, distinct and stable", a, b)
	}
}

func TestACLFor(t *testing.T) {
	t.Parallel()
	alice := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	bob := cimi.Identity{User: "bob", Roles: []string{cimi.RoleUser}}
	root := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	for _, tt := range []struct {
		vis                    string
		bobViews, bobModifies  bool
		aliceModifies, rootAll bool
	}{
		{Private, false, false, true, true},
		{Public, true, false, true, true},
	} {
		acl := ACLFor("alice", tt.vis)
		if acl.Allows(bob, cimi.View) != tt.bobViews || acl.Allows(bob, cimi.Modify) != tt.bobModifies ||
			acl.Allows(alice, cimi.All) != tt.aliceModifies || acl.Allows(root, cimi.All) != tt.rootAll {
			t.Errorf("%s: %+v grants the wrong rights", tt.vis, acl)
		}
		v := &Volume{}
		v.SetACL(acl)
		if got := v.Access(); got.Owner != acl.Owner || len(got.Rules) != len(acl.Rules) {
			t.Errorf("ACL round trip: %+v, want %+v", got, acl)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
