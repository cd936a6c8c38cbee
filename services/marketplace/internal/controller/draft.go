package controller

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

// Handle carries out the marketplace's typed commands (today
// cmd.marketplace.machine_image.create_draft, from vmctl); the CIMI writes
// go to the resource provider. Client errors are permanent; anything else
// is retried.
func (c *Controller) Handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	res, err := c.handle(ctx, cmd)
	return res, bus.Settle(err)
}

func (c *Controller) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	if cmd.Subject() != subject.CmdMachineImageCreateDraft {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The marketplace has no command %s.", quote(cmd.Subject()))
	}
	var m marketplacev1.CreateDraft
	if err := cmd.Decode(&m); err != nil {
		return bus.Result{}, err
	}
	return c.createDraft(ctx, cmd, &m)
}

// commandIdentity is who a command runs as: its actor, or the system
// itself (an administrator) when it has none.
func commandIdentity(a *commonv1.Actor) cimi.Identity {
	if a == nil {
		return admin
	}
	return resource.IdentityOf(a)
}

// ownerFor is the owner of a draft: the system and administrators may
// name one, a user makes drafts for itself only.
func ownerFor(actor cimi.Identity, named string) (string, error) {
	switch {
	case named == "" || named == actor.User:
		if actor.User == "" {
			return "", errs.Errorf(errs.Invalid, "A draft needs an owner: the user whose machine was captured.")
		}
		return actor.User, nil
	case actor.IsAdmin():
		return named, nil
	}
	return "", errs.Errorf(errs.Forbidden, "%s may not make drafts for %s.", actor.User, named)
}

// createDraft stores the unsigned draft of an image captured into a
// volume: identifier from the SHA-1, location pdisk:<volume>, valid for
// the settings' draft-validity, visible to its owner only. The draft's id
// derives from the volume, so a redelivery (or a second command for the
// same capture) finds it and only announces it again.
func (c *Controller) createDraft(ctx context.Context, cmd *bus.Command, m *marketplacev1.CreateDraft) (bus.Result, error) {
	owner, err := ownerFor(commandIdentity(cmd.Actor()), m.GetOwner())
	if err != nil {
		return bus.Result{}, err
	}
	vol, err := uuidOf("volume_uuid", m.GetVolumeUuid(), true)
	if err != nil {
		return bus.Result{}, err
	}
	machine, err := uuidOf("machine_uuid", m.GetMachineUuid(), false)
	if err != nil {
		return bus.Result{}, err
	}
	sum, err := hex.DecodeString(m.GetSha1())
	if err != nil || len(sum) != 20 {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The SHA-1 of a captured image must be 40 hexadecimal digits, not %s.", quote(m.GetSha1()))
	}
	if m.GetBytes() == 0 || m.GetBytes() > 1<<62 {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The size of a captured image must be a positive number of bytes, not %d.", m.GetBytes())
	}
	id := catalog.DraftID(vol)
	if d, err := c.cfg.Images.Get(ctx, id); err == nil {
		return c.draftMade(ctx, cmd, d)
	} else if !errors.Is(err, store.ErrNotFound) {
		return bus.Result{}, fmt.Errorf("marketplace: read %s: %w", id, err)
	}

	now := c.now()
	e := &metadata.Entry{
		Identifier: metadata.Identifier([20]byte(sum)), Type: metadata.TypeMachine,
		Format: m.GetFormat(), Compression: "none",
		Creator: m.GetAuthor(), Created: metadata.FormatTime(now),
		Valid: metadata.FormatTime(now.Add(c.cfg.Settings().DraftValidity.D())),
		Title: m.GetTitle(), Description: m.GetComment(), Bytes: int64(m.GetBytes()),
		Checksums:   []metadata.Checksum{{Algorithm: metadata.AlgorithmSHA1, Value: hex.EncodeToString(sum)}},
		Endorsement: metadata.Endorsement{Endorser: metadata.Endorser{Email: m.GetAuthorEmail()}},
		OS:          m.GetOs(), OSVersion: m.GetOsVersion(), OSArch: m.GetOsArch(), Version: m.GetImageVersion(),
		Hypervisor: m.GetHypervisor(), Locations: []string{catalog.PdiskURL(vol)},
	}
	if e.Format == "" {
		e.Format = "raw"
	}
	if err := checkDraft(e, now); err != nil {
		return bus.Result{}, err
	}
	xml, err := metadata.Render(e)
	if err != nil {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The draft cannot be written: %s", problemsText(err))
	}
	im := catalog.FromEntry(e, xml)
	im.Draft, im.Volume = true, "Volume/"+vol
	if machine != "" {
		im.Machine = "Machine/" + machine
	}
	doc, err := im.Attributes()
	if err != nil {
		return bus.Result{}, err
	}
	acl := catalog.DraftACL(owner)
	doc["id"], doc["resourceURI"] = id, cimi.ResourceURI(catalog.Kind)
	doc["created"], doc["updated"] = timestamp(now), timestamp(now)
	doc["acl"] = aclValue(acl)
	doc["_command"] = cmd.ID()
	data, err := encode(doc)
	if err != nil {
		return bus.Result{}, err
	}
	if _, err := c.cfg.Images.Create(ctx, id, data); err != nil && !errors.Is(err, store.ErrExists) {
		return bus.Result{}, fmt.Errorf("marketplace: store the draft %s: %w", id, err)
	}
	d, err := c.cfg.Images.Get(ctx, id)
	if err != nil {
		return bus.Result{}, fmt.Errorf("marketplace: read the draft %s: %w", id, err)
	}
	c.log.Info("draft created", "id", id, "identifier", im.Identifier, "owner", owner, "volume", vol)
	return c.draftMade(ctx, cmd, d)
}

// draftMade announces a stored draft (its ResourceChanged and
// DraftCreated events) and reports the command done.
func (c *Controller) draftMade(ctx context.Context, cmd *bus.Command, d store.Document) (bus.Result, error) {
	doc, err := decode(d.Body)
	if err != nil {
		return bus.Result{}, err
	}
	im, err := catalog.FromMap(doc)
	if err != nil {
		return bus.Result{}, err
	}
	if !im.Draft {
		return bus.Result{}, errs.Errorf(errs.Conflict, "%s exists and is not a draft.", d.ID)
	}
	if err := c.announce(ctx, subject.EventCreated, d.ID, doc, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	ev := &marketplacev1.DraftCreated{
		Id: d.ID, Identifier: im.Identifier, Owner: catalog.Owner(doc), VolumeUuid: im.VolumeUUID(),
		MachineUuid: strings.TrimPrefix(im.Machine, "Machine/"), AuthorEmail: im.Endorser.Email,
	}
	if t, err := metadata.ParseTime(im.Valid); err == nil {
		ev.Valid = timestamppb.New(t)
	}
	if err := c.cfg.Bus.Publish(ctx, subject.EvtMachineImageDraftCreated, ev, cmd.ID()+".draft_created"); err != nil {
		return bus.Result{}, fmt.Errorf("marketplace: announce the draft %s: %w", d.ID, err)
	}
	return bus.Result{Affected: []string{d.ID}, Message: fmt.Sprintf("%s created: the draft of image %s.", d.ID, im.Identifier)}, nil
}

// uuidOf checks a uuid field of a command.
func uuidOf(field, s string, required bool) (string, error) {
	if s == "" && !required {
		return "", nil
	}
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errs.Errorf(errs.Invalid, "The %s must be a uuid, not %s.", field, quote(s))
	}
	return u.String(), nil
}

// checkDraft refuses a draft whose texts break the limits of entries. What
// a draft may lack (the endorsement, a web location, os fields of a base
// image given by URL) its author adds before signing; the upload checks
// everything then.
func checkDraft(e *metadata.Entry, now time.Time) error {
	var kept, ps metadata.Problems
	if errors.As(e.Validate(now), &ps) {
		for _, p := range ps {
			switch p.Rule {
			case metadata.RuleTextLength, metadata.RuleValueCount, metadata.RuleKnownFormat:
				kept = append(kept, p)
			case metadata.RuleEmailSyntax:
				if e.Endorsement.Endorser.Email != "" {
					kept = append(kept, p)
				}
			}
		}
	}
	if len(kept) > 0 {
		return errs.Errorf(errs.Invalid, "The draft cannot be made: %s", problemsText(kept))
	}
	return nil
}

// problemsText writes metadata's problems as sentences.
func problemsText(err error) string {
	var ps metadata.Problems
	if !errors.As(err, &ps) {
		return err.Error() + "."
	}
	var parts []string
	for _, p := range ps {
		parts = append(parts, p.Rule+": "+strings.TrimSuffix(p.Message, "."))
	}
	return strings.Join(parts, "; ") + "."
}

// draftEdits are the attributes the author of a draft may change.
var draftEdits = []string{"name", "description", "tag", "valid", "locations", "os", "osVersion", "osArch", "version", "creator", "hypervisor"}

// editDraft applies an author's edit to a draft: the entry is read from
// the draft's XML, changed, checked and rendered again, and the document
// follows the new XML.
func (c *Controller) editDraft(im catalog.Image, current, body map[string]any, selects []string) (map[string]any, error) {
	attrs, err := edited(current, body, selects, draftEdits)
	if err != nil || len(attrs) == 0 {
		return current, err
	}
	e, err := metadata.Parse([]byte(im.XML))
	if err != nil {
		return nil, fmt.Errorf("marketplace: the draft of %s cannot be read back: %w", im.Identifier, err)
	}
	now := c.now()
	for _, attr := range attrs {
		if err := applyDraftEdit(e, attr, body[attr], now); err != nil {
			return nil, err
		}
	}
	xml, err := metadata.Render(e)
	if err != nil {
		return nil, errs.Errorf(errs.Invalid, "The draft cannot be written: %s", problemsText(err))
	}
	next := catalog.FromEntry(e, xml)
	next.Draft, next.Volume, next.Machine = true, im.Volume, im.Machine
	return next.Merge(current)
}

// applyDraftEdit sets one edited attribute of a draft's entry.
func applyDraftEdit(e *metadata.Entry, attr string, v any, now time.Time) error {
	if attr == "locations" {
		locs, err := locationsOf(v)
		if err != nil {
			return err
		}
		e.Locations = locs
		return nil
	}
	s, ok := v.(string)
	if v != nil && !ok {
		return errs.Errorf(errs.Invalid, "The %s of a draft must be a string.", attr)
	}
	s = strings.TrimSpace(s)
	limit, multiline := metadata.MaxFieldLength, false
	if attr == "description" {
		limit, multiline = metadata.MaxDescriptionLength, true
	}
	if len(s) > limit {
		return errs.Errorf(errs.Invalid, "The %s is %d bytes long; at most %d are allowed.", attr, len(s), limit)
	}
	if err := checkText(attr, s, multiline); err != nil {
		return err
	}
	switch attr {
	case "valid":
		t, err := metadata.ParseTime(s)
		if err != nil {
			return errs.Errorf(errs.Invalid, "valid must be a date written as yyyy-MM-ddTHH:mm:ssZ, e.g. 2027-05-01T00:00:00Z, not %s.", quote(s))
		}
		if !t.After(now) {
			return errs.Errorf(errs.Invalid, "valid must be in the future: %s has passed.", s)
		}
		e.Valid = s
	case "tag":
		if s != "" && !metadata.ValidTag(s) {
			return errs.Errorf(errs.Invalid, "%s cannot be a tag: use 1 to %d letters, digits, '.', '-' and '_', and not an identifier or a uuid.", quote(s), metadata.MaxTagLength)
		}
		e.Tag = s
	case "name":
		e.Title = s
	case "description":
		e.Description = s
	case "os":
		e.OS = s
	case "osVersion":
		e.OSVersion = s
	case "osArch":
		e.OSArch = s
	case "version":
		e.Version = s
	case "creator":
		e.Creator = s
	case "hypervisor":
		e.Hypervisor = s
	}
	return nil
}

// locationsOf reads the locations of a draft: http or https URLs, or
// pdisk:<uuid>, at least one.
func locationsOf(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, errs.Errorf(errs.Invalid, "The locations of a draft must be a list of at least one URL (http, https or pdisk:<volume uuid>).")
	}
	if len(list) > metadata.MaxValues {
		return nil, errs.Errorf(errs.Invalid, "A draft may have at most %d locations, not %d.", metadata.MaxValues, len(list))
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, _ := item.(string)
		s = strings.TrimSpace(s)
		if u, ok := catalog.PdiskLocation(s); ok {
			out = append(out, catalog.PdiskURL(u))
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(s) > metadata.MaxLocationLength {
			return nil, errs.Errorf(errs.Invalid, "%s is not a location: give http or https URLs (without user names), or pdisk:<volume uuid>.", quote(s))
		}
		out = append(out, s)
	}
	return out, nil
}

// aclValue is the JSON form of an ACL as documents store it.
func aclValue(acl cimi.ACL) map[string]any {
	owner := map[string]any{"principal": acl.Owner.Principal, "type": string(acl.Owner.Type)}
	out := map[string]any{"owner": owner}
	if len(acl.Rules) > 0 {
		rules := make([]any, len(acl.Rules))
		for i, r := range acl.Rules {
			rules[i] = map[string]any{"principal": r.Principal, "type": string(r.Type), "right": string(r.Right)}
		}
		out["rules"] = rules
	}
	return out
}
