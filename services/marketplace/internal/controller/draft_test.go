package controller_test

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/mptest"
)

// captured is the CreateDraft vmctl sends after capturing content into a
// new volume of owner's.
func captured(owner, content string) *marketplacev1.CreateDraft {
	sum := sha1.Sum([]byte(content))
	return &marketplacev1.CreateDraft{
		Owner: owner, MachineUuid: uuid.NewString(), VolumeUuid: uuid.NewString(),
		Bytes: uint64(len(content)), Sha1: hex.EncodeToString(sum[:]),
		Title: "My web server", Comment: "Apache with my site", Author: "Alice Appliance", AuthorEmail: "alice@example.org",
		ImageVersion: "1.0", Os: "debian", OsVersion: "12", OsArch: "x86_64", Format: "qcow2",
	}
}

func (e *env) createDraft(actor *commonv1.Actor, m *marketplacev1.CreateDraft, cmdID string) outcome {
	e.t.Helper()
	return e.send(actor, subject.CmdMachineImageCreateDraft, m, cmdID)
}

// TestDraftLifecycle follows a capture's draft: made once however often
// the command comes, seen and resolved by its owner only, edited (the XML
// follows), then replaced by the signed entry its owner uploads.
func TestDraftLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	content := "captured web server"
	m := captured("alice", content)
	cmdID := uuid.NewString()
	o := e.createDraft(nil, m, cmdID) // vmctl sends as the system
	id := catalog.DraftID(m.VolumeUuid)
	if !o.ok() || len(o.affected) != 1 || o.affected[0] != id {
		t.Fatalf("create_draft: %+v", o)
	}
	sum := sha1.Sum([]byte(content))
	identifier := metadata.Identifier(sum)
	if !strings.Contains(o.message, identifier) {
		t.Errorf("the outcome %q does not name the identifier", o.message)
	}

	// The same command again, and another command for the same capture.
	if o := e.createDraft(nil, m, cmdID); !o.ok() || o.affected[0] != id {
		t.Fatalf("redelivered: %+v", o)
	}
	if o := e.createDraft(nil, m, ""); !o.ok() || o.affected[0] != id {
		t.Fatalf("again: %+v", o)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d entries, want the one draft", n)
	}

	// The events: the draft's, once per command.
	evs := e.eventsOn(subject.EvtMachineImageDraftCreated)
	if len(evs) != 2 {
		t.Fatalf("%d draft_created events, want 2 (one per command)", len(evs))
	}
	var ev marketplacev1.DraftCreated
	if err := evs[0].Decode(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.Id != id || ev.Identifier != identifier || ev.Owner != "alice" || ev.VolumeUuid != m.VolumeUuid ||
		ev.MachineUuid != m.MachineUuid || ev.AuthorEmail != "alice@example.org" || ev.Valid == nil {
		t.Fatalf("event %+v", &ev)
	}

	// What the draft holds: the rendered entry of the capture.
	draft := e.mustGet(alice, id)
	entry, err := metadata.Parse([]byte(draft.XML))
	if err != nil {
		t.Fatal(err)
	}
	valid, _ := metadata.ParseTime(entry.Valid)
	if !draft.Draft || draft.Identifier != identifier || entry.Identifier != identifier || entry.Bytes != int64(len(content)) ||
		entry.Checksum(metadata.AlgorithmSHA1) != m.Sha1 || entry.Title != "My web server" || entry.Description != "Apache with my site" ||
		entry.Format != "qcow2" || entry.OS != "debian" || len(entry.Locations) != 1 || entry.Locations[0] != "pdisk:"+m.VolumeUuid ||
		draft.Volume != "Volume/"+m.VolumeUuid || entry.Endorsement.Endorser.Email != "alice@example.org" ||
		time.Until(valid) < 47*time.Hour || time.Until(valid) > 49*time.Hour {
		t.Fatalf("draft %+v\nentry %+v", draft, entry)
	}
	if doc, _ := e.get(alice, id); doc["status"] != "draft" {
		t.Fatalf("status %v", doc["status"])
	}

	// Visible to its owner and administrators only.
	for who, want := range map[*commonv1.Actor]errs.Code{alice: "", root: "", bob: errs.NotFound, anon: errs.NotFound} {
		if _, code := e.get(who, id); code != want {
			t.Errorf("get as %q: %q, want %q", who.GetUser(), code, want)
		}
		n, _, err := e.query(who, &commonv1.CollectionQuery{Filter: "identifier='" + identifier + "'"})
		if err != nil || (n == 1) != (want == "") {
			t.Errorf("query as %q: %d %v", who.GetUser(), n, err)
		}
	}
	im, err := e.r().ctl.Resolve(t.Context(), cimi.Identity{User: "alice"}, identifier, catalog.Policy{})
	if err != nil || im.ID != id || im.VolumeUUID() != m.VolumeUuid {
		t.Fatalf("alice resolves her draft: %+v %v", im, err)
	}
	if _, err := e.r().ctl.Resolve(t.Context(), cimi.Identity{User: "bob"}, identifier, catalog.Policy{}); errs.CodeOf(err) != errs.NotFound {
		t.Fatalf("bob resolves alice's draft: %v", err)
	}

	// Edits: the owner's, checked; the XML is rendered again.
	newValid := metadata.FormatTime(time.Now().AddDate(0, 6, 0))
	web := "https://alice.example.org/images/web.qcow2"
	for _, c := range []struct {
		actor   *commonv1.Actor
		body    string
		selects []string
		code    errs.Code
		msg     string
	}{
		{bob, `{"name": "stolen"}`, nil, errs.NotFound, ""},
		{alice, `{"tag": "not a tag"}`, nil, errs.Invalid, "cannot be a tag"},
		{alice, `{"valid": "2020-01-01T00:00:00Z"}`, nil, errs.Invalid, "must be in the future"},
		{alice, `{"valid": "next week"}`, nil, errs.Invalid, "yyyy-MM-ddTHH:mm:ssZ"},
		{alice, `{"locations": ["ftp://example.org/x"]}`, nil, errs.Invalid, "is not a location"},
		{alice, `{"locations": []}`, nil, errs.Invalid, "at least one"},
		{alice, `{"identifier": "` + strings.Repeat("A", 27) + `"}`, nil, errs.Invalid, "The identifier of this entry cannot be changed"},
		{alice, `{"sha1": "x"}`, []string{"sha1"}, errs.Invalid, "cannot be changed"},
		{alice, `{"name": "Web server", "description": "Apache 2.4, my site", "tag": "web", "valid": "` + newValid +
			`", "locations": ["` + web + `", "pdisk:` + m.VolumeUuid + `"], "status": "draft"}`, nil, "", ""},
		{alice, `{}`, []string{"description"}, "", ""},
	} {
		if o := e.cimi(c.actor, subject.VerbCimiEdit, id, c.body, c.selects...); o.code != c.code || !strings.Contains(o.message, c.msg) {
			t.Errorf("edit %s as %s: %s %q; want %s %q", c.body, c.actor.GetUser(), o.code, o.message, c.code, c.msg)
		}
	}
	draft = e.mustGet(alice, id)
	entry, err = metadata.Parse([]byte(draft.XML))
	if err != nil {
		t.Fatal(err)
	}
	if draft.Name != "Web server" || entry.Title != "Web server" || entry.Description != "" || draft.Description != "" ||
		entry.Tag != "web" || draft.Tag != "web" || entry.Valid != newValid || draft.Valid != newValid ||
		len(entry.Locations) != 2 || entry.Locations[0] != web || !draft.Draft || draft.Volume != "Volume/"+m.VolumeUuid {
		t.Fatalf("after the edits: %+v\nentry %+v", draft, entry)
	}
	if o := e.deprecate(alice, id, "no"); o.code != errs.Invalid || !strings.Contains(o.message, "is a draft") {
		t.Fatalf("deprecate a draft: %s %q", o.code, o.message)
	}
	// Drafts never answer for a tag.
	if _, err := e.r().ctl.Resolve(t.Context(), cimi.Identity{User: "alice"}, "web", catalog.Policy{}); errs.CodeOf(err) != errs.NotFound {
		t.Fatalf("a draft's tag resolves: %v", err)
	}

	// Alice signs the draft's XML and uploads it: the entry replaces the draft.
	if err := metadata.Endorse(entry, p.alice.Cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	signedID := e.mustUpload(alice, mptest.SignAsIs(t, entry, p.alice))
	if e.stored(id) != nil {
		t.Fatal("the draft is still there")
	}
	deleted := e.eventsOn(subject.Event(subject.Marketplace, subject.ResourceMachineImage, subject.EventDeleted))
	if len(deleted) != 1 {
		t.Fatalf("%d deleted events, want 1", len(deleted))
	}
	im, err = e.r().ctl.Resolve(t.Context(), cimi.Identity{}, "alice@example.org/web", catalog.Policy{})
	if err != nil || im.ID != signedID || im.VolumeUUID() != m.VolumeUuid || len(im.WebLocations()) != 1 {
		t.Fatalf("resolve the signed entry by tag: %+v %v", im, err)
	}
}

// TestDraftRefusals: who may make drafts, and what a capture must say.
func TestDraftRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	for _, c := range []struct {
		name  string
		actor *commonv1.Actor
		edit  func(m *marketplacev1.CreateDraft)
		code  errs.Code
		msg   string
	}{
		{"a user for another", bob, nil, errs.Forbidden, "bob may not make drafts for alice"},
		{"no owner", nil, func(m *marketplacev1.CreateDraft) { m.Owner = "" }, errs.Invalid, "needs an owner"},
		{"no volume", nil, func(m *marketplacev1.CreateDraft) { m.VolumeUuid = "" }, errs.Invalid, "volume_uuid must be a uuid"},
		{"bad SHA-1", nil, func(m *marketplacev1.CreateDraft) { m.Sha1 = "1234" }, errs.Invalid, "40 hexadecimal digits"},
		{"no size", nil, func(m *marketplacev1.CreateDraft) { m.Bytes = 0 }, errs.Invalid, "positive number of bytes"},
		{"bad format", nil, func(m *marketplacev1.CreateDraft) { m.Format = "iso" }, errs.Invalid, "known-format"},
		{"bad e-mail", nil, func(m *marketplacev1.CreateDraft) { m.AuthorEmail = "alice at example" }, errs.Invalid, "email-syntax"},
		{"a title too long", nil, func(m *marketplacev1.CreateDraft) { m.Title = strings.Repeat("t", 2000) }, errs.Invalid, "text-length"},
		{"the user itself", alice, func(m *marketplacev1.CreateDraft) { m.Owner = "" }, "", ""},
		{"without an e-mail or os", nil, func(m *marketplacev1.CreateDraft) { m.AuthorEmail, m.Os, m.OsVersion, m.OsArch = "", "", "", "" }, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := captured("alice", c.name)
			if c.edit != nil {
				c.edit(m)
			}
			o := e.createDraft(c.actor, m, "")
			if o.code != c.code || !strings.Contains(o.message, c.msg) {
				t.Fatalf("%s %q; want %s %q", o.code, o.message, c.code, c.msg)
			}
			if c.code == "" {
				if d := e.mustGet(alice, o.affected[0]); !d.Draft || catalog.Owner(e.stored(o.affected[0])) != "alice" {
					t.Fatalf("draft %+v", d)
				}
			}
		})
	}
}
