package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/mptest"
)

// TestResolve: identifiers and tags as vmctl sends them, over the bus,
// with the site's policy for expired and deprecated images.
func TestResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	sign := func(signer mptest.Credential, content, tag string, endorsed time.Duration) string {
		entry := mptest.Entry(t, mptest.Image{Content: content, Tag: tag, Created: now.Add(-3 * time.Hour)})
		actor := alice
		if signer.Cert == p.bob.Cert {
			actor = bob
		}
		return e.mustUpload(actor, mptest.Sign(t, entry, signer, now.Add(-endorsed)))
	}
	base1 := sign(p.alice, "base 1", "base", 2*time.Hour)
	base2 := sign(p.alice, "base 2", "base", time.Hour)
	bobBase := sign(p.bob, "bob base", "base", 30*time.Minute)
	tools := sign(p.alice, "tools", "tools", time.Hour)
	if o := e.deprecate(alice, tools, "use tools-2"); !o.ok() {
		t.Fatal(o.message)
	}
	identifier := func(id string) string { return e.mustGet(anon, id).Identifier }

	tests := []struct {
		ref             string
		allowDeprecated bool
		want            string
		code            errs.Code
		msg             string
	}{
		{ref: identifier(base1), want: base1},
		{ref: "alice@example.org/base", want: base2},
		{ref: "bob@example.org/base", want: bobBase},
		{ref: "base", code: errs.Conflict, msg: "The tag base is used by several endorsers (alice@example.org, bob@example.org)"},
		{ref: identifier(tools), code: errs.Invalid, msg: "Image " + identifier(tools) + " is deprecated: use tools-2."},
		{ref: identifier(tools), allowDeprecated: true, want: tools},
		{ref: "tools", code: errs.NotFound, msg: "No valid image has tag tools: Image " + identifier(tools) + " is deprecated"},
		{ref: "tools", allowDeprecated: true, want: tools},
		{ref: "AAAAAAAAAAAAAAAAAAAAAAAAAAA", code: errs.NotFound, msg: "No Marketplace entry has identifier AAAAAAAAAAAAAAAAAAAAAAAAAAA."},
		{ref: "what/ever/this", code: errs.Invalid, msg: "is not an image reference"},
	}
	for _, tt := range tests {
		policy := catalog.Policy{AllowDeprecated: tt.allowDeprecated}
		if tt.code != "" {
			// Refusals in process: the bus answers errors from a
			// goroutine the race detector flags (a bus matter).
			_, err := e.r().ctl.Resolve(context.Background(), cimi.Identity{User: "carol"}, tt.ref, policy)
			if errs.CodeOf(err) != tt.code || !strings.Contains(errs.MessageOf(err), tt.msg) {
				t.Errorf("%s: %v; want %s %q", tt.ref, err, tt.code, tt.msg)
			}
			continue
		}
		var resp marketplacev1.ResolveResponse
		req := &marketplacev1.ResolveRequest{Actor: carol, Reference: tt.ref, AllowDeprecated: tt.allowDeprecated}
		if err := e.client.Request(context.Background(), subject.SvcResolveImage, carol, req, &resp); err != nil {
			t.Errorf("%s: %v", tt.ref, err)
			continue
		}
		im := resp.GetImage()
		want := e.mustGet(anon, tt.want)
		if im.GetId() != tt.want || im.GetIdentifier() != want.Identifier || im.GetSha1() != want.SHA1 || im.GetBytes() != uint64(want.Bytes) ||
			len(im.GetLocations()) != 1 || im.GetLocations()[0] != want.Locations[0] || im.GetFormat() != "raw" || im.GetCompression() != "none" ||
			im.GetKind() != "machine" || im.GetStatus() != want.Status(time.Now()) || im.GetEndorserEmail() != want.Endorser.Email ||
			metadata.FormatTime(im.GetEndorsed().AsTime()) != want.Endorsed || metadata.FormatTime(im.GetValid().AsTime()) != want.Valid ||
			im.GetTag() != want.Tag || im.GetOs() != "debian" || im.GetVolumeUuid() != "" || im.GetDeprecated() != want.Deprecated {
			t.Errorf("%s: %+v; want %+v", tt.ref, im, want)
		}
	}

	// Expired: refused unless allowed.
	e.clock.Advance(200 * 24 * time.Hour)
	if _, err := e.r().ctl.Resolve(context.Background(), cimi.Identity{}, identifier(base1), catalog.Policy{}); errs.CodeOf(err) != errs.Invalid ||
		!strings.Contains(errs.MessageOf(err), "expired on") {
		t.Errorf("expired: %v", err)
	}
	if im, err := e.r().ctl.Resolve(context.Background(), cimi.Identity{}, identifier(base1), catalog.Policy{AllowExpired: true}); err != nil || im.ID != base1 {
		t.Errorf("expired, allowed: %q %v", im.ID, err)
	}
}
