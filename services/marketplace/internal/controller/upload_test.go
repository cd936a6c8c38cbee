package controller_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/controller"
	"stratuslab.dev/services/marketplace/internal/mptest"
	"stratuslab.dev/services/marketplace/internal/settings"
)

// TestUploadStoresTheEntry: an accepted entry is a MachineImage document
// with the entry's attributes, readable by everyone, owned by its
// uploader, announced as created.
func TestUploadStoresTheEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	entry := mptest.Entry(t, mptest.Image{Content: "debian 12 base", Tag: "debian-12", Title: "Debian 12", OSVersion: "12"})
	endorsed := time.Now().Add(-time.Minute).Truncate(time.Second)
	xml := mptest.Sign(t, entry, p.alice, endorsed)
	o := e.upload(alice, xml)
	if !o.ok() || len(o.affected) != 1 || o.affected[0] != o.id {
		t.Fatalf("upload: %+v", o)
	}
	for _, who := range []*commonv1.Actor{alice, bob, anon, root} {
		im := e.mustGet(who, o.id)
		if im.Identifier != entry.Identifier || im.Endorser.Email != "alice@example.org" || im.Endorsed != metadata.FormatTime(endorsed) ||
			im.Tag != "debian-12" || im.Name != "Debian 12" || im.OS != "debian" || im.OSVersion != "12" || im.OSArch != "x86_64" ||
			im.Kind != "machine" || im.Format != "raw" || im.Bytes != entry.Bytes || im.SHA1 != entry.Checksum(metadata.AlgorithmSHA1) ||
			len(im.Checksums) != 4 || len(im.Locations) != 1 || im.Draft || im.XML != string(xml) || im.Valid != entry.Valid {
			t.Fatalf("as %q: %+v", who.GetUser(), im)
		}
	}
	doc, _ := e.get(anon, o.id)
	if doc["status"] != metadata.StatusValid || doc["resourceURI"] != cimi.ResourceURI(catalog.Kind) || catalog.Owner(doc) != "alice" {
		t.Fatalf("status %v, resourceURI %v, owner %q", doc["status"], doc["resourceURI"], catalog.Owner(doc))
	}
	if evs := e.eventsOn(subject.Event(subject.Marketplace, subject.ResourceMachineImage, subject.EventCreated)); len(evs) != 1 {
		t.Fatalf("%d created events, want 1", len(evs))
	}
}

// TestUploadRefusals: every rule of CONTRACT.md refuses with its code and
// a message naming it, and nothing is stored.
func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	entry := func(content string) *metadata.Entry { return mptest.Entry(t, mptest.Image{Content: content}) }

	// Stored first: version 2 of "versioned" by alice, and "twice".
	v2 := mptest.Sign(t, entry("versioned"), p.alice, now.Add(-time.Hour))
	e.mustUpload(alice, v2)
	twiceEntry := entry("twice")
	twice := mptest.Sign(t, twiceEntry, p.alice, now.Add(-time.Hour))
	twiceEntry.Endorsement = metadata.Endorsement{}
	twiceID := e.mustUpload(alice, twice)
	stored := e.count()

	claimsAlice := entry("claims alice")
	if err := metadata.Endorse(claimsAlice, p.alice.Cert, now); err != nil {
		t.Fatal(err)
	}
	good := mptest.Sign(t, entry("good"), p.alice, now)
	unsigned, _ := metadata.Render(entry("unsigned"))
	expired := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "expired", Created: now.AddDate(0, -2, 0), Validity: 24 * time.Hour}),
		p.alice, now.AddDate(0, -2, 0).Add(time.Hour))

	tests := []struct {
		name   string
		actor  *commonv1.Actor
		body   string // the create body; "" for {"metadata": doc}
		doc    []byte
		set    func(s *settings.Settings)
		code   errs.Code
		rule   string
		detail string
	}{
		{name: "not well-formed", doc: good[:200], code: errs.Invalid, rule: metadata.RuleWellFormed},
		{name: "a DOCTYPE", doc: bytes.Replace(good, []byte("<rdf:RDF"), []byte("<!DOCTYPE rdf:RDF SYSTEM \"http://example.org/x.dtd\">\n<rdf:RDF"), 1),
			code: errs.Invalid, rule: metadata.RuleNoDoctype},
		{name: "unsigned", doc: unsigned, code: errs.Invalid, rule: metadata.RuleSignaturePresent, detail: "stratus sign-metadata"},
		{name: "tampered", doc: bytes.Replace(good, []byte("Test image"), []byte("Evil image"), 1), code: errs.Invalid, rule: metadata.RuleSignatureDigest},
		{name: "signed by bob, claiming alice", doc: mptest.SignAsIs(t, claimsAlice, p.bob), code: errs.Invalid,
			rule: metadata.RuleEndorserMatchesCertificate},
		{name: "expired", doc: expired, code: errs.Invalid, rule: metadata.RuleNotExpired, detail: "expired at"},
		{name: "older than the stored version", doc: mptest.Sign(t, entry("versioned"), p.alice, now.Add(-2*time.Hour)),
			code: errs.Invalid, rule: metadata.RuleNewerThanStored, detail: "endorsed at " + metadata.FormatTime(now.Add(-time.Hour))},
		{name: "as old as the stored version, another title", doc: mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "versioned", Title: "Other"}), p.alice, now.Add(-time.Hour)),
			code: errs.Invalid, rule: metadata.RuleNewerThanStored},
		{name: "the same entry, signed again", doc: mptest.Sign(t, twiceEntry, p.alice, now.Add(-time.Hour)), code: errs.Conflict, rule: metadata.RuleAlreadyUploaded, detail: twiceID},
		{name: "the same entry twice", doc: twice, code: errs.Conflict, rule: metadata.RuleAlreadyUploaded, detail: twiceID},
		{name: "not in the allow-list", doc: good, set: func(s *settings.Settings) { s.Endorsers = []string{"bob@example.org"} },
			code: errs.Invalid, rule: metadata.RuleEndorserAllowed},
		{name: "untrusted CA", doc: mptest.Sign(t, entry("outsider"), p.outsider, now),
			set: func(s *settings.Settings) { s.TrustedCAs = string(p.ca.CertPEM()) }, code: errs.Invalid, rule: metadata.RuleTrustedCA},
		{name: "no metadata", body: `{"name": "x"}`, code: errs.Invalid, detail: `takes one attribute, "metadata"`},
		{name: "metadata not a string", body: `{"metadata": 42}`, code: errs.Invalid, detail: `needs "metadata"`},
		{name: "anonymous", actor: anon, doc: good, code: errs.Forbidden},
	}
	// One at a time: some change the settings.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := *e.settings.Load()
			if tt.set != nil {
				e.set(tt.set)
			}
			defer e.settings.Store(&s)
			actor := tt.actor
			if actor == nil {
				actor = alice
			}
			var o outcome
			if tt.body != "" {
				o = e.cimi(actor, subject.VerbCimiCreate, cimi.NewID(catalog.Kind), tt.body)
			} else {
				o = e.upload(actor, tt.doc)
			}
			if o.code != tt.code || !strings.Contains(o.message, tt.rule) || !strings.Contains(o.message, tt.detail) {
				t.Fatalf("got %s %q, want %s naming %q with %q", o.code, o.message, tt.code, tt.rule, tt.detail)
			}
			if tt.rule != "" && !strings.HasPrefix(o.message, "Entry refused ("+tt.rule) {
				t.Fatalf("message %q does not start by naming the rule", o.message)
			}
			if e.stored(o.id) != nil || e.count() != stored {
				t.Fatalf("a refused entry was stored")
			}
		})
	}
	// The first refused version did not block a newer one.
	e.mustUpload(alice, mptest.Sign(t, entry("versioned"), p.alice, now))
}

// TestConcurrentUploads: the same entry sent five times at once to two
// replicas is stored once (the others are 409); of two versions sent at
// once, the older one is stored only if it got there first.
func TestConcurrentUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	p := testPKI()
	now := time.Now()
	for round := range 3 {
		xml := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: fmt.Sprintf("race %d", round)}), p.alice, now.Add(-time.Hour))
		outcomes := make([]outcome, 5)
		var wg sync.WaitGroup
		for i := range outcomes {
			wg.Go(func() { outcomes[i] = e.upload(alice, xml) })
		}
		wg.Wait()
		ok, conflicts := 0, 0
		for _, o := range outcomes {
			switch {
			case o.ok():
				ok++
			case o.code == errs.Conflict && strings.Contains(o.message, metadata.RuleAlreadyUploaded):
				conflicts++
			default:
				t.Errorf("round %d: unexpected outcome %s %q", round, o.code, o.message)
			}
		}
		if ok != 1 || conflicts != 4 {
			t.Fatalf("round %d: %d stored, %d conflicts; want 1 and 4", round, ok, conflicts)
		}

		content := fmt.Sprintf("versions %d", round)
		older := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: content}), p.alice, now.Add(-2*time.Hour))
		newer := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: content}), p.alice, now.Add(-time.Hour))
		var o1, o2 outcome
		wg.Go(func() { o1 = e.upload(alice, older) })
		wg.Go(func() { o2 = e.upload(alice, newer) })
		wg.Wait()
		if !o2.ok() {
			t.Fatalf("round %d: the newer version was refused: %s", round, o2.message)
		}
		if !o1.ok() && !strings.Contains(o1.message, metadata.RuleNewerThanStored) {
			t.Fatalf("round %d: the older version: %s %q", round, o1.code, o1.message)
		}
		if o1.ok() {
			// Then it was claimed first: its document cannot be newer.
			a, b := e.stored(o1.id), e.stored(o2.id)
			if a["endorsed"].(string) >= b["endorsed"].(string) {
				t.Fatalf("round %d: stored %v after %v", round, a["endorsed"], b["endorsed"])
			}
		}
	}
}

// TestTwoEndorsers: alice and bob upload, search and deprecate their own
// entries; neither may deprecate the other's.
func TestTwoEndorsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	var aliceIDs, bobIDs []string
	for i := range 3 {
		aliceIDs = append(aliceIDs, e.mustUpload(alice, mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: fmt.Sprintf("alice %d", i)}), p.alice, now)))
		bobIDs = append(bobIDs, e.mustUpload(bob, mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: fmt.Sprintf("bob %d", i)}), p.bob, now)))
	}
	// Each endorser's search finds its own entries, whoever searches.
	for _, who := range []*commonv1.Actor{alice, bob, anon} {
		for email, want := range map[string][]string{"alice@example.org": aliceIDs, "bob@example.org": bobIDs} {
			n, ids, err := e.query(who, &commonv1.CollectionQuery{Filter: "endorser/email='" + email + "'", OrderBy: []string{"id"}})
			if err != nil || n != 3 || !sameSet(ids, want) {
				t.Fatalf("as %q, %s: %d %v %v; want %v", who.GetUser(), email, n, ids, err, want)
			}
		}
	}

	// Deprecating someone else's entry is forbidden, with the reason why.
	o := e.deprecate(alice, bobIDs[0], "I do not like it")
	if o.code != errs.Forbidden || o.message != "Only the uploader of a Marketplace entry or an administrator may deprecate it." {
		t.Fatalf("alice deprecates bob's entry: %s %q", o.code, o.message)
	}
	if o := e.deprecate(anon, bobIDs[0], "x"); o.code != errs.Forbidden {
		t.Fatalf("anonymous deprecates: %s %q", o.code, o.message)
	}
	// Each deprecates its own.
	if o := e.deprecate(alice, aliceIDs[0], "superseded by alice 1"); !o.ok() {
		t.Fatalf("alice deprecates her entry: %s", o.message)
	}
	if o := e.deprecate(bob, bobIDs[1], "broken network"); !o.ok() {
		t.Fatalf("bob deprecates his entry: %s", o.message)
	}
	if o := e.deprecate(root, bobIDs[2], "withdrawn by the site"); !o.ok() {
		t.Fatalf("an administrator deprecates: %s", o.message)
	}
	want := map[string][3]string{ // id -> status, deprecated, deprecatedBy
		aliceIDs[0]: {"deprecated", "superseded by alice 1", "alice"}, aliceIDs[1]: {"valid"}, aliceIDs[2]: {"valid"},
		bobIDs[0]: {"valid"}, bobIDs[1]: {"deprecated", "broken network", "bob"}, bobIDs[2]: {"deprecated", "withdrawn by the site", "root"},
	}
	for id, w := range want {
		doc, _ := e.get(anon, id)
		if doc["status"] != w[0] || str(doc["deprecated"]) != w[1] || str(doc["deprecatedBy"]) != w[2] {
			t.Errorf("%s: status %v, deprecated %v by %v; want %v", id, doc["status"], doc["deprecated"], doc["deprecatedBy"], w)
		}
	}
	// Nobody but an administrator edits or deletes a signed entry.
	for _, c := range []struct {
		actor *commonv1.Actor
		verb  string
		body  string
		code  errs.Code
		msg   string
	}{
		{alice, subject.VerbCimiEdit, `{"name": "renamed"}`, errs.Forbidden, "Marketplace entries are signed"},
		{bob, subject.VerbCimiEdit, `{"name": "renamed"}`, errs.Forbidden, "Marketplace entries are signed"},
		{alice, subject.VerbCimiDelete, ``, errs.Forbidden, "Only administrators may delete"},
		{bob, subject.VerbCimiDelete, ``, errs.Forbidden, "Only administrators may delete"},
		{root, subject.VerbCimiEdit, `{"name": "renamed"}`, errs.Invalid, "The name of this entry cannot be changed"},
		{root, subject.VerbCimiEdit, `{"acl": {"owner": {"principal": "root", "type": "USER"}}}`, errs.Invalid, "The acl of this entry cannot be changed"},
	} {
		if o := e.cimi(c.actor, c.verb, aliceIDs[1], c.body); o.code != c.code || !strings.Contains(o.message, c.msg) {
			t.Errorf("%s %s: %s %q; want %s %q", c.actor.GetUser(), c.verb, o.code, o.message, c.code, c.msg)
		}
	}
	if im := e.mustGet(anon, aliceIDs[1]); im.Name != "Test image" {
		t.Errorf("name changed to %q", im.Name)
	}
}

// TestDeprecate: a reason is required; the first reason stays; a draft
// cannot be deprecated; an administrator may withdraw a deprecation.
func TestDeprecate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	id := e.mustUpload(alice, mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "to deprecate"}), p.alice, time.Now()))
	if o := e.deprecate(alice, id, "  "); o.code != errs.Invalid || !strings.Contains(o.message, "needs a reason") {
		t.Fatalf("no reason: %s %q", o.code, o.message)
	}
	if o := e.deprecate(alice, id, "first reason"); !o.ok() {
		t.Fatal(o.message)
	}
	o := e.deprecate(alice, id, "second reason")
	if o.code != errs.Conflict || !strings.Contains(o.message, `deprecated already by alice: "first reason"`) {
		t.Fatalf("twice: %s %q", o.code, o.message)
	}
	if im := e.mustGet(anon, id); im.Deprecated != "first reason" {
		t.Fatalf("reason %q", im.Deprecated)
	}
	// An administrator withdraws it, with an edit of deprecated.
	if o := e.cimi(root, subject.VerbCimiEdit, id, `{"deprecated": null}`, "deprecated"); !o.ok() {
		t.Fatal(o.message)
	}
	doc, _ := e.get(anon, id)
	if doc["status"] != "valid" || doc["deprecated"] != nil || doc["deprecatedBy"] != nil {
		t.Fatalf("after withdrawal: %v %v %v", doc["status"], doc["deprecated"], doc["deprecatedBy"])
	}
}

// TestHistory: every version of an image is kept; a newer entry carrying
// slterms:deprecated deprecates the endorser's older ones (not another
// endorser's); resolving the identifier picks the newest valid.
func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	image := mptest.Image{Content: "history", Tag: "hist"}
	var ids []string
	for i := range 3 {
		ids = append(ids, e.mustUpload(alice, mptest.Sign(t, mptest.Entry(t, image), p.alice, now.Add(time.Duration(i-5)*time.Hour))))
	}
	bobs := e.mustUpload(bob, mptest.Sign(t, mptest.Entry(t, image), p.bob, now.Add(-10*time.Hour)))
	identifier := mptest.Entry(t, image).Identifier
	n, got, err := e.query(anon, &commonv1.CollectionQuery{Filter: "identifier='" + identifier + "'", OrderBy: []string{"endorsed:desc"}})
	if err != nil || n != 4 || !equal(got, []string{ids[2], ids[1], ids[0], bobs}) {
		t.Fatalf("history %d %v %v", n, got, err)
	}
	im, err := e.r().ctl.Resolve(t.Context(), cimi.Identity{}, identifier, catalog.Policy{})
	if err != nil || im.ID != ids[2] {
		t.Fatalf("resolve %s: %q %v; want %s", identifier, im.ID, err, ids[2])
	}

	image.Deprecated = "contains a vulnerable kernel"
	last := e.mustUpload(alice, mptest.Sign(t, mptest.Entry(t, image), p.alice, now.Add(-time.Hour)))
	for _, id := range append(ids, last) {
		doc, _ := e.get(anon, id)
		if doc["status"] != "deprecated" || doc["deprecated"] != "contains a vulnerable kernel" || doc["deprecatedBy"] != "alice" {
			t.Errorf("%s: %v %v %v", id, doc["status"], doc["deprecated"], doc["deprecatedBy"])
		}
	}
	if doc, _ := e.get(anon, bobs); doc["status"] != "valid" {
		t.Errorf("bob's entry of the same image: %v", doc["status"])
	}
	// Bob's entry is still valid, so the identifier resolves to it.
	if im, err := e.r().ctl.Resolve(t.Context(), cimi.Identity{}, identifier, catalog.Policy{}); err != nil || im.ID != bobs {
		t.Fatalf("resolve after deprecation: %q %v; want bob's %s", im.ID, err, bobs)
	}
	// Updated events for the deprecated older versions.
	if evs := e.eventsOn(subject.Event(subject.Marketplace, subject.ResourceMachineImage, subject.EventUpdated)); len(evs) != 3 {
		t.Errorf("%d updated events, want 3", len(evs))
	}
}

// TestAdminDelete: an administrator deletes the newest version; the same
// entry may then be uploaded again, and no older one.
func TestAdminDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	v1 := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "deleted"}), p.alice, now.Add(-2*time.Hour))
	v2 := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "deleted"}), p.alice, now.Add(-time.Hour))
	e.mustUpload(alice, v1)
	id2 := e.mustUpload(alice, v2)
	if o := e.cimi(root, subject.VerbCimiDelete, id2, ""); !o.ok() {
		t.Fatal(o.message)
	}
	if o := e.upload(alice, v1); o.code != errs.Conflict {
		t.Fatalf("v1 again: %s %q", o.code, o.message)
	}
	e.mustUpload(alice, v2)
}

// TestQueries: the searches of the contract, as CIMI filters, with paging
// and counts; status is computed when read and filterable.
func TestQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now().Truncate(time.Second)
	type spec struct {
		signer                mptest.Credential
		actor                 *commonv1.Actor
		os, version, arch, tg string
		endorsed              time.Duration // before now
		validity              time.Duration
	}
	specs := []spec{
		{p.alice, alice, "debian", "12", "x86_64", "debian", 10 * time.Hour, 365 * 24 * time.Hour},
		{p.alice, alice, "debian", "11", "x86_64", "debian-old", 9 * time.Hour, 365 * 24 * time.Hour},
		{p.alice, alice, "debian", "12", "aarch64", "debian-arm", 8 * time.Hour, 365 * 24 * time.Hour},
		{p.alice, alice, "centos", "7", "x86_64", "", 7 * time.Hour, 20 * time.Hour}, // expires in 12h
		{p.bob, bob, "ubuntu", "22.04", "x86_64", "ubuntu", 6 * time.Hour, 365 * 24 * time.Hour},
		{p.bob, bob, "debian", "12", "x86_64", "debian", 5 * time.Hour, 365 * 24 * time.Hour},
		{p.bob, bob, "debian", "12", "x86_64", "", 4 * time.Hour, 18 * time.Hour}, // expires in 13h
	}
	ids := make([]string, len(specs))
	for i, s := range specs {
		created := now.Add(-s.endorsed - time.Minute)
		entry := mptest.Entry(t, mptest.Image{Content: fmt.Sprintf("query %d", i), OS: s.os, OSVersion: s.version, OSArch: s.arch,
			Tag: s.tg, Created: created, Validity: s.validity})
		ids[i] = e.mustUpload(s.actor, mptest.Sign(t, entry, s.signer, now.Add(-s.endorsed)))
	}
	if o := e.deprecate(alice, ids[1], "old release"); !o.ok() {
		t.Fatal(o.message)
	}
	e.clock.Advance(14 * time.Hour) // ids[3] and ids[6] have expired
	at := func(d time.Duration) string { return now.Add(-d).UTC().Format(time.RFC3339) }

	tests := []struct {
		filter string
		order  string
		first  uint32
		last   uint32
		count  uint64
		want   []int
	}{
		{filter: "identifier='" + e.mustGet(anon, ids[4]).Identifier + "'", count: 1, want: []int{4}},
		{filter: "endorser/email='bob@example.org'", count: 3, want: []int{6, 5, 4}},
		{filter: "os='debian'", count: 5, want: []int{6, 5, 2, 1, 0}},
		{filter: "os='debian' and osVersion='12'", count: 4, want: []int{6, 5, 2, 0}},
		{filter: "osArch='aarch64'", count: 1, want: []int{2}},
		{filter: "tag='debian'", count: 2, want: []int{5, 0}},
		{filter: "endorsed>=" + at(7*time.Hour), count: 4, want: []int{6, 5, 4, 3}},
		{filter: "status='valid'", count: 4, want: []int{5, 4, 2, 0}},
		{filter: "status='expired'", count: 2, want: []int{6, 3}},
		{filter: "status='deprecated'", count: 1, want: []int{1}},
		{filter: "status!='valid'", count: 3, want: []int{6, 3, 1}},
		{filter: "", count: 7, want: []int{6, 5, 4, 3, 2, 1, 0}}, // status all
		{filter: "os='debian' and status='valid'", first: 1, last: 2, count: 3, want: []int{5, 2}},
		{filter: "os='debian' and status='valid'", first: 3, last: 4, count: 3, want: []int{0}},
		{filter: "status='valid'", order: "valid:asc", count: 4, want: []int{0, 2, 4, 5}},
	}
	for _, tt := range tests {
		order := []string{"endorsed:desc"}
		if tt.order != "" {
			order = []string{tt.order}
		}
		n, got, err := e.query(anon, &commonv1.CollectionQuery{Filter: tt.filter, OrderBy: order, First: tt.first, Last: tt.last})
		var want []string
		for _, i := range tt.want {
			want = append(want, ids[i])
		}
		if err != nil || n != tt.count || !equal(got, want) {
			t.Errorf("%s [%d..%d]: %d %v %v; want %d %v", tt.filter, tt.first, tt.last, n, got, err, tt.count, want)
		}
	}
	for _, bad := range []string{"status='all'", "status<'valid'"} {
		if _, _, err := e.query(anon, &commonv1.CollectionQuery{Filter: bad}); errs.CodeOf(err) != errs.BadFilter {
			t.Errorf("%s: %v, want bad_filter", bad, err)
		}
	}
	if _, _, err := e.query(anon, &commonv1.CollectionQuery{OrderBy: []string{"status"}}); errs.CodeOf(err) != errs.BadFilter {
		t.Errorf("order by status: %v, want bad_filter", err)
	}
}

// TestSettingsLegacyAndAllowList: the live settings apply to the next
// upload.
func TestSettingsApply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	xml := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "settings"}), p.outsider, time.Now())
	e.set(func(s *settings.Settings) {
		s.TrustedCAs = string(p.ca.CertPEM()) + string(p.otherCA.CertPEM())
		s.Endorsers = []string{"alice@example.org", "OLGA@example.net"}
	})
	e.mustUpload(carol, xml)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestStaleNewestRecord: a newest-entry record naming an entry that was
// never stored (its upload failed after the claim) holds uploads of that
// date back with a 409 for a while, then gives way to the stored entries.
func TestStaleNewestRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	p := testPKI()
	now := time.Now()
	entry := func() *metadata.Entry { return mptest.Entry(t, mptest.Image{Content: "stale"}) }
	e.mustUpload(alice, mptest.Sign(t, entry(), p.alice, now.Add(-2*time.Hour)))
	v2 := mptest.Sign(t, entry(), p.alice, now.Add(-time.Hour))

	// The record as a failed upload of v2 would leave it.
	ctx := t.Context()
	rid := controller.NewestID(entry().Identifier, "alice@example.org")
	d, err := e.r().newest.Get(ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(d.Body, &rec); err != nil {
		t.Fatal(err)
	}
	rec["endorsed"], rec["image"] = metadata.FormatTime(now.Add(-time.Hour)), cimi.NewID(catalog.Kind)
	body, _ := json.Marshal(rec)
	if _, err := e.r().newest.Put(ctx, rid, body, d.Revision); err != nil {
		t.Fatal(err)
	}
	if o := e.upload(alice, v2); o.code != errs.Conflict || !strings.Contains(o.message, "is being uploaded by another request") {
		t.Fatalf("while the record is fresh: %s %q", o.code, o.message)
	}
	e.clock.Advance(11 * time.Minute)
	e.mustUpload(alice, v2)
}
