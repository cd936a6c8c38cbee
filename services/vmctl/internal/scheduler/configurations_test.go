package scheduler_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/vmctl/internal/machinetype"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// TestConfigurations: a new cloud is seeded with the standard types,
// everybody reads them, administrators add and edit types checked as
// machine types are.
func TestConfigurations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testkit.JetStream(t)
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(quiet()), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(ctx, scheduler.ConfigurationKind)
	if err != nil {
		t.Fatal(err)
	}
	c := scheduler.NewConfigurations(coll)
	sorted := func() []machinetype.Type {
		d := machinetype.Defaults()
		out := make([]machinetype.Type, 0, len(d))
		for _, name := range []string{"c1.medium", "c1.xlarge", "m1.large", "m1.medium", "m1.small", "m1.xlarge", "t1.micro"} {
			for _, t := range d {
				if t.Name == name {
					out = append(out, t)
				}
			}
		}
		return out
	}
	if got := c.Types(ctx); !reflect.DeepEqual(got, machinetype.Defaults()) {
		t.Errorf("types of an empty collection = %v, want the standard ones", got)
	}
	for range 2 { // seeding again changes nothing
		if err := c.Seed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Types(ctx); !reflect.DeepEqual(got, sorted()) {
		t.Errorf("types after Seed = %v", got)
	}
	doc, err := coll.Get(ctx, scheduler.ConfigurationKind+"/m1.small")
	if err != nil {
		t.Fatal(err)
	}
	var small map[string]any
	_ = json.Unmarshal(doc.Body, &small)
	if small["memory"] != float64(1572864) || small["memoryMiB"] != float64(1536) || small["cpu"] != float64(1) || small["swapMiB"] != float64(1536) {
		t.Errorf("m1.small as stored: %s", doc.Body)
	}

	k := c.Kind()
	admin := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	alice := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	if k.CanCreate(alice) || !k.CanCreate(admin) {
		t.Error("only administrators create machine types")
	}
	if acl := k.DefaultACL(admin, "", nil); !acl.Allows(cimi.Identity{}, cimi.View) || acl.Allows(alice, cimi.Modify) {
		t.Errorf("default acl %+v: everybody reads, nobody but administrators writes", acl)
	}
	id := scheduler.ConfigurationKind + "/x1.big"
	for _, tc := range []struct {
		name string
		id   string
		body map[string]any
		code errs.Code
	}{
		{"new type", id, map[string]any{"name": "x1.big", "cpu": 8, "memoryMiB": 32768, "swapMiB": 0}, ""},
		{"name from the id", id, map[string]any{"cpu": 8, "memoryMiB": 32768, "swapMiB": 0}, ""},
		{"name not the id's", id, map[string]any{"name": "x1.small", "cpu": 1, "memoryMiB": 512, "swapMiB": 0}, errs.Invalid},
		{"no cpu", id, map[string]any{"memoryMiB": 512}, errs.Invalid},
		{"too little memory", id, map[string]any{"cpu": 1, "memoryMiB": 32}, errs.Invalid},
		{"negative swap", id, map[string]any{"cpu": 1, "memoryMiB": 512, "swapMiB": -1}, errs.Invalid},
		{"cpu a string", id, map[string]any{"cpu": "1", "memoryMiB": 512}, errs.Invalid},
		{"bad name", scheduler.ConfigurationKind + "/x y", map[string]any{"cpu": 1, "memoryMiB": 512}, errs.Invalid},
	} {
		out, err := k.New(ctx, admin, tc.id, tc.body)
		if errs.CodeOf(err) != tc.code {
			t.Errorf("%s: error %v, want code %q", tc.name, err, tc.code)
			continue
		}
		if err == nil && (out["name"] != "x1.big" || out["memory"] != int64(32768)<<10) {
			t.Errorf("%s: document %v", tc.name, out)
		}
	}
	current := map[string]any{"id": id, "name": "x1.big", "cpu": 8, "memoryMiB": 32768, "swapMiB": 0}
	if out, err := k.Change(ctx, admin, current, map[string]any{"memoryMiB": 16384}, nil); err != nil || out["memory"] != int64(16384)<<10 || out["cpu"] != 8 {
		t.Errorf("edit memory: %v, %v", out, err)
	}
	if _, err := k.Change(ctx, admin, map[string]any{"id": id, "name": "x1.big", "cpu": 8, "memoryMiB": 32768}, map[string]any{"cpu": 0}, nil); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("edit cpu to 0: %v", err)
	}
	if _, err := k.Change(ctx, admin, map[string]any{"id": id, "name": "x1.big", "cpu": 8, "memoryMiB": 32768}, map[string]any{"name": "other"}, nil); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("rename: %v", err)
	}
}
