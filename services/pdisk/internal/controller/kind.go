package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Kind is the CIMI Volume kind served through platform/resource.
func (c *Controller) Kind() resource.Kind {
	var volumes resource.Kind
	volumes.Name = volume.Kind
	volumes.Collection = c.cfg.Volumes
	volumes.CanCreate = func(who cimi.Identity) bool { return who.User != "" }
	volumes.New = c.newVolume
	volumes.Change = c.change
	volumes.Remove = c.remove
	volumes.Changed = c.changed
	volumes.DefaultACL = func(who cimi.Identity, _ string, doc map[string]any) cimi.ACL {
		vis, _ := doc["visibility"].(string)
		return volume.ACLFor(who.User, vis)
	}
	volumes.CheckID = func(local string) error {
		_, err := volume.UUIDOf(local)
		return err
	}
	volumes.View = view
	volumes.Refuse = refuse
	return volumes
}

// createAttrs are the attributes a create body may hold.
var createAttrs = []string{"size", "tag", "name", "description", "visibility", "volumeTemplate", "resourceURI", "properties"}

// editAttrs are the attributes a user may change.
var editAttrs = []string{"tag", "name", "description", "visibility"}

// newVolume validates a create body and provisions the volume's storage
// before the document is stored, so that no document ever names storage
// that does not exist; storage left by a crash before the document is
// written is the reconciler's to remove.
func (c *Controller) newVolume(ctx context.Context, who cimi.Identity, id string, body map[string]any) (map[string]any, error) {
	uuid, err := volume.UUIDOf(id)
	if err != nil {
		return nil, err
	}
	for attr := range body {
		if !slices.Contains(createAttrs, attr) {
			return nil, errs.Errorf(errs.Invalid, "A new volume cannot have the attribute %q: it takes %s.", short(attr), strings.Join(createAttrs[:5], ", "))
		}
	}
	size, err := sizeOf(body)
	if err != nil {
		return nil, err
	}
	// A taken id must not reach provision, which would count the other
	// volume against this user; a redelivery of this very command finds
	// its document and lets the framework finish.
	switch cur, _, err := c.load(ctx, uuid); {
	case err == nil:
		if cmd := bus.MetaFrom(ctx).GetCommandId(); cmd == "" || cur.Command != cmd {
			return nil, errs.Errorf(errs.Conflict, "Volume %s already exists.", uuid)
		}
		return cur.Map()
	case errs.CodeOf(err) != errs.NotFound:
		return nil, err
	}
	v := &volume.Volume{UUID: uuid, Owner: who.User, Type: volume.DataImageRawReadWrite, State: volume.Available, Visibility: volume.Private}
	v.SetSize(size)
	if err := applyEdits(v, body, editAttrs); err != nil {
		return nil, err
	}
	if err := c.provision(ctx, v); err != nil {
		return nil, err
	}
	return v.Map()
}

// sizeOf reads the size in GiB from "size" or from the CIMI template's
// capacity in KiB.
func sizeOf(body map[string]any) (int64, error) {
	raw, ok := body["size"]
	what := "size"
	unit := int64(1)
	if !ok {
		tmpl, _ := body["volumeTemplate"].(map[string]any)
		conf, _ := tmpl["volumeConfig"].(map[string]any)
		if raw, ok = conf["capacity"]; ok {
			what, unit = "volumeTemplate.volumeConfig.capacity", 1<<20
		}
	}
	if !ok || raw == nil {
		return 0, errs.Errorf(errs.Invalid, "A new volume needs a size: a whole number of GiB between %d and %d.", volume.MinSizeGiB, volume.MaxSizeGiB)
	}
	n, isNum := raw.(json.Number)
	if !isNum {
		return 0, errs.Errorf(errs.Invalid, "The %s must be a number of GiB between %d and %d, not %s.", what, volume.MinSizeGiB, volume.MaxSizeGiB, quoted(raw))
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errs.Errorf(errs.Invalid, "The %s %s is not a number.", what, short(n.String()))
	}
	if unit > 1 {
		f = math.Ceil(f / float64(unit)) // KiB to whole GiB, rounded up
	}
	if f != math.Trunc(f) {
		return 0, errs.Errorf(errs.Invalid, "The size must be a whole number of GiB, not %s.", short(n.String()))
	}
	if f < volume.MinSizeGiB || f > volume.MaxSizeGiB {
		return 0, errs.Errorf(errs.Invalid, "The size must be between %d and %d GiB, not %s.", volume.MinSizeGiB, volume.MaxSizeGiB, short(n.String()))
	}
	return int64(f), nil
}

// applyEdits copies the editable attributes of body listed in attrs into
// v, checked.
func applyEdits(v *volume.Volume, body map[string]any, attrs []string) error {
	for _, attr := range attrs {
		raw, ok := body[attr]
		if !ok {
			continue
		}
		s, isString := raw.(string)
		if raw == nil {
			s, isString = "", true
		}
		if !isString {
			return errs.Errorf(errs.Invalid, "The %s must be a string, not %s.", attr, quoted(raw))
		}
		switch attr {
		case "tag", "name":
			if err := checkText(attr, s, volume.MaxTag, false); err != nil {
				return err
			}
			if attr == "tag" {
				v.Tag = s
			} else {
				v.Name = s
			}
		case "description":
			if err := checkText(attr, s, volume.MaxDescription, true); err != nil {
				return err
			}
			v.Description = s
		case "visibility":
			up := strings.ToUpper(s)
			if up != volume.Private && up != volume.Public {
				return errs.Errorf(errs.Invalid, "The visibility must be PRIVATE or PUBLIC, not %q.", short(s))
			}
			if up != v.Visibility && v.Visibility != "" {
				acl := v.Access()
				if v.Owner != "" {
					acl = volume.ACLFor(v.Owner, up)
				}
				v.SetACL(acl)
			}
			v.Visibility = up
		}
	}
	return nil
}

// checkText refuses text that is too long, not UTF-8, or holds control
// characters (newlines are allowed in descriptions only).
func checkText(attr, s string, max int, multiline bool) error {
	if len(s) > max {
		return errs.Errorf(errs.Invalid, "The %s is %d bytes long; at most %d are allowed.", attr, len(s), max)
	}
	if !utf8.ValidString(s) {
		return errs.Errorf(errs.Invalid, "The %s is not valid UTF-8 text.", attr)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return errs.Errorf(errs.Invalid, "The %s may not contain control characters.", attr)
		}
	}
	return nil
}

// change computes an edit: only tag, name, description and visibility
// change. Other attributes may be sent back as they are (a client that
// read, modified and wrote the whole document) but not changed.
func (c *Controller) change(_ context.Context, who cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
	v, err := volume.FromMap(current)
	if err != nil {
		return nil, err
	}
	attrs := editAttrs
	if len(selects) > 0 {
		attrs = nil
		for _, s := range selects {
			if !slices.Contains(editAttrs, s) {
				return nil, errs.Errorf(errs.Invalid, "The %s of a volume is not yours to change: you may change %s.", short(s), strings.Join(editAttrs, ", "))
			}
			attrs = append(attrs, s)
			if _, ok := body[s]; !ok {
				body[s] = nil // selected but absent: cleared
			}
		}
	} else {
		var fixed []string
		for attr, val := range body {
			if slices.Contains(editAttrs, attr) || attr == "operations" || attr == "acl" {
				continue
			}
			if !sameJSON(val, current[attr]) {
				fixed = append(fixed, attr)
			}
		}
		if len(fixed) > 0 {
			sort.Strings(fixed)
			return nil, errs.Errorf(errs.Invalid, "The %s of a volume cannot be changed: you may change %s.", strings.Join(fixed, ", "), strings.Join(editAttrs, ", "))
		}
	}
	if _, ok := body["visibility"]; ok && body["visibility"] == nil {
		delete(body, "visibility") // a visibility cannot be cleared
	}
	if err := applyEdits(v, body, attrs); err != nil {
		return nil, err
	}
	return v.Map()
}

// remove refuses to delete a volume in use.
func (c *Controller) remove(_ context.Context, _ cimi.Identity, current map[string]any) error {
	v, err := volume.FromMap(current)
	if err != nil {
		return err
	}
	return deletable(v)
}

// deletable refuses the deletion of a volume a machine holds, or of an
// origin with snapshots.
func deletable(v *volume.Volume) error {
	if len(v.Attachments) > 0 {
		return errs.Errorf(errs.Conflict, "Volume %s is attached to machine %s; detach it (or end the machine) first.",
			v.UUID, strings.TrimPrefix(v.Attachments[0].Machine, "Machine/"))
	}
	if v.Type.Origin() && v.Count > 0 {
		return errs.Errorf(errs.Conflict, "Volume %s is the cached image of %d machine disks; it goes when they do.", v.UUID, v.Count)
	}
	return nil
}

// changed announces a new volume's usage, and removes the storage of a
// deleted one just before its document goes.
func (c *Controller) changed(ctx context.Context, _ cimi.Identity, before, after map[string]any) error {
	switch {
	case before == nil && after != nil:
		v, err := volume.FromMap(after)
		if err != nil {
			return err
		}
		return c.created(ctx, v)
	case after == nil && before != nil:
		v, err := volume.FromMap(before)
		if err != nil {
			return err
		}
		return c.destroy(ctx, v, true)
	}
	return nil
}

// view hides where the storage sits and who is downloading it from all
// but administrators.
func view(who cimi.Identity, doc map[string]any) map[string]any {
	if who.IsAdmin() {
		return doc
	}
	delete(doc, "path")
	delete(doc, "holder")
	delete(doc, "leaseUntil")
	return doc
}

// refuse words refusals as the original pdisk did, which scripts match.
func refuse(_ cimi.Identity, op string, _ bool) error {
	switch op {
	case "delete":
		return errs.Errorf(errs.Forbidden, "Not enough rights to delete disk.")
	case "edit":
		return errs.Errorf(errs.Forbidden, "Not enough rights to update disk.")
	}
	return nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func quoted(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return short(string(b))
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
