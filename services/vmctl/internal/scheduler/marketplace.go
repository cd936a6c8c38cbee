package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// resolveWait bounds the Marketplace's answer to a resolve: a create
// waits for it before it allocates anything.
const resolveWait = 10 * time.Second

// resolve asks the Marketplace which entry ref (an identifier,
// "<e-mail>/<tag>" or a tag) names for actor, the user creating a machine
// (drafts resolve for their author only), with the site's policy on
// expired and deprecated images, and returns the entry as the machine
// keeps it. what names the reference in errors ("image", "read-only disk
// …"). Refusals are the Marketplace's, in its words; a Marketplace that
// cannot be reached is errs.Unavailable.
func (s *Scheduler) resolve(ctx context.Context, actor *commonv1.Actor, what, ref string) (machine.Image, error) {
	st := s.cfg.Settings()
	req := &marketplacev1.ResolveRequest{Actor: actor, Reference: ref,
		AllowExpired: st.AllowExpiredImages, AllowDeprecated: st.AllowDeprecatedImages}
	var resp marketplacev1.ResolveResponse
	rctx, cancel := context.WithTimeout(ctx, resolveWait)
	defer cancel()
	if err := s.cfg.Bus.Request(rctx, subject.SvcResolveImage, actor, req, &resp); err != nil {
		return machine.Image{}, resolveError(what, ref, err)
	}
	im := resp.GetImage()
	img := machine.Image{
		Marketplace: ref, Identifier: im.GetIdentifier(), Entry: im.GetId(),
		Bytes: int64(im.GetBytes()), SHA1: strings.ToLower(im.GetSha1()), Locations: im.GetLocations(),
		FromVolume: im.GetVolumeUuid(), Format: im.GetFormat(), Compression: im.GetCompression(), Kind: im.GetKind(),
		Status: im.GetStatus(), Endorser: im.GetEndorserEmail(), OS: im.GetOs(), OSVersion: im.GetOsVersion(), OSArch: im.GetOsArch(),
	}
	if err := usable(what, img); err != nil {
		return machine.Image{}, err
	}
	return img, nil
}

// resolveError turns the Marketplace's refusal into the create's: an
// entry that does not exist (or is not the user's to see) is bad input,
// like any unknown image; expired, deprecated and malformed references
// (invalid) and ambiguous tags (conflict) keep their code. Anything else
// means the Marketplace could not answer.
func resolveError(what, ref string, err error) error {
	prefix := ""
	if what != "image" {
		prefix = "The " + what + ": "
	}
	switch code := errs.CodeOf(err); code {
	case errs.NotFound:
		return errs.Wrap(errs.Invalid, err, prefix+errs.MessageOf(err))
	case errs.Invalid, errs.Conflict, errs.Forbidden:
		return errs.Wrap(code, err, prefix+errs.MessageOf(err))
	}
	if errors.Is(err, bus.ErrUnavailable) {
		return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("The Marketplace is not running, so the %s %s cannot be found: try again later.", what, ref))
	}
	return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("The Marketplace could not say which image %s names (%s): try again later.", ref, errs.MessageOf(err)))
}

// usable refuses an entry this cloud cannot run, before anything is
// allocated for it: pdisk imports raw and qcow2 images, plain or
// compressed with gzip or bzip2, from http(s) locations or a pdisk
// volume, checked by size and SHA-1.
func usable(what string, img machine.Image) error {
	name := img.Identifier
	switch {
	case len(name) != 27 || !sha1Hex.MatchString(img.SHA1) || img.Bytes <= 0:
		return errs.Errorf(errs.Invalid, "The %s %s: its Marketplace entry %s gives no identifier, size or SHA-1 that this cloud can check it with.", what, img.Marketplace, img.Entry)
	case len(img.Locations) == 0 && img.FromVolume == "":
		return errs.Errorf(errs.Invalid, "Image %s has no location this cloud can fetch it from (http, https or a pdisk volume).", name)
	}
	switch img.Format {
	case "", "raw", "qcow2":
	default:
		return errs.Errorf(errs.Invalid, "Image %s is a %s image; this cloud runs raw and qcow2 images.", name, img.Format)
	}
	switch img.Compression {
	case "", "none", "gz", "bz2":
	default:
		return errs.Errorf(errs.Invalid, "Image %s is compressed with %s; this cloud unpacks gzip and bzip2 only.", name, img.Compression)
	}
	return nil
}

// draft asks the Marketplace for the draft entry of the image m's root
// disk was saved into (m.SavedImage), as m's owner, and returns its
// identifier. The capture's size and SHA-1 are read from the volume's
// document, where pdisk recorded them; the os fields come from m's
// Marketplace image, if it had one; the format is the saved volume's. The
// command's id derives from the machine, so a resumed teardown makes one
// draft, and the Marketplace derives the draft's id from the volume.
func (s *Scheduler) draft(ctx context.Context, m *machine.Machine) (string, error) {
	v, err := s.volumeDoc(ctx, m.SavedImage)
	if err != nil {
		return "", fmt.Errorf("vmctl: read the saved volume %s: %w", m.SavedImage, err)
	}
	if v.SHA1 == "" || v.Bytes <= 0 {
		return "", errs.Errorf(errs.Unavailable, "pdisk recorded no size and SHA-1 for it (its storage keeps no file pdisk reads)")
	}
	msg := &marketplacev1.CreateDraft{
		Owner: m.Owner, MachineUuid: m.UUID, VolumeUuid: strings.TrimPrefix(m.SavedImage, "Volume/"),
		Bytes: uint64(v.Bytes), Sha1: v.SHA1, Format: v.Format,
	}
	if m.Save != nil {
		msg.Title, msg.Comment, msg.Author, msg.AuthorEmail, msg.ImageVersion =
			m.Save.Title, m.Save.Comment, m.Save.Author, m.Save.AuthorEmail, m.Save.ImageVersion
	}
	if m.Image.FromMarketplace() {
		msg.Os, msg.OsVersion, msg.OsArch = m.Image.OS, m.Image.OSVersion, m.Image.OSArch
	}
	if _, err := s.callAs(ctx, owner(m), subject.CmdMachineImageCreateDraft, stepID(m.UUID, "draft"), msg); err != nil {
		return "", err
	}
	return v.Identifier, nil
}
