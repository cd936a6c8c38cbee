package controller

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/resource"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

// Endpoints are the marketplace's own queries (svc.marketplace.resolve),
// to serve beside the resource provider's.
func (c *Controller) Endpoints() []bus.Endpoint {
	return []bus.Endpoint{
		bus.Handle(subject.OpResolveImage, func(ctx context.Context, req *marketplacev1.ResolveRequest) (proto.Message, error) {
			a := req.GetActor()
			if a == nil {
				a = bus.ActorFrom(ctx)
			}
			im, err := c.Resolve(ctx, resource.IdentityOf(a), req.GetReference(),
				catalog.Policy{AllowExpired: req.GetAllowExpired(), AllowDeprecated: req.GetAllowDeprecated()})
			if err != nil {
				return nil, err
			}
			return &marketplacev1.ResolveResponse{Image: ImageProto(im, c.now())}, nil
		}),
	}
}

// Resolve finds the entry a reference names for who (see catalog.Choose):
// the candidates are the entries who may see, so drafts only resolve for
// their owner (and administrators).
func (c *Controller) Resolve(ctx context.Context, who cimi.Identity, reference string, p catalog.Policy) (catalog.Image, error) {
	ref, err := catalog.ParseReference(reference)
	if err != nil {
		return catalog.Image{}, err
	}
	filter := catalog.Eq("identifier", ref.Identifier)
	if ref.Identifier == "" {
		filter = catalog.And(catalog.Eq("tag", ref.Tag), catalog.Signed())
	}
	docs, err := c.list(ctx, who, filter)
	if err != nil {
		return catalog.Image{}, err
	}
	candidates := make([]catalog.Image, 0, len(docs))
	for _, d := range docs {
		im, err := catalog.Decode(d.Body)
		if err != nil {
			c.log.Warn("entry cannot be read", "id", d.ID, "error", err)
			continue
		}
		im.ID = d.ID
		candidates = append(candidates, im)
	}
	return catalog.Choose(ref, candidates, c.now(), p)
}

// ImageProto is the bus form of an entry, with its status at now.
func ImageProto(im catalog.Image, now time.Time) *marketplacev1.Image {
	out := &marketplacev1.Image{
		Id: im.ID, Identifier: im.Identifier, Sha1: im.SHA1, Bytes: uint64(max(im.Bytes, 0)),
		Locations: im.WebLocations(), Format: im.Format, Compression: im.Compression, Kind: im.Kind,
		Status: im.Status(now), VolumeUuid: im.VolumeUUID(), EndorserEmail: im.Endorser.Email,
		Deprecated: im.Deprecated, Tag: im.Tag, Os: im.OS, OsVersion: im.OSVersion, OsArch: im.OSArch, Title: im.Name,
	}
	if t, err := metadata.ParseTime(im.Endorsed); err == nil {
		out.Endorsed = timestamppb.New(t)
	}
	if t, err := metadata.ParseTime(im.Valid); err == nil {
		out.Valid = timestamppb.New(t)
	}
	return out
}
