package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/upload"
)

// ActionDeprecate is the CIMI action that deprecates an entry.
const ActionDeprecate = "deprecate"

// maxStored bounds a stored document: the entry's XML plus its attributes
// must fit in one message of the bus under the store (1 MiB), with room
// for the headers.
const maxStored = 1<<20 - 64<<10

// Kind is the CIMI MachineImage kind served through platform/resource.
func (c *Controller) Kind() resource.Kind {
	return resource.Kind{
		Name:       catalog.Kind,
		Collection: c.images,
		CanCreate:  func(who cimi.Identity) bool { return who.User != "" },
		New:        c.upload,
		Change:     c.change,
		Remove:     remove,
		Actions:    map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){ActionDeprecate: c.deprecate},
		DefaultACL: func(who cimi.Identity, _ string, _ map[string]any) cimi.ACL { return catalog.SignedACL(who.User) },
		View:       c.view,
		CheckID:    checkID,
		Refuse:     refuse,
		Changed:    c.changed,
	}
}

// checkID refuses ids that are not MachineImage/<uuid>.
func checkID(local string) error {
	if _, err := uuid.Parse(local); err != nil || len(local) != 36 {
		return errs.Errorf(errs.Invalid, "%s is not the id of a Marketplace entry: ids look like %s/<uuid>; to find an entry by identifier, filter on identifier.", quote(catalog.Kind+"/"+local), catalog.Kind)
	}
	return nil
}

// upload is the create of an entry: the body {"metadata": "<signed XML>"}
// passes every rule (upload.Check, then newer than stored) or nothing is
// stored.
func (c *Controller) upload(ctx context.Context, who cimi.Identity, id string, body map[string]any) (map[string]any, error) {
	xml, err := metadataOf(body)
	if err != nil {
		return nil, err
	}
	s := c.cfg.Settings()
	roots, err := c.trusted(s.TrustedCAs)
	if err != nil {
		return nil, fmt.Errorf("marketplace: trusted-cas: %w", err) // validated when loaded: retry
	}
	now := c.now()
	checked, err := upload.Check([]byte(xml), upload.Policy{Roots: roots, Allows: s.Allows, MinRSABits: s.MinRSABits()}, now)
	if err != nil {
		return nil, err
	}
	im := catalog.FromEntry(checked.Entry, checked.XML)
	if im.Deprecated != "" {
		im.DeprecatedBy, im.DeprecatedAt = who.User, metadata.FormatTime(now)
	}
	doc, err := im.Attributes()
	if err != nil {
		return nil, err
	}
	if data, err := encode(doc); err != nil {
		return nil, err
	} else if len(data) > maxStored {
		return nil, upload.Refuse(errs.Invalid, metadata.RuleDocumentSize, "the entry takes %d bytes once stored; at most %d fit", len(data), maxStored)
	}
	// Last: once claimed, the entry must be stored.
	if err := c.claim(ctx, id, im); err != nil {
		return nil, err
	}
	return doc, nil
}

// metadataOf reads the signed XML of a create body.
func metadataOf(body map[string]any) (string, error) {
	for attr := range body {
		if attr != "metadata" && attr != "resourceURI" {
			return "", errs.Errorf(errs.Invalid, "A new %s takes one attribute, \"metadata\": the signed XML of the entry (not %s).", catalog.Kind, quote(attr))
		}
	}
	xml, ok := body["metadata"].(string)
	if !ok || strings.TrimSpace(xml) == "" {
		return "", errs.Errorf(errs.Invalid, "A new %s needs \"metadata\": the signed XML of the entry, as a string (stratus sign-metadata writes it).", catalog.Kind)
	}
	return xml, nil
}

// deprecate records why an entry should no longer be used. The first
// reason stays: deprecating again is a conflict that quotes it.
func (c *Controller) deprecate(_ context.Context, who cimi.Identity, current, body map[string]any) (map[string]any, error) {
	im, err := catalog.FromMap(current)
	if err != nil {
		return nil, err
	}
	id, _ := current["id"].(string)
	if im.Draft {
		return nil, errs.Errorf(errs.Invalid, "%s is a draft, which cannot be deprecated: delete it, or sign and upload it first.", id)
	}
	reason := reasonOf(body)
	switch {
	case reason == "":
		return nil, errs.Errorf(errs.Invalid, "Deprecating %s needs a reason: say why the image should no longer be used, e.g. {\"reason\": \"replaced by a version with security fixes\"}.", id)
	case len(reason) > metadata.MaxDescriptionLength:
		return nil, errs.Errorf(errs.Invalid, "The reason is %d bytes long; at most %d are allowed.", len(reason), metadata.MaxDescriptionLength)
	case im.Deprecated != "":
		by := ""
		if im.DeprecatedBy != "" {
			by = " by " + im.DeprecatedBy
		}
		return nil, errs.Errorf(errs.Conflict, "%s was deprecated already%s: %s", id, by, quote(im.Deprecated))
	}
	if err := checkText("reason", reason, true); err != nil {
		return nil, err
	}
	im.Deprecated, im.DeprecatedBy, im.DeprecatedAt = reason, who.User, metadata.FormatTime(c.now())
	return im.Merge(current)
}

// reasonOf reads the reason of a deprecate Action: "reason", or
// properties.reason as some CIMI clients put parameters there.
func reasonOf(body map[string]any) string {
	if r, ok := body["reason"].(string); ok {
		return strings.TrimSpace(r)
	}
	props, _ := body["properties"].(map[string]any)
	r, _ := props["reason"].(string)
	return strings.TrimSpace(r)
}

// readOnly are the attributes an edit may send back unchanged but never
// change: what the framework sets and what the marketplace computes.
// The acl is not among them: the marketplace alone sets it (public for
// a signed entry, its owner's for a draft), and catalog.Visible relies on
// that.
var readOnly = []string{"id", "resourceURI", "created", "updated", "operations", catalog.StatusAttr}

// change is an edit. A signed entry is what its endorser signed: only an
// administrator may change it, and only its deprecation (to set or clear
// it). A draft is its author's to edit (see draftEdits).
func (c *Controller) change(_ context.Context, who cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
	im, err := catalog.FromMap(current)
	if err != nil {
		return nil, err
	}
	if im.Draft {
		return c.editDraft(im, current, body, selects)
	}
	if !who.IsAdmin() {
		return nil, errs.Errorf(errs.Forbidden, "Marketplace entries are signed: nobody but an administrator may change one. Deprecate it (the deprecate action), or upload a newer entry.")
	}
	attrs, err := edited(current, body, selects, []string{"deprecated"})
	if err != nil {
		return nil, err
	}
	if len(attrs) == 0 {
		return current, nil
	}
	reason, isString := body["deprecated"].(string)
	if body["deprecated"] != nil && !isString {
		return nil, errs.Errorf(errs.Invalid, "deprecated must be a reason (a string), or null to withdraw the deprecation.")
	}
	reason = strings.TrimSpace(reason)
	if err := checkText("deprecated", reason, true); err != nil {
		return nil, err
	}
	if reason == "" {
		im.Deprecated, im.DeprecatedBy, im.DeprecatedAt = "", "", ""
	} else if reason != im.Deprecated {
		im.Deprecated, im.DeprecatedBy, im.DeprecatedAt = reason, who.User, metadata.FormatTime(c.now())
	}
	return im.Merge(current)
}

// edited returns the attributes an edit changes, all of them among
// allowed: with selects, the selected ones (absent from body: cleared);
// without, those of body whose value differs from the current one, so that
// a client may send back a whole document it read.
func edited(current, body map[string]any, selects, allowed []string) ([]string, error) {
	var out, fixed []string
	if len(selects) > 0 {
		for _, s := range selects {
			if !slices.Contains(allowed, s) {
				fixed = append(fixed, s)
				continue
			}
			if _, ok := body[s]; !ok {
				body[s] = nil
			}
			out = append(out, s)
		}
	} else {
		for attr, v := range body {
			switch {
			case slices.Contains(allowed, attr):
				if !sameJSON(v, current[attr]) {
					out = append(out, attr)
				}
			case slices.Contains(readOnly, attr):
			case !sameJSON(v, current[attr]):
				fixed = append(fixed, attr)
			}
		}
	}
	if len(fixed) > 0 {
		sort.Strings(fixed)
		return nil, errs.Errorf(errs.Invalid, "The %s of this entry cannot be changed: you may change %s.", strings.Join(fixed, ", "), strings.Join(allowed, ", "))
	}
	sort.Strings(out)
	return out, nil
}

// remove lets administrators delete signed entries (their history is
// kept otherwise) and authors their drafts.
func remove(_ context.Context, who cimi.Identity, current map[string]any) error {
	if draft, _ := current["draft"].(bool); draft || who.IsAdmin() {
		return nil
	}
	return errs.Errorf(errs.Forbidden, "Only administrators may delete a Marketplace entry: the history of an image is kept. Deprecate it instead.")
}

// refuse words the refusals of callers without the MODIFY right.
func refuse(_ cimi.Identity, op string, visible bool) error {
	if !visible {
		return nil
	}
	switch op {
	case "action":
		return errs.Errorf(errs.Forbidden, "Only the uploader of a Marketplace entry or an administrator may deprecate it.")
	case "edit":
		return errs.Errorf(errs.Forbidden, "Marketplace entries are signed: nobody but an administrator may change one; its uploader may deprecate it.")
	case "delete":
		return errs.Errorf(errs.Forbidden, "Only administrators may delete a Marketplace entry: the history of an image is kept.")
	}
	return nil
}

// view adds the status at the time of reading.
func (c *Controller) view(_ cimi.Identity, doc map[string]any) map[string]any {
	im := catalog.Image{}
	im.Draft, _ = doc["draft"].(bool)
	im.Deprecated, _ = doc["deprecated"].(string)
	im.Valid, _ = doc["valid"].(string)
	doc[catalog.StatusAttr] = im.Status(c.now())
	return doc
}

// changed follows a write: a new signed entry replaces its uploader's
// drafts of the same image; a deprecated entry deprecates the older
// entries of its identifier and endorser; a deleted entry frees its
// newest-entry record. Each step is safe to run twice.
func (c *Controller) changed(ctx context.Context, _ cimi.Identity, before, after map[string]any) error {
	if after == nil {
		im, err := catalog.FromMap(before)
		if err != nil || im.Draft {
			return err
		}
		id, _ := before["id"].(string)
		return c.forget(ctx, im, id)
	}
	im, err := catalog.FromMap(after)
	if err != nil || im.Draft {
		return err
	}
	id, _ := after["id"].(string)
	cmdID := bus.MetaFrom(ctx).GetCommandId()
	if before == nil {
		if err := c.dropDrafts(ctx, im, catalog.Owner(after), cmdID); err != nil {
			return err
		}
	}
	if im.Deprecated != "" {
		return c.deprecateOlder(ctx, id, im, cmdID)
	}
	return nil
}

// dropDrafts deletes owner's drafts of the identifier of im, which a
// signed entry now replaces.
func (c *Controller) dropDrafts(ctx context.Context, im catalog.Image, owner, cmdID string) error {
	if owner == "" {
		return nil
	}
	docs, err := c.list(ctx, admin, catalog.And(catalog.Eq("identifier", im.Identifier), catalog.Eq("acl/owner/principal", owner)))
	if err != nil {
		return err
	}
	for _, d := range docs {
		draft, err := catalog.Decode(d.Body)
		if err != nil || !draft.Draft {
			continue
		}
		if err := c.cfg.Images.Delete(ctx, d.ID, d.Revision); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("marketplace: drop the draft %s: %w", d.ID, err)
		}
		c.log.Info("draft replaced by a signed entry", "draft", d.ID, "identifier", im.Identifier, "owner", owner)
		if err := c.announce(ctx, subject.EventDeleted, d.ID, nil, cmdID+"."+d.ID+".deleted"); err != nil {
			return err
		}
	}
	return nil
}

// deprecateOlder deprecates, with im's reason, the endorser's older
// entries of im's identifier that are not deprecated yet: an image
// withdrawn by its endorser must not come back through an older version.
func (c *Controller) deprecateOlder(ctx context.Context, id string, im catalog.Image, cmdID string) error {
	docs, err := c.list(ctx, admin, catalog.And(catalog.Eq("identifier", im.Identifier), catalog.Signed()))
	if err != nil {
		return err
	}
	for _, d := range docs {
		older, err := catalog.Decode(d.Body)
		if err != nil || d.ID == id || older.Deprecated != "" || older.Endorsed >= im.Endorsed ||
			!strings.EqualFold(older.Endorser.Email, im.Endorser.Email) {
			continue
		}
		var after map[string]any
		_, err = c.cfg.Images.Update(ctx, d.ID, func(cur store.Document) (json.RawMessage, error) {
			doc, err := decode(cur.Body)
			if err != nil {
				return nil, err
			}
			o, err := catalog.FromMap(doc)
			if err != nil {
				return nil, err
			}
			if o.Deprecated == "" {
				o.Deprecated, o.DeprecatedBy, o.DeprecatedAt = im.Deprecated, im.DeprecatedBy, metadata.FormatTime(c.now())
				if o.DeprecatedBy == "" {
					o.DeprecatedBy = im.Endorser.Email
				}
			}
			if doc, err = o.Merge(doc); err != nil {
				return nil, err
			}
			doc["updated"] = timestamp(c.now())
			after = doc
			return encode(doc)
		})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("marketplace: deprecate %s with %s: %w", d.ID, id, err)
		}
		if err := c.announce(ctx, subject.EventUpdated, d.ID, after, cmdID+"."+d.ID+".deprecated"); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses text that is not UTF-8 or holds control characters
// (newlines and tabs are allowed in multi-line text).
func checkText(attr, s string, multiline bool) error {
	for _, r := range s {
		if r == 0xFFFD || (r < 0x20 && !(multiline && (r == '\n' || r == '\t' || r == '\r'))) || r == 0x7f {
			return errs.Errorf(errs.Invalid, "The %s may not contain control characters.", attr)
		}
	}
	return nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// quote quotes user text for a message, shortened.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}
