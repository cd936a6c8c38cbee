package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Handle carries out one typed volume command (cmd.pdisk.volume.<verb>,
// stratus.volume.v1), sent by other services: vmctl asks for image disks,
// volatile disks, attachments and releases. Client errors are permanent;
// anything else is retried.
func (c *Controller) Handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	res, err := c.handle(ctx, cmd)
	return res, bus.Settle(err)
}

func (c *Controller) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	m := payload(cmd.Subject())
	if m == nil {
		return bus.Result{}, errs.Errorf(errs.Invalid, "pdisk has no command %q.", short(cmd.Subject()))
	}
	if err := cmd.Decode(m); err != nil {
		return bus.Result{}, err
	}
	switch m := m.(type) {
	case *volumev1.CreateVolume:
		return c.createTyped(ctx, cmd, m)
	case *volumev1.UpdateVolume:
		return c.updateTyped(ctx, cmd, m)
	case *volumev1.DeleteVolume:
		return c.deleteTyped(ctx, cmd, m.GetUuid())
	case *volumev1.AttachVolume:
		return c.attach(ctx, cmd, m.GetUuid(), m.GetMachineUuid(), m.GetDevice(), m.GetHotPlugged())
	case *volumev1.DetachVolume:
		return c.detach(ctx, cmd, m.GetUuid(), m.GetMachineUuid(), m.GetHotUnplug(), false)
	case *volumev1.ReleaseVolume:
		return c.detach(ctx, cmd, m.GetUuid(), m.GetMachineUuid(), false, true)
	case *volumev1.GetImageVolume:
		return c.getImage(ctx, cmd, m)
	case *volumev1.CaptureVolume:
		return c.capture(ctx, cmd, m)
	}
	// payload knows a type that the switch does not: a defect, not worth
	// a retry.
	return bus.Result{}, bus.Permanent(errs.Errorf(errs.Internal, "pdisk reads command %q but has no handler for it.", short(cmd.Subject())))
}

// payload returns an empty message of the type a command subject carries,
// or nil for a subject that is not a pdisk command.
func payload(subj string) proto.Message {
	switch subj {
	case subject.CmdVolumeCreate:
		return &volumev1.CreateVolume{}
	case subject.CmdVolumeUpdate:
		return &volumev1.UpdateVolume{}
	case subject.CmdVolumeDelete:
		return &volumev1.DeleteVolume{}
	case subject.CmdVolumeAttach:
		return &volumev1.AttachVolume{}
	case subject.CmdVolumeDetach:
		return &volumev1.DetachVolume{}
	case subject.CmdVolumeRelease:
		return &volumev1.ReleaseVolume{}
	case subject.CmdVolumeGetImage:
		return &volumev1.GetImageVolume{}
	case subject.CmdVolumeCapture:
		return &volumev1.CaptureVolume{}
	}
	return nil
}

// ownerFor is the owner of a volume a command makes: an administrator or
// the system may name one, a user makes volumes for itself only.
func ownerFor(actor cimi.Identity, named string) (string, error) {
	switch {
	case named == "" || named == actor.User:
		if actor.User == "" && named == "" && !actor.IsAdmin() {
			return "", errs.Errorf(errs.Forbidden, "An anonymous request cannot own a volume.")
		}
		return actor.User, nil
	case actor.IsAdmin():
		return named, nil
	}
	return "", errs.Errorf(errs.Forbidden, "%s may not make volumes for %s.", actor.User, named)
}

func done(uuid, what string) bus.Result {
	return bus.Result{Affected: []string{volume.ID(uuid)}, Message: volume.ID(uuid) + " " + what + "."}
}

// createTyped makes a blank volume for a service, e.g. a machine's
// volatile disk (attached at launch, deleted with the machine).
func (c *Controller) createTyped(ctx context.Context, cmd *bus.Command, m *volumev1.CreateVolume) (bus.Result, error) {
	actor := who(cmd.Actor())
	uuid, err := volume.UUIDOf(m.GetUuid())
	if err != nil {
		return bus.Result{}, err
	}
	owner, err := ownerFor(actor, m.GetOwner())
	if err != nil {
		return bus.Result{}, err
	}
	size := int64(m.GetSizeGib())
	if size < volume.MinSizeGiB || size > volume.MaxSizeGiB {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The size must be between %d and %d GiB, not %d.", volume.MinSizeGiB, volume.MaxSizeGiB, size)
	}
	typ := volume.TypeOf(m.GetType(), volume.DataImageRawReadWrite)
	if typ.Origin() || typ.Live() {
		return bus.Result{}, errs.Errorf(errs.Invalid, "A blank volume cannot be of type %s: image volumes come from the image cache.", typ)
	}
	vis := volume.Private
	if m.GetVisibility() == volumev1.Visibility_VISIBILITY_PUBLIC {
		vis = volume.Public
	}
	v := &volume.Volume{UUID: uuid, Owner: owner, Type: typ, State: volume.Available, Visibility: vis, Tag: m.GetTag(), Description: m.GetDescription()}
	if err := checkText("tag", v.Tag, volume.MaxTag, false); err != nil {
		return bus.Result{}, err
	}
	if err := checkText("description", v.Description, volume.MaxDescription, true); err != nil {
		return bus.Result{}, err
	}
	v.SetSize(size)
	v.SetACL(volume.ACLFor(owner, vis))
	if existing, _, err := c.load(ctx, uuid); err == nil {
		if existing.Command != cmd.ID() {
			return bus.Result{}, errs.Errorf(errs.Conflict, "Volume %s already exists.", uuid)
		}
		return c.announceCreated(ctx, cmd, existing)
	}
	if machine := m.GetVolatileForMachineUuid(); machine != "" {
		v.Volatile = true
		if err := v.Attach(volume.MachineID(machine), "", false, c.now()); err != nil {
			return bus.Result{}, err
		}
	}
	if err := c.provision(ctx, v); err != nil {
		return bus.Result{}, err
	}
	c.cfg.Crash("pdisk.provisioned") // storage without its document
	stored, err := c.store(ctx, v, cmd.ID())
	if err != nil {
		return bus.Result{}, err
	}
	c.cfg.Crash("pdisk.stored") // nothing announced
	return c.announceCreated(ctx, cmd, stored)
}

// announceCreated publishes what a create changed (again, on a redelivery:
// message ids make the copies one).
func (c *Controller) announceCreated(ctx context.Context, cmd *bus.Command, v *volume.Volume) (bus.Result, error) {
	if err := c.Announce(ctx, subject.EventCreated, v.UUID, v, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	if err := c.created(ctx, v); err != nil {
		return bus.Result{}, err
	}
	for _, a := range v.Attachments {
		if err := c.attached(ctx, v, a, v.UUID+"."+a.Machine+".attached"); err != nil {
			return bus.Result{}, err
		}
	}
	return done(v.UUID, "created"), nil
}

// mayModify refuses an actor without the MODIFY right on v.
func mayModify(actor cimi.Identity, v *volume.Volume, refusal string) error {
	acl := v.Access()
	if acl.Allows(actor, cimi.Modify) {
		return nil
	}
	return errs.Errorf(errs.Forbidden, "%s", refusal)
}

// updateTyped changes tag, description, visibility or (growing only) size.
func (c *Controller) updateTyped(ctx context.Context, cmd *bus.Command, m *volumev1.UpdateVolume) (bus.Result, error) {
	actor := who(cmd.Actor())
	uuid, err := volume.UUIDOf(m.GetUuid())
	if err != nil {
		return bus.Result{}, err
	}
	v, changed, err := c.write(ctx, uuid, cmd.ID(), func(v *volume.Volume) error {
		if err := mayModify(actor, v, "Not enough rights to update disk."); err != nil {
			return err
		}
		body := map[string]any{}
		if m.Tag != nil {
			body["tag"] = m.GetTag()
		}
		if m.Description != nil {
			body["description"] = m.GetDescription()
		}
		switch m.GetVisibility() {
		case volumev1.Visibility_VISIBILITY_PUBLIC:
			body["visibility"] = volume.Public
		case volumev1.Visibility_VISIBILITY_PRIVATE:
			body["visibility"] = volume.Private
		}
		if err := applyEdits(v, body, editAttrs); err != nil {
			return err
		}
		if m.SizeGib == nil || int64(m.GetSizeGib()) == v.Size {
			return nil
		}
		size := int64(m.GetSizeGib())
		if size < v.Size || size > volume.MaxSizeGiB {
			return errs.Errorf(errs.Invalid, "Volume %s can grow from %d GiB up to %d GiB, not become %d GiB.", uuid, v.Size, volume.MaxSizeGiB, size)
		}
		if v.Type != volume.DataImageRawReadWrite {
			return errs.Errorf(errs.Invalid, "Only data volumes grow; %s is a %s.", uuid, v.Type)
		}
		if err := c.quotas.Resize(ctx, v.Owner, uuid, size, c.cfg.Settings().QuotaOf(v.Owner)); err != nil {
			return err
		}
		if _, err := c.cfg.Backend.Grow(ctx, uuid, size); err != nil {
			return fmt.Errorf("pdisk: grow %s: %w", uuid, err)
		}
		v.SetSize(size)
		return nil
	})
	if err != nil {
		return bus.Result{}, err
	}
	_ = changed
	if err := c.Announce(ctx, subject.EventUpdated, uuid, v, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	return done(uuid, "updated"), nil
}

// deleteTyped removes a volume for a service (or the janitor): the same
// rules as a CIMI delete.
func (c *Controller) deleteTyped(ctx context.Context, cmd *bus.Command, id string) (bus.Result, error) {
	uuid, err := volume.UUIDOf(id)
	if err != nil {
		return bus.Result{}, err
	}
	v, rev, err := c.load(ctx, uuid)
	if errs.CodeOf(err) == errs.NotFound && cmd.Deliveries() > 1 {
		return done(uuid, "deleted"), c.Announce(ctx, subject.EventDeleted, uuid, nil, cmd.ID()+".changed")
	}
	if err != nil {
		return bus.Result{}, err
	}
	if err := mayModify(who(cmd.Actor()), v, "Not enough rights to delete disk."); err != nil {
		return bus.Result{}, err
	}
	if err := deletable(v); err != nil {
		return bus.Result{}, err
	}
	if err := c.Delete(ctx, v, rev, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	return done(uuid, "deleted"), nil
}

// Delete removes v (read at revision rev) for good: storage and
// bookkeeping first, then the document, then the announcement. A crash
// half-way leaves a document whose storage is gone, which the reconciler
// (or the redelivered command) finishes. Only the caller that removes
// the document counts the end of a snapshot in its origin, so that two
// replicas deleting one volume count it once.
func (c *Controller) Delete(ctx context.Context, v *volume.Volume, rev uint64, msgID string) error {
	if err := c.destroy(ctx, v, false); err != nil {
		return err
	}
	c.cfg.Crash("pdisk.destroyed") // a document without its storage
	removed := false
	err := c.cfg.Volumes.Delete(ctx, volume.ID(v.UUID), rev)
	switch {
	case err == nil:
		removed = true
	case errors.Is(err, store.ErrNotFound):
		// Removed by another replica, which counts it.
	case errors.Is(err, store.ErrConflict):
		// Changed meanwhile (an attach racing the delete): the storage is
		// gone, so the document must go too.
		if doc, gerr := c.cfg.Volumes.Get(ctx, volume.ID(v.UUID)); gerr == nil {
			err := c.cfg.Volumes.Delete(ctx, doc.ID, doc.Revision)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("pdisk: delete %s: %w", v.UUID, err)
			}
			removed = err == nil
		}
	default:
		return fmt.Errorf("pdisk: delete %s: %w", v.UUID, err)
	}
	if removed {
		if err := c.releaseOrigin(ctx, v); err != nil {
			return err
		}
	}
	return c.Announce(ctx, subject.EventDeleted, v.UUID, nil, msgID)
}

// attach records that a machine holds a volume.
func (c *Controller) attach(ctx context.Context, cmd *bus.Command, id, machine, device string, hot bool) (bus.Result, error) {
	actor := who(cmd.Actor())
	uuid, err := volume.UUIDOf(id)
	if err != nil {
		return bus.Result{}, err
	}
	if machine == "" {
		return bus.Result{}, errs.Errorf(errs.Invalid, "An attachment names the machine.")
	}
	mid := volume.MachineID(machine)
	var att volume.Attachment
	v, changed, err := c.write(ctx, uuid, cmd.ID(), func(v *volume.Volume) error {
		acl := v.Access()
		right := cimi.Modify
		if v.Type.ReadOnly() {
			right = cimi.View
		}
		if !acl.Allows(actor, right) {
			if !acl.Allows(actor, cimi.View) {
				return errs.Errorf(errs.NotFound, "Volume %s does not exist.", uuid)
			}
			return errs.Errorf(errs.Forbidden, "Not enough rights to attach disk %s.", uuid)
		}
		if slices.ContainsFunc(v.Attachments, func(a volume.Attachment) bool { return a.Machine == mid }) {
			return errNoChange // attached already, by another command
		}
		if v.State != volume.Available && v.State != volume.InUse {
			return errs.Errorf(errs.Conflict, "Volume %s is %s and cannot be attached.", uuid, strings.ToLower(string(v.State)))
		}
		if err := v.Attach(mid, device, hot, c.now()); err != nil {
			return err
		}
		for _, a := range v.Attachments {
			if a.Machine == mid {
				att = a
			}
		}
		return nil
	})
	if err != nil {
		return bus.Result{}, err
	}
	if !changed && v.Command != cmd.ID() {
		// Another command attached it: billing heard of it then.
		return done(uuid, "attached to "+mid), nil
	}
	for _, a := range v.Attachments {
		if a.Machine == mid {
			att = a
		}
	}
	if err := c.Announce(ctx, subject.EventUpdated, uuid, v, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	if err := c.attached(ctx, v, att, cmd.ID()+".attached"); err != nil {
		return bus.Result{}, err
	}
	return done(uuid, "attached to "+mid), nil
}

func (c *Controller) attached(ctx context.Context, v *volume.Volume, a volume.Attachment, msgID string) error {
	at := volume.ParseStamp(a.Attached)
	if at.IsZero() {
		at = c.now()
	}
	return c.cfg.Bus.Publish(ctx, subject.EvtVolumeAttached, &volumev1.VolumeAttached{
		Uuid: v.UUID, Owner: v.Owner, SizeGib: uint32(v.Size), MachineUuid: strings.TrimPrefix(a.Machine, "Machine/"),
		Device: a.Device, HotPlugged: a.HotPlugged, AttachedAt: timestamppb.New(at),
	}, msgID)
}

// detach ends a machine's hold on a volume. release is the end of the
// machine: no hot-plug check, a volatile disk is deleted and a live
// snapshot quarantined.
func (c *Controller) detach(ctx context.Context, cmd *bus.Command, id, machine string, hot, release bool) (bus.Result, error) {
	actor := who(cmd.Actor())
	uuid, err := volume.UUIDOf(id)
	if err != nil {
		return bus.Result{}, err
	}
	mid := volume.MachineID(machine)
	var gone volume.Attachment
	held := false
	v, _, err := c.write(ctx, uuid, cmd.ID(), func(v *volume.Volume) error {
		if !v.Access().Allows(actor, cimi.View) {
			return errs.Errorf(errs.NotFound, "Volume %s does not exist.", uuid)
		}
		a, ok, err := v.Detach(mid, hot)
		if err != nil {
			return err
		}
		gone, held = a, ok
		// Every disk the image cache made for a machine ends with it: the
		// live ones and the read-only copies of data images alike.
		if release && (v.Type.Live() || v.Origin != "") && len(v.Attachments) == 0 && v.State != volume.Quarantined {
			q := c.cfg.Settings().Quarantine.D()
			v.State = volume.Quarantined
			v.Quarantine = volume.Stamp(c.now().Add(q))
			return nil
		}
		if !ok {
			return errNoChange
		}
		return nil
	})
	if err != nil {
		if errs.CodeOf(err) == errs.NotFound && release {
			return done(uuid, "released"), nil // already gone: nothing holds it
		}
		return bus.Result{}, err
	}
	if held {
		if err := c.cfg.Bus.Publish(ctx, subject.EvtVolumeDetached, &volumev1.VolumeDetached{
			Uuid: v.UUID, Owner: v.Owner, SizeGib: uint32(v.Size), MachineUuid: strings.TrimPrefix(mid, "Machine/"),
			Device: gone.Device, DetachedAt: timestamppb.New(c.now()),
		}, cmd.ID()+".detached"); err != nil {
			return bus.Result{}, err
		}
	}
	if release && v.Volatile && len(v.Attachments) == 0 {
		cur, rev, err := c.load(ctx, uuid)
		if err != nil {
			return bus.Result{}, err
		}
		if err := c.Delete(ctx, cur, rev, cmd.ID()+".changed"); err != nil {
			return bus.Result{}, err
		}
		return done(uuid, "deleted with its machine"), nil
	}
	if err := c.Announce(ctx, subject.EventUpdated, uuid, v, cmd.ID()+".changed"); err != nil {
		return bus.Result{}, err
	}
	if release {
		return done(uuid, "released"), nil
	}
	return done(uuid, "detached from "+mid), nil
}

// getImage hands a machine a copy-on-write volume of a Marketplace image,
// downloading the image into the cache first if no replica has.
func (c *Controller) getImage(ctx context.Context, cmd *bus.Command, m *volumev1.GetImageVolume) (bus.Result, error) {
	actor := who(cmd.Actor())
	uuid, err := volume.UUIDOf(m.GetUuid())
	if err != nil {
		return bus.Result{}, err
	}
	owner, err := ownerFor(actor, m.GetOwner())
	if err != nil {
		return bus.Result{}, err
	}
	live := volume.TypeOf(m.GetType(), volume.MachineImageLive)
	origin := volume.MachineImageOrigin
	switch live {
	case volume.MachineImageLive:
	case volume.DataImageLive, volume.DataImageRawReadOnly:
		origin = volume.DataImageOrigin
	default:
		return bus.Result{}, errs.Errorf(errs.Invalid, "An image volume is MACHINE_IMAGE_LIVE, DATA_IMAGE_LIVE or DATA_IMAGE_RAW_READONLY, not %s.", live)
	}
	source, err := c.imageSource(ctx, actor, m)
	if err != nil {
		return bus.Result{}, err
	}
	v, err := c.cfg.Cache.Get(ctx, imagecache.Request{
		ImageID: m.GetImageId(), URLs: m.GetUrls(), Volume: source, Bytes: int64(m.GetBytes()), SHA1: m.GetSha1(), Type: origin,
	}, imagecache.Snap{UUID: uuid, Owner: owner, Machine: volume.MachineID(m.GetMachineUuid()), Type: live, MsgID: cmd.ID()})
	if err != nil {
		return bus.Result{}, err
	}
	c.cfg.Crash("pdisk.snapped") // a copy not yet attached
	if m.GetMachineUuid() != "" {
		return c.attach(ctx, cmd, v.UUID, m.GetMachineUuid(), "", false)
	}
	return done(v.UUID, "created from image "+m.GetImageId()), nil
}

// imageSource checks the volume a get_image names as holding its image
// (a "pdisk:<uuid>" location) and returns its uuid, or "" when there is
// none or it cannot be used and the URLs remain. The requester must be
// allowed to see the volume (an image its author keeps private stays
// private), and no machine may be writing to it (its content would be
// checked and copied while it changes).
func (c *Controller) imageSource(ctx context.Context, actor cimi.Identity, m *volumev1.GetImageVolume) (string, error) {
	if m.GetSourceVolumeUuid() == "" {
		return "", nil
	}
	src, err := volume.UUIDOf(m.GetSourceVolumeUuid())
	if err != nil {
		return "", err
	}
	refuse := func(err error) (string, error) {
		if len(m.GetUrls()) > 0 {
			c.log.Info("the volume holding an image cannot be used; downloading it", "image", m.GetImageId(), "volume", src, "reason", errs.MessageOf(err))
			return "", nil
		}
		return "", err
	}
	v, _, err := c.load(ctx, src)
	if errs.CodeOf(err) == errs.NotFound || (err == nil && !v.Access().Allows(actor, cimi.View)) {
		return refuse(errs.Errorf(errs.NotFound, "Image %s is kept in volume %s, which does not exist or is not yours to use.", m.GetImageId(), src))
	}
	if err != nil {
		return "", err
	}
	switch {
	case v.Type.Origin() || v.Origin != "":
		return refuse(errs.Errorf(errs.Invalid, "Image %s is said to be kept in volume %s, which is a disk of the image cache, not an image.", m.GetImageId(), src))
	case v.State != volume.Available && v.State != volume.InUse:
		return refuse(errs.Errorf(errs.Conflict, "Image %s is kept in volume %s, which is %s.", m.GetImageId(), src, strings.ToLower(string(v.State))))
	case len(v.Attachments) > 0 && !v.Type.ReadOnly():
		return refuse(errs.Errorf(errs.Conflict, "Image %s is kept in volume %s, which machine %s is using read-write: detach it or wait for the machine to end.", m.GetImageId(), src, strings.TrimPrefix(v.Attachments[0].Machine, "Machine/")))
	}
	return src, nil
}

// capture copies a volume (a machine's live disk) into a new standalone
// volume: the rebase that saves a machine as a new image.
func (c *Controller) capture(ctx context.Context, cmd *bus.Command, m *volumev1.CaptureVolume) (bus.Result, error) {
	actor := who(cmd.Actor())
	from, err := volume.UUIDOf(m.GetUuid())
	if err != nil {
		return bus.Result{}, err
	}
	to, err := volume.UUIDOf(m.GetNewUuid())
	if err != nil {
		return bus.Result{}, err
	}
	src, _, err := c.load(ctx, from)
	if err != nil {
		return bus.Result{}, err
	}
	if !src.Access().Allows(actor, cimi.View) {
		return bus.Result{}, errs.Errorf(errs.NotFound, "Volume %s does not exist.", from)
	}
	if existing, _, err := c.load(ctx, to); err == nil {
		if existing.Command != cmd.ID() {
			return bus.Result{}, errs.Errorf(errs.Conflict, "Volume %s already exists.", to)
		}
		return c.announceCreated(ctx, cmd, existing)
	}
	named := m.GetOwner()
	if named == "" && actor.IsAdmin() {
		named = src.Owner // CaptureVolume: empty means the owner of the source
	}
	owner, err := ownerFor(actor, named)
	if err != nil {
		return bus.Result{}, err
	}
	typ := volume.TypeOf(m.GetType(), volume.DataImageRawReadWrite)
	if typ.Origin() || typ.Live() {
		return bus.Result{}, errs.Errorf(errs.Invalid, "A captured volume stands alone; it cannot be of type %s.", typ)
	}
	vis := volume.Private
	if m.GetVisibility() == volumev1.Visibility_VISIBILITY_PUBLIC {
		vis = volume.Public
	}
	v := &volume.Volume{UUID: to, Owner: owner, Type: typ, State: volume.Available, Visibility: vis,
		Tag: m.GetTag(), Description: m.GetDescription()}
	if err := checkText("tag", v.Tag, volume.MaxTag, false); err != nil {
		return bus.Result{}, err
	}
	if err := checkText("description", v.Description, volume.MaxDescription, true); err != nil {
		return bus.Result{}, err
	}
	v.SetSize(src.Size)
	v.SetACL(volume.ACLFor(owner, vis))
	if err := c.quotas.Reserve(ctx, owner, to, v.Size, c.cfg.Settings().QuotaOf(owner)); err != nil {
		return bus.Result{}, err
	}
	bv, err := c.cfg.Backend.Capture(ctx, to, from)
	if errs.CodeOf(err) == errs.Conflict {
		bv, err = c.cfg.Backend.Get(ctx, to)
	}
	if err != nil {
		_ = c.quotas.Release(context.WithoutCancel(ctx), owner, to)
		return bus.Result{}, fmt.Errorf("pdisk: capture %s into %s: %w", from, to, err)
	}
	c.cfg.Crash("pdisk.captured") // the copy without its document
	v.SetSize((bv.Size + backend.GiB - 1) / backend.GiB)
	if err := c.locate(ctx, v); err != nil {
		return bus.Result{}, err
	}
	if err := c.fingerprint(ctx, v); err != nil {
		return bus.Result{}, err
	}
	stored, err := c.store(ctx, v, cmd.ID())
	if err != nil {
		return bus.Result{}, err
	}
	return c.announceCreated(ctx, cmd, stored)
}

// fingerprint records what a Marketplace entry of the new volume v says:
// its size in bytes and SHA-1 as stored, read once, and the identifier
// derived from them, so that a machine saved with --save becomes a draft
// entry (vmctl reads them from the document). A backend that keeps no
// file or device on this host (Ceph RBD) gives none: the volume is made
// all the same, and vmctl says that no draft could be made.
func (c *Controller) fingerprint(ctx context.Context, v *volume.Volume) error {
	if v.Path == "" {
		c.log.Warn("the captured volume is not a local file or device; its SHA-1 is not recorded", "volume", v.UUID, "backend", v.Backend)
		return nil
	}
	n, sum, err := digest(ctx, v.Path)
	if err != nil {
		return err
	}
	id, err := marketplaceID(sum)
	if err != nil {
		return err
	}
	v.Bytes, v.SHA1, v.Identifier = n, sum, id
	c.log.Info("captured volume fingerprinted", "volume", v.UUID, "bytes", n, "sha1", sum, "identifier", id)
	return nil
}

// unused keeps time imported for helpers added alongside.
var _ = time.Second
