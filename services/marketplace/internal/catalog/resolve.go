package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/errs"
)

// Reference is what a user gave to name an image: an identifier, an
// endorser's tag or a plain tag. Exactly one of Identifier and Tag is set.
type Reference struct {
	Identifier string
	// Email narrows a tag to one endorser ("<email>/<tag>").
	Email string
	Tag   string
}

// String writes the reference as the user gave it.
func (r Reference) String() string {
	switch {
	case r.Identifier != "":
		return r.Identifier
	case r.Email != "":
		return r.Email + "/" + r.Tag
	}
	return r.Tag
}

// ParseReference reads a reference: a 27-character identifier, else
// "<endorser e-mail>/<tag>", else a tag.
func ParseReference(s string) (Reference, error) {
	s = strings.TrimSpace(s)
	if metadata.ValidIdentifier(s) {
		return Reference{Identifier: s}, nil
	}
	if email, tag, ok := strings.Cut(s, "/"); ok {
		if !metadata.ValidEmail(email) || !metadata.ValidTag(tag) {
			return Reference{}, errs.Errorf(errs.Invalid, "%s is not an image reference: write <endorser e-mail>/<tag>, e.g. images@example.org/debian-12.", quote(s))
		}
		return Reference{Email: email, Tag: tag}, nil
	}
	if !metadata.ValidTag(s) {
		return Reference{}, errs.Errorf(errs.Invalid,
			"%s is neither a Marketplace identifier (27 characters of A-Z a-z 0-9 - _) nor an image tag (letters, digits, '.', '-', '_').", quote(s))
	}
	return Reference{Tag: s}, nil
}

// Policy says which images a caller may still use.
type Policy struct {
	AllowExpired    bool
	AllowDeprecated bool
}

// usable reports whether the policy lets im be used at now.
func (p Policy) usable(im Image, now time.Time) bool {
	return (im.Deprecated == "" || p.AllowDeprecated) && (!im.Expired(now) || p.AllowExpired)
}

// Choose picks the image a reference names among candidates: every entry
// with the reference's identifier, or every signed entry with its tag,
// that the caller may see (drafts only for their owner). found is the
// index in candidates.
//
// For an identifier, the newest (by endorsement) valid signed entry wins,
// then the caller's newest valid draft, then what the policy allows in the
// same order; nothing usable is not_found when there is no candidate and
// invalid otherwise, saying why the newest cannot be used ("Image X
// expired on ...", "Image X is deprecated: ...").
//
// For a tag, the newest valid entry with that tag (of the endorser, when
// the reference names one) wins, then the newest the policy allows. A
// plain tag must be used by one endorser only among those entries:
// several are a conflict naming them.
func Choose(ref Reference, candidates []Image, now time.Time, p Policy) (Image, error) {
	if ref.Identifier != "" {
		return chooseIdentifier(ref.Identifier, candidates, now, p)
	}
	return chooseTag(ref, candidates, now, p)
}

func chooseIdentifier(id string, candidates []Image, now time.Time, p Policy) (Image, error) {
	var signed, drafts []Image
	for _, im := range candidates {
		if im.Identifier != id {
			continue
		}
		if im.Draft {
			drafts = append(drafts, im)
		} else {
			signed = append(signed, im)
		}
	}
	if len(signed)+len(drafts) == 0 {
		return Image{}, errs.Errorf(errs.NotFound, "No Marketplace entry has identifier %s.", id)
	}
	newestFirst(signed)
	newestFirst(drafts)
	strict := Policy{}
	for _, pass := range []Policy{strict, p} {
		for _, set := range [][]Image{signed, drafts} {
			for _, im := range set {
				if pass.usable(im, now) {
					return im, nil
				}
			}
		}
	}
	if len(signed) > 0 {
		return Image{}, unusable(signed[0])
	}
	return Image{}, unusable(drafts[0])
}

// unusable explains why an image may not be used.
func unusable(im Image) error {
	if im.Deprecated != "" {
		return errs.Errorf(errs.Invalid, "Image %s is deprecated: %s", im.Identifier, sentence(im.Deprecated))
	}
	if im.Draft {
		return errs.Errorf(errs.Invalid, "Image %s is a draft that expired on %s: extend its valid date, or sign and upload it.", im.Identifier, im.Valid)
	}
	return errs.Errorf(errs.Invalid, "Image %s expired on %s.", im.Identifier, im.Valid)
}

func chooseTag(ref Reference, candidates []Image, now time.Time, p Policy) (Image, error) {
	var tagged []Image
	for _, im := range candidates {
		if im.Draft || im.Tag != ref.Tag || (ref.Email != "" && !strings.EqualFold(im.Endorser.Email, ref.Email)) {
			continue
		}
		tagged = append(tagged, im)
	}
	newestFirst(tagged)
	for _, pass := range []Policy{{}, p} {
		var usable []Image
		for _, im := range tagged {
			if pass.usable(im, now) {
				usable = append(usable, im)
			}
		}
		if len(usable) == 0 {
			continue
		}
		if ref.Email == "" {
			if endorsers := endorsersOf(usable); len(endorsers) > 1 {
				return Image{}, errs.Errorf(errs.Conflict, "The tag %s is used by several endorsers (%s): name one, as in %s/%s.",
					ref.Tag, strings.Join(endorsers, ", "), endorsers[0], ref.Tag)
			}
		}
		return usable[0], nil
	}
	whose := ""
	if ref.Email != "" {
		whose = " of " + ref.Email
	}
	if len(tagged) == 0 {
		return Image{}, errs.Errorf(errs.NotFound, "No valid image%s has tag %s.", whose, ref.Tag)
	}
	return Image{}, errs.Errorf(errs.NotFound, "No valid image%s has tag %s: %s", whose, ref.Tag, errs.MessageOf(unusable(tagged[0])))
}

// endorsersOf lists the distinct endorser e-mails of images, sorted.
func endorsersOf(images []Image) []string {
	var out []string
	for _, im := range images {
		e := strings.ToLower(im.Endorser.Email)
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// newestFirst orders images by endorsement date, newest first; drafts,
// which have none, by validity.
func newestFirst(images []Image) {
	slices.SortStableFunc(images, func(a, b Image) int {
		if c := cmp.Compare(b.Endorsed, a.Endorsed); c != 0 {
			return c
		}
		return cmp.Compare(b.Valid, a.Valid)
	})
}

// sentence ends a reason with a full stop unless it has one.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}

// quote quotes user text for a message, shortened.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}
