package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/store/memindex"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

// statusDocs are documents in every combination of the attributes a
// status depends on, around the instant now.
func statusDocs(now time.Time) []map[string]any {
	valids := []any{nil, metadata.FormatTime(now.Add(-time.Hour)), metadata.FormatTime(now), metadata.FormatTime(now.Add(time.Second)), metadata.FormatTime(now.AddDate(1, 0, 0))}
	var out []map[string]any
	for i, valid := range valids {
		for _, deprecated := range []any{nil, "replaced by 2.0"} {
			for _, draft := range []bool{false, true} {
				doc := map[string]any{"id": fmt.Sprintf("MachineImage/%d-%v-%v", i, deprecated != nil, draft), "draft": draft}
				if valid != nil {
					doc["valid"] = valid
				}
				if deprecated != nil && !draft {
					doc["deprecated"] = deprecated
				}
				out = append(out, doc)
			}
		}
	}
	return out
}

// TestStatusFilterMatchesStatus checks that the filter of each status
// selects exactly the documents whose computed status it is, and its
// negation exactly the others, as the store's evaluator reads them.
func TestStatusFilterMatchesStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, doc := range statusDocs(now) {
		im, err := catalog.FromMap(doc)
		if err != nil {
			t.Fatal(err)
		}
		want := im.Status(now)
		hits := 0
		for _, s := range catalog.Statuses {
			f, err := catalog.StatusFilter(s, now, false)
			if err != nil {
				t.Fatal(err)
			}
			nf, err := catalog.StatusFilter(s, now, true)
			if err != nil {
				t.Fatal(err)
			}
			got, gotNot := memindex.Match(f, doc), memindex.Match(nf, doc)
			if got != (s == want) {
				t.Errorf("%v: status=%s matches %v, but the status is %s", doc, s, got, want)
			}
			if gotNot == got {
				t.Errorf("%v: status!=%s matches %v, as status=%s does", doc, s, gotNot, s)
			}
			if got {
				hits++
			}
		}
		if hits != 1 {
			t.Errorf("%v: %d status filters match, want exactly 1", doc, hits)
		}
	}
	if _, err := catalog.StatusFilter("all", now, false); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("status all: %v, want ErrInvalid", err)
	}
}

// TestCollectionRewritesStatus queries a real embedded store through the
// Collection wrapper with status filters as users write them.
func TestCollectionRewritesStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testkit.JetStream(t)
	st, err := embedded.Open(ctx, js, "marketplace")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	raw, err := st.Collection(ctx, catalog.Kind)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	coll := catalog.Collection{Collection: raw, Now: func() time.Time { return now }}
	byStatus := map[string][]string{}
	for i, doc := range statusDocs(now) {
		doc["os"] = []string{"debian", "centos"}[i%2]
		doc["acl"] = map[string]any{"owner": map[string]any{"principal": cimi.RoleAdmin, "type": "ROLE"}}
		body, _ := json.Marshal(doc)
		id := doc["id"].(string)
		if _, err := raw.Create(ctx, id, body); err != nil {
			t.Fatal(err)
		}
		im, _ := catalog.FromMap(doc)
		if doc["os"] == "debian" {
			byStatus[im.Status(now)] = append(byStatus[im.Status(now)], id)
		}
	}
	admin := cimi.Identity{Roles: []string{cimi.RoleAdmin}}
	for _, s := range catalog.Statuses {
		q, err := cimi.ParseQuery(url.Values{"$filter": {"os='debian' and status='" + s + "'"}, "$orderby": {"id"}})
		if err != nil {
			t.Fatal(err)
		}
		page, err := coll.Query(ctx, q, admin)
		if err != nil {
			t.Fatalf("status %s: %v", s, err)
		}
		var got []string
		for _, d := range page.Docs {
			got = append(got, d.ID)
		}
		want := byStatus[s]
		slices.Sort(want)
		if !slices.Equal(got, want) || page.Count != len(want) {
			t.Errorf("os='debian' and status='%s': %v (count %d), want %v", s, got, page.Count, want)
		}
	}
	for _, bad := range []url.Values{
		{"$filter": {"status='all'"}},
		{"$filter": {"status>'valid'"}},
		{"$filter": {"status=1"}},
		{"$orderby": {"status"}},
	} {
		q, err := cimi.ParseQuery(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := coll.Query(ctx, q, admin); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestPdiskLocation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"pdisk:0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", "0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", true},
		{"pdisk:0B6E2F4C-3D6A-4A39-9D55-0C1F1C6F2A10", "0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", true},
		{"pdisk:0b6e2f4c3d6a4a399d550c1f1c6f2a10", "", false},
		{"pdisk:host:8445:0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", "", false},
		{"https://example.org/x.img", "", false},
	} {
		got, ok := catalog.PdiskLocation(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("PdiskLocation(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDraftIDIsStable(t *testing.T) {
	t.Parallel()
	a := catalog.DraftID("0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10")
	if a != catalog.DraftID("0B6E2F4C-3D6A-4A39-9D55-0C1F1C6F2A10") {
		t.Error("the draft id depends on the case of the volume uuid")
	}
	if a == catalog.DraftID("1b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10") {
		t.Error("two volumes give the same draft id")
	}
	if kind, local, err := cimi.SplitID(a); err != nil || kind != catalog.Kind || len(local) != 36 {
		t.Errorf("draft id %q is not MachineImage/<uuid>", a)
	}
}

// TestVisibleMatchesACL: the visibility filter selects exactly the
// documents the ACL lets each identity view.
func TestVisibleMatchesACL(t *testing.T) {
	t.Parallel()
	acls := map[string]cimi.ACL{
		"alice's entry": catalog.SignedACL("alice"), "bob's entry": catalog.SignedACL("bob"),
		"system's entry": catalog.SignedACL(""), "alice's draft": catalog.DraftACL("alice"), "bob's draft": catalog.DraftACL("bob"),
	}
	who := []cimi.Identity{{}, {User: "alice", Roles: []string{cimi.RoleUser}}, {User: "bob"}, {User: "carol"},
		{User: "root", Roles: []string{cimi.RoleAdmin}}, {User: "::ADMIN"}}
	for name, acl := range acls {
		data, _ := json.Marshal(map[string]any{"acl": acl, "draft": strings.HasSuffix(name, "draft")})
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for _, w := range who {
			if got, want := memindex.Match(catalog.Visible(w), doc), acl.Allows(w, cimi.View); got != want {
				t.Errorf("%s as %+v: the filter says %v, the ACL %v", name, w, got, want)
			}
		}
	}
}
