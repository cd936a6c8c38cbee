package scheduler_test

import (
	"context"
	sha1sum "crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
)

// identifierOf is the Marketplace identifier of a SHA-1 (hex): the format
// of client/metadata.Identifier, another module.
func identifierOf(sum string) string {
	raw, _ := hex.DecodeString(sum)
	return base64.RawURLEncoding.EncodeToString(append([]byte{0}, raw...))[1:]
}

// entry is one Marketplace entry of the stand-in; owner is set for a
// draft, which only its owner sees.
type entry struct {
	image *marketplacev1.Image
	owner string
}

// resolveCall is one resolve the stand-in answered.
type resolveCall struct {
	actor *commonv1.Actor
	req   *marketplacev1.ResolveRequest
}

// draftCall is one create_draft the stand-in handled.
type draftCall struct {
	id       string // command id
	delivery int
	actor    *commonv1.Actor
	msg      *marketplacev1.CreateDraft
}

// market stands in for the marketplace service, whose packages vmctl's
// tests cannot import (they are internal to services/marketplace; the
// real one runs in test/e2e/marketplace_run_test.go). It answers
// svc.marketplace.resolve from its entries with the rules of the contract
// that vmctl relies on (an identifier, "<e-mail>/<tag>" or a tag; drafts
// for their owner only and never for a tag; expired and deprecated
// entries refused with their date or reason unless the request allows
// them; a plain tag of several endorsers a conflict naming them), and
// cmd.marketplace.machine_image.create_draft by storing the draft, which
// then resolves for its owner. It records every request.
type market struct {
	mu       sync.Mutex
	entries  []entry
	resolves []resolveCall
	drafts   []draftCall
	// refuseDraft, when it returns an error, fails create_draft.
	refuseDraft func(m *marketplacev1.CreateDraft) error
	stop        context.CancelFunc
	stopped     chan struct{}
}

func newMarket(t *testing.T, connect func() (*nats.Conn, jetstream.JetStream)) *market {
	mk := &market{}
	nc, js := connect()
	b := bus.New(nc, js, bus.Options{Service: subject.Marketplace, Logger: quiet()})
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: subject.Marketplace, Subjects: []string{"cmd.marketplace.>"}, Concurrency: 16,
			Backoff: []time.Duration{50 * time.Millisecond}}, mk.handle)
	})
	resolve := bus.Handle(subject.OpResolveImage, func(ctx context.Context, req *marketplacev1.ResolveRequest) (proto.Message, error) {
		im, err := mk.resolve(bus.ActorFrom(ctx), req)
		if err != nil {
			return nil, err
		}
		return &marketplacev1.ResolveResponse{Image: im}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	mk.stop, mk.stopped = cancel, make(chan struct{})
	go func() {
		defer close(mk.stopped)
		_ = b.Serve(ctx, bus.ServiceInfo{Name: subject.Marketplace}, resolve)
	}()
	t.Cleanup(mk.down)
	return mk
}

// down stops answering resolves, as a Marketplace that is not running.
func (mk *market) down() {
	mk.stop()
	<-mk.stopped
}

// add stores an entry; its identifier derives from its SHA-1, which
// derives from name when it has none.
func (mk *market) add(im *marketplacev1.Image, owner string) *marketplacev1.Image {
	if im.Sha1 == "" {
		im.Sha1 = fmt.Sprintf("%x", sha1sum.Sum([]byte(im.Title+im.Tag+uuid.NewString())))
	}
	if im.Identifier == "" {
		im.Identifier = identifierOf(im.Sha1)
	}
	if im.Id == "" {
		im.Id = "MachineImage/" + uuid.NewString()
	}
	if im.Bytes == 0 {
		im.Bytes = 10 << 20
	}
	if im.Format == "" {
		im.Format = "raw"
	}
	if im.Status == "" {
		im.Status = "valid"
	}
	mk.mu.Lock()
	mk.entries = append(mk.entries, entry{image: im, owner: owner})
	mk.mu.Unlock()
	return im
}

// calls returns the resolves answered so far.
func (mk *market) calls() []resolveCall {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	return slices.Clone(mk.resolves)
}

// draftCalls returns the create_draft commands handled so far.
func (mk *market) draftCalls() []draftCall {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	return slices.Clone(mk.drafts)
}

// setRefuseDraft sets the refuseDraft hook.
func (mk *market) setRefuseDraft(f func(m *marketplacev1.CreateDraft) error) {
	mk.mu.Lock()
	mk.refuseDraft = f
	mk.mu.Unlock()
}

func (mk *market) resolve(actor *commonv1.Actor, req *marketplacev1.ResolveRequest) (*marketplacev1.Image, error) {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	mk.resolves = append(mk.resolves, resolveCall{actor: actor, req: req})
	ref := req.GetReference()
	var match func(im *marketplacev1.Image) bool
	byTag := true
	switch email, tag, found := strings.Cut(ref, "/"); {
	case len(ref) == 27 && !strings.ContainsAny(ref, "/.@"):
		byTag = false
		match = func(im *marketplacev1.Image) bool { return im.Identifier == ref }
	case found:
		match = func(im *marketplacev1.Image) bool { return im.Tag == tag && strings.EqualFold(im.EndorserEmail, email) }
	default:
		match = func(im *marketplacev1.Image) bool { return im.Tag == ref }
	}
	var candidates []*marketplacev1.Image
	for _, e := range mk.entries {
		visible := e.owner == "" || (!byTag && e.owner == actor.GetUser())
		if visible && match(e.image) {
			candidates = append(candidates, e.image)
		}
	}
	if len(candidates) == 0 {
		if byTag {
			return nil, errs.Errorf(errs.NotFound, "No valid image has tag %s.", ref)
		}
		return nil, errs.Errorf(errs.NotFound, "No Marketplace entry has identifier %s.", ref)
	}
	allowed := func(im *marketplacev1.Image) bool {
		switch im.Status {
		case "valid", "draft":
			return true
		case "expired":
			return req.GetAllowExpired()
		case "deprecated":
			return req.GetAllowDeprecated()
		}
		return false
	}
	var usable []*marketplacev1.Image
	endorsers := map[string]bool{}
	for _, im := range candidates {
		if allowed(im) {
			usable = append(usable, im)
			endorsers[im.EndorserEmail] = true
		}
	}
	if len(usable) == 0 {
		im := candidates[len(candidates)-1]
		if im.Status == "expired" {
			return nil, errs.Errorf(errs.Invalid, "Image %s expired on %s.", im.Identifier, im.Valid.AsTime().Format(time.RFC3339))
		}
		return nil, errs.Errorf(errs.Invalid, "Image %s is deprecated: %s", im.Identifier, im.Deprecated)
	}
	if byTag && len(endorsers) > 1 {
		names := make([]string, 0, len(endorsers))
		for e := range endorsers {
			names = append(names, e)
		}
		slices.Sort(names)
		return nil, errs.Errorf(errs.Conflict, "The tag %s is used by several endorsers (%s): name one, as in %s/%s.", ref, strings.Join(names, ", "), names[0], ref)
	}
	return proto.Clone(usable[len(usable)-1]).(*marketplacev1.Image), nil
}

func (mk *market) handle(_ context.Context, cmd *bus.Command) (bus.Result, error) {
	if cmd.Subject() != subject.CmdMachineImageCreateDraft {
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "The marketplace has no command %s.", cmd.Subject()))
	}
	m := &marketplacev1.CreateDraft{}
	if err := cmd.Decode(m); err != nil {
		return bus.Result{}, bus.Permanent(err)
	}
	mk.mu.Lock()
	mk.drafts = append(mk.drafts, draftCall{id: cmd.ID(), delivery: cmd.Deliveries(), actor: cmd.Actor(), msg: m})
	refuse := mk.refuseDraft
	mk.mu.Unlock()
	if refuse != nil {
		if err := refuse(m); err != nil {
			return bus.Result{}, bus.Settle(err)
		}
	}
	owner := m.GetOwner()
	if owner == "" {
		owner = cmd.Actor().GetUser()
	}
	id := "MachineImage/" + uuid.NewSHA1(uuid.NameSpaceOID, []byte(m.GetVolumeUuid())).String()
	mk.mu.Lock()
	known := slices.ContainsFunc(mk.entries, func(e entry) bool { return e.image.Id == id })
	mk.mu.Unlock()
	if !known {
		mk.add(&marketplacev1.Image{
			Id: id, Sha1: m.GetSha1(), Bytes: m.GetBytes(), VolumeUuid: m.GetVolumeUuid(), Format: m.GetFormat(), Kind: "machine",
			Status: "draft", EndorserEmail: m.GetAuthorEmail(), Os: m.GetOs(), OsVersion: m.GetOsVersion(), OsArch: m.GetOsArch(),
			Title: m.GetTitle(), Valid: timestamppb.New(time.Now().Add(48 * time.Hour)),
		}, owner)
	}
	return bus.Result{Affected: []string{id}, Message: fmt.Sprintf("%s created: the draft of image %s.", id, identifierOf(m.GetSha1()))}, nil
}

// The entries every test cloud's Marketplace holds (seedMarket).
var (
	debianSHA1 = strings.Repeat("0d", 20)
	// marketID (request_test.go) is debian-12 of images@example.org.
	expiredID    = identifierOf(strings.Repeat("e1", 20))
	deprecatedID = identifierOf(strings.Repeat("de", 20))
	vmdkID       = identifierOf(strings.Repeat("7d", 20))
	xzID         = identifierOf(strings.Repeat("c2", 20))
	bobDraftID   = identifierOf(strings.Repeat("b0", 20))
	aliceDraftID = identifierOf(strings.Repeat("a0", 20))
	// aliceDraftVolume holds alice's draft: its only location.
	aliceDraftVolume = "9c1d8f4e-2b7a-4c39-8d0e-6a4b1c9e7f21"
	// expiredOn is when expiredID stopped being valid.
	expiredOn = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
)

// debianLocations are where debian-12 is served, in order.
var debianLocations = []string{"https://images.example.org/debian-12.img", "http://mirror.example.org/debian-12.img"}

// seedMarket stores the entries the tests name.
func seedMarket(mk *market) {
	mk.add(&marketplacev1.Image{Identifier: marketID, Sha1: debianSHA1, Bytes: 2 << 30, Locations: debianLocations, Format: "qcow2",
		Compression: "gz", Kind: "machine", Tag: "debian-12", EndorserEmail: "images@example.org", Os: "Debian", OsVersion: "12", OsArch: "x86_64",
		Title: "Debian 12"}, "")
	mk.add(&marketplacev1.Image{Identifier: expiredID, Sha1: strings.Repeat("e1", 20), Locations: debianLocations, Tag: "old",
		EndorserEmail: "images@example.org", Status: "expired", Valid: timestamppb.New(expiredOn)}, "")
	mk.add(&marketplacev1.Image{Identifier: deprecatedID, Sha1: strings.Repeat("de", 20), Locations: debianLocations, Tag: "deprecated",
		EndorserEmail: "images@example.org", Status: "deprecated", Deprecated: "CVE-2024-0001: use debian-12"}, "")
	mk.add(&marketplacev1.Image{Identifier: vmdkID, Sha1: strings.Repeat("7d", 20), Locations: debianLocations, Format: "vmdk"}, "")
	mk.add(&marketplacev1.Image{Identifier: xzID, Sha1: strings.Repeat("c2", 20), Locations: debianLocations, Compression: "xz"}, "")
	mk.add(&marketplacev1.Image{Tag: "shared", Locations: debianLocations, EndorserEmail: "b@example.org"}, "")
	mk.add(&marketplacev1.Image{Tag: "shared", Locations: debianLocations, EndorserEmail: "a@example.org"}, "")
	mk.add(&marketplacev1.Image{Identifier: bobDraftID, Sha1: strings.Repeat("b0", 20), VolumeUuid: uuid.NewString(), Status: "draft",
		EndorserEmail: "bob@example.org"}, "bob")
	mk.add(&marketplacev1.Image{Identifier: aliceDraftID, Sha1: strings.Repeat("a0", 20), VolumeUuid: aliceDraftVolume, Status: "draft",
		Format: "qcow2", EndorserEmail: "alice@example.org", Os: "Debian", OsVersion: "12", OsArch: "x86_64"}, "alice")
}
