package catalog_test

import (
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

const (
	idA = "BEE8-MMAw-Lk_IgsEExAy3d9R8h"
	idB = "Hqfgfdtl2xSO64ffzpfxXRIBylX"
)

func TestParseReference(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want catalog.Reference
		code errs.Code
	}{
		{idA, catalog.Reference{Identifier: idA}, ""},
		{" " + idA + " ", catalog.Reference{Identifier: idA}, ""},
		{"debian-12", catalog.Reference{Tag: "debian-12"}, ""},
		{"images@example.org/debian-12", catalog.Reference{Email: "images@example.org", Tag: "debian-12"}, ""},
		{"images@example.org/" + idA, catalog.Reference{}, errs.Invalid},
		{"not an email/debian", catalog.Reference{}, errs.Invalid},
		{"debian 12", catalog.Reference{}, errs.Invalid},
		{"", catalog.Reference{}, errs.Invalid},
		{"0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", catalog.Reference{}, errs.Invalid},
	} {
		got, err := catalog.ParseReference(tt.in)
		if errs.CodeOf(err) != tt.code || got != tt.want {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v, code %q", tt.in, got, err, tt.want, tt.code)
		}
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return metadata.FormatTime(now.Add(d)) }
	img := func(id, email, tag, endorsed, valid, deprecated string) catalog.Image {
		return catalog.Image{ID: "MachineImage/" + id + "-" + email + "-" + endorsed, Identifier: id,
			Endorser: catalog.Endorser{Email: email}, Tag: tag, Endorsed: endorsed, Valid: valid, Deprecated: deprecated}
	}
	draft := func(id, valid string) catalog.Image {
		return catalog.Image{ID: "MachineImage/draft-" + id + "-" + valid, Identifier: id, Draft: true, Valid: valid,
			Endorser: catalog.Endorser{Email: "author@example.org"}}
	}
	old, recent, newest := at(-72*time.Hour), at(-48*time.Hour), at(-24*time.Hour)
	future, past := at(30*24*time.Hour), at(-time.Hour)
	allowAll := catalog.Policy{AllowExpired: true, AllowDeprecated: true}

	tests := []struct {
		name       string
		ref        string
		candidates []catalog.Image
		policy     catalog.Policy
		want       string    // ID of the chosen image
		code       errs.Code // when refused
		msg        string    // part of the refusal
	}{
		{name: "no entry", ref: idA, code: errs.NotFound, msg: "No Marketplace entry has identifier " + idA + "."},
		{name: "newest valid of an identifier", ref: idA, candidates: []catalog.Image{
			img(idA, "a@x.org", "", old, future, ""), img(idA, "a@x.org", "", newest, future, ""), img(idA, "b@y.org", "", recent, future, ""),
		}, want: img(idA, "a@x.org", "", newest, future, "").ID},
		{name: "newest expired: an older valid one", ref: idA, candidates: []catalog.Image{
			img(idA, "a@x.org", "", old, future, ""), img(idA, "b@y.org", "", newest, past, ""),
		}, want: img(idA, "a@x.org", "", old, future, "").ID},
		{name: "only expired", ref: idA, candidates: []catalog.Image{img(idA, "a@x.org", "", newest, past, "")},
			code: errs.Invalid, msg: "Image " + idA + " expired on " + past + "."},
		{name: "only expired, allowed", ref: idA, candidates: []catalog.Image{img(idA, "a@x.org", "", newest, past, "")},
			policy: catalog.Policy{AllowExpired: true}, want: img(idA, "a@x.org", "", newest, past, "").ID},
		{name: "deprecated", ref: idA, candidates: []catalog.Image{img(idA, "a@x.org", "", newest, future, "replaced by 2.0")},
			code: errs.Invalid, msg: "Image " + idA + " is deprecated: replaced by 2.0."},
		{name: "deprecated, allowed", ref: idA, candidates: []catalog.Image{img(idA, "a@x.org", "", newest, future, "replaced by 2.0")},
			policy: catalog.Policy{AllowDeprecated: true}, want: img(idA, "a@x.org", "", newest, future, "replaced by 2.0").ID},
		{name: "deprecated and expired, only deprecated allowed", ref: idA, candidates: []catalog.Image{img(idA, "a@x.org", "", newest, past, "old")},
			policy: catalog.Policy{AllowDeprecated: true}, code: errs.Invalid, msg: "deprecated: old."},
		{name: "the owner's draft", ref: idA, candidates: []catalog.Image{draft(idA, future)}, want: draft(idA, future).ID},
		{name: "a valid signed entry before a draft", ref: idA, candidates: []catalog.Image{draft(idA, future), img(idA, "a@x.org", "", old, future, "")},
			want: img(idA, "a@x.org", "", old, future, "").ID},
		{name: "an expired draft", ref: idA, candidates: []catalog.Image{draft(idA, past)}, code: errs.Invalid, msg: "is a draft that expired"},
		{name: "tag: newest valid", ref: "debian", candidates: []catalog.Image{
			img(idA, "a@x.org", "debian", old, future, ""), img(idB, "a@x.org", "debian", newest, future, ""),
		}, want: img(idB, "a@x.org", "debian", newest, future, "").ID},
		{name: "tag: a deprecated newest is skipped", ref: "debian", candidates: []catalog.Image{
			img(idA, "a@x.org", "debian", old, future, ""), img(idB, "a@x.org", "debian", newest, future, "broken"),
		}, want: img(idA, "a@x.org", "debian", old, future, "").ID},
		{name: "tag: ambiguous", ref: "debian", candidates: []catalog.Image{
			img(idA, "a@x.org", "debian", old, future, ""), img(idB, "B@Y.org", "debian", newest, future, ""),
		}, code: errs.Conflict, msg: "The tag debian is used by several endorsers (a@x.org, b@y.org): name one, as in a@x.org/debian."},
		{name: "tag: an expired entry of another endorser does not make it ambiguous", ref: "debian", candidates: []catalog.Image{
			img(idA, "a@x.org", "debian", old, future, ""), img(idB, "b@y.org", "debian", newest, past, ""),
		}, want: img(idA, "a@x.org", "debian", old, future, "").ID},
		{name: "endorser's tag", ref: "b@y.org/debian", candidates: []catalog.Image{
			img(idA, "a@x.org", "debian", newest, future, ""), img(idB, "B@y.org", "debian", old, future, ""),
		}, want: img(idB, "B@y.org", "debian", old, future, "").ID},
		{name: "endorser's tag: none", ref: "c@z.org/debian", candidates: []catalog.Image{img(idA, "a@x.org", "debian", newest, future, "")},
			code: errs.NotFound, msg: "No valid image of c@z.org has tag debian."},
		{name: "tag: only deprecated", ref: "debian", candidates: []catalog.Image{img(idA, "a@x.org", "debian", newest, future, "broken")},
			code: errs.NotFound, msg: "No valid image has tag debian: Image " + idA + " is deprecated: broken."},
		{name: "tag: only deprecated, allowed", ref: "debian", candidates: []catalog.Image{img(idA, "a@x.org", "debian", newest, future, "broken")},
			policy: allowAll, want: img(idA, "a@x.org", "debian", newest, future, "broken").ID},
		{name: "tag: unknown", ref: "ubuntu", candidates: []catalog.Image{img(idA, "a@x.org", "debian", newest, future, "")},
			code: errs.NotFound, msg: "No valid image has tag ubuntu."},
		{name: "tag: drafts never", ref: "debian", candidates: []catalog.Image{{Identifier: idA, Tag: "debian", Draft: true, Valid: future}},
			code: errs.NotFound, msg: "No valid image has tag debian."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref, err := catalog.ParseReference(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := catalog.Choose(ref, tt.candidates, now, tt.policy)
			if tt.code != "" {
				if errs.CodeOf(err) != tt.code || !strings.Contains(errs.MessageOf(err), tt.msg) {
					t.Fatalf("got %+v, %v; want code %s with %q", got, err, tt.code, tt.msg)
				}
				return
			}
			if err != nil || got.ID != tt.want {
				t.Fatalf("got %q, %v; want %q", got.ID, err, tt.want)
			}
		})
	}
}
