package hosts

import (
	"context"
	"encoding/json"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
)

// Actions of the Host kind: administrators take a host out of service for
// maintenance (no new machines; those there stay) and put it back.
const (
	ActionMaintenance = "maintenance"
	ActionEnable      = "enable"
)

// CIMIKind is the Host kind as CIMI serves it: agents write hosts,
// administrators read them, switch maintenance on and off, and delete a
// host that holds no machine (a decommissioned one).
func CIMIKind(coll store.Collection) resource.Kind {
	set := func(on bool) func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error) {
		return func(_ context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
			current["maintenance"] = on
			return current, nil
		}
	}
	return resource.Kind{
		Name:       Kind,
		Collection: coll,
		Change: func(context.Context, cimi.Identity, map[string]any, map[string]any, []string) (map[string]any, error) {
			return nil, errs.Errorf(errs.Invalid, "A host describes itself through its agent; administrators use the %s and %s actions.", ActionMaintenance, ActionEnable)
		},
		Remove: func(_ context.Context, _ cimi.Identity, current map[string]any) error {
			raw, _ := json.Marshal(current["reservations"])
			var held map[string]Reservation
			_ = json.Unmarshal(raw, &held)
			if len(held) > 0 {
				return errs.Errorf(errs.Conflict, "Host %v still holds %d machines; kill or move them first.", current["id"], len(held))
			}
			return nil
		},
		Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
			ActionMaintenance: set(true),
			ActionEnable:      set(false),
		},
	}
}
