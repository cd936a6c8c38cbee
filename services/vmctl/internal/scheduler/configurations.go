package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/vmctl/internal/machinetype"
)

// ConfigurationKind is the CIMI kind of machine types.
const ConfigurationKind = "MachineConfiguration"

// configuration is a MachineConfiguration document: a machine type, with
// its memory also in KiB as CIMI counts it.
type configuration struct {
	machinetype.Type
	Memory int64 `json:"memory"`
}

// Configurations serves the machine types: everybody reads them,
// administrators edit them.
type Configurations struct {
	coll store.Collection
}

// NewConfigurations returns the machine types kept in coll.
func NewConfigurations(coll store.Collection) *Configurations { return &Configurations{coll: coll} }

// Seed stores the standard types that are missing (a new cloud).
func (c *Configurations) Seed(ctx context.Context) error {
	for _, t := range machinetype.Defaults() {
		body, err := c.document(t)
		if err != nil {
			return err
		}
		if _, err := c.coll.Create(ctx, ConfigurationKind+"/"+t.Name, body); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return nil
}

func (c *Configurations) document(t machinetype.Type) (json.RawMessage, error) {
	acl := cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role},
		Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View}}}
	doc := map[string]any{
		"id": ConfigurationKind + "/" + t.Name, "resourceURI": cimi.ResourceURI(ConfigurationKind), "name": t.Name,
		"cpu": t.CPU, "memoryMiB": t.MemoryMiB, "memory": int64(t.MemoryMiB) << 10, "swapMiB": t.SwapMiB, "acl": acl,
	}
	return json.Marshal(doc)
}

// Types returns the machine types; the standard ones when none is stored.
func (c *Configurations) Types(ctx context.Context) []machinetype.Type {
	p, err := c.coll.Query(ctx, cimi.Query{}, admin)
	if err != nil || len(p.Docs) == 0 {
		return machinetype.Defaults()
	}
	var out []machinetype.Type
	for _, d := range p.Docs {
		var t configuration
		if json.Unmarshal(d.Body, &t) == nil && t.Validate() == nil {
			out = append(out, t.Type)
		}
	}
	slices.SortFunc(out, func(a, b machinetype.Type) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// admin is the identity the scheduler reads its own collections as.
var admin = cimi.Identity{Roles: []string{cimi.RoleAdmin}}

// Kind is the CIMI MachineConfiguration kind.
func (c *Configurations) Kind() resource.Kind {
	check := func(id string, body map[string]any) (map[string]any, error) {
		raw, _ := json.Marshal(body)
		var t configuration
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, errs.Errorf(errs.Invalid, "A machine configuration has a name, cpu, memoryMiB and swapMiB: %v.", err)
		}
		if t.Name == "" {
			t.Name = strings.TrimPrefix(id, ConfigurationKind+"/")
		}
		if ConfigurationKind+"/"+t.Name != id {
			return nil, errs.Errorf(errs.Invalid, "A machine configuration is named after its type: %s, not %s.", ConfigurationKind+"/"+t.Name, id)
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		body["name"], body["cpu"], body["memoryMiB"], body["swapMiB"] = t.Name, t.CPU, t.MemoryMiB, t.SwapMiB
		body["memory"] = int64(t.MemoryMiB) << 10
		return body, nil
	}
	return resource.Kind{
		Name:       ConfigurationKind,
		Collection: c.coll,
		CanCreate:  func(who cimi.Identity) bool { return who.IsAdmin() },
		New: func(_ context.Context, _ cimi.Identity, id string, body map[string]any) (map[string]any, error) {
			return check(id, body)
		},
		Change: func(_ context.Context, _ cimi.Identity, current, body map[string]any, _ []string) (map[string]any, error) {
			for k, v := range body {
				current[k] = v
			}
			id, _ := current["id"].(string)
			return check(id, current)
		},
		DefaultACL: func(cimi.Identity, string, map[string]any) cimi.ACL {
			return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role},
				Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View}}}
		},
	}
}
