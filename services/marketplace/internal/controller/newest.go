package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/upload"
)

// newest is the record of the newest entry of one identifier and endorser.
// An upload claims it with a compare-and-set before its document is
// stored, so that of two uploads of the same identifier and endorser only
// one can be the newest: the other sees the winner and is refused (older,
// or the very same entry) — "newer than stored" holds whatever the timing,
// across replicas.
type newest struct {
	ID         string   `json:"id"`
	Identifier string   `json:"identifier"`
	Email      string   `json:"email"` // lower case
	Endorsed   string   `json:"endorsed"`
	Image      string   `json:"image"` // the MachineImage id
	At         string   `json:"at"`    // when the record was written
	ACL        cimi.ACL `json:"acl"`
}

// NewestID is the id of the newest-entry record of an identifier and
// endorser e-mail: a name-based UUID, so every replica finds the same one.
func NewestID(identifier, email string) string {
	key := identifier + "/" + strings.ToLower(email)
	return NewestKind + "/" + uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratuslab:marketplace:newest:"+key)).String()
}

// claimAttempts bounds the compare-and-set rounds of one claim.
const claimAttempts = 50

// claim makes the entry im, to be stored as id, the newest of its
// identifier and endorser, or refuses it: 400 (newer-than-stored) when a
// newer or equally new entry is stored, 409 (already-uploaded) when the
// very same entry is. A claim by the same id (a redelivered command) is
// granted again.
func (c *Controller) claim(ctx context.Context, id string, im catalog.Image) error {
	email := strings.ToLower(im.Endorser.Email)
	rid := NewestID(im.Identifier, email)
	mine := newest{ID: rid, Identifier: im.Identifier, Email: email, Endorsed: im.Endorsed, Image: id,
		ACL: cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}}
	for range claimAttempts {
		mine.At = timestamp(c.now())
		body, err := json.Marshal(mine)
		if err != nil {
			return fmt.Errorf("marketplace: encode %s: %w", rid, err)
		}
		d, err := c.cfg.Newest.Get(ctx, rid)
		if errors.Is(err, store.ErrNotFound) {
			// No record: the first upload, or one after an administrator
			// deleted the newest entry. The stored entries decide.
			if err := c.olderThanStored(ctx, id, im, "", ""); err != nil {
				return err
			}
			if _, err := c.cfg.Newest.Create(ctx, rid, body); errors.Is(err, store.ErrExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("marketplace: record the newest entry %s: %w", rid, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("marketplace: read %s: %w", rid, err)
		}
		var cur newest
		if err := json.Unmarshal(d.Body, &cur); err != nil {
			return fmt.Errorf("marketplace: decode %s: %w", rid, err)
		}
		if cur.Image == id {
			return nil
		}
		if im.Endorsed > cur.Endorsed {
			if _, err := c.cfg.Newest.Put(ctx, rid, body, d.Revision); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return fmt.Errorf("marketplace: record the newest entry %s: %w", rid, err)
			}
			return nil
		}
		exists, err := c.exists(ctx, cur.Image)
		if err != nil {
			return err
		}
		if !exists && c.stale(cur) {
			// The upload that wrote the record never stored its entry:
			// forget the record and let the stored entries decide.
			if err := c.cfg.Newest.Delete(ctx, rid, d.Revision); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("marketplace: drop the stale record %s: %w", rid, err)
			}
			continue
		}
		if im.Endorsed == cur.Endorsed && !exists {
			return upload.Refuse(errs.Conflict, metadata.RuleAlreadyUploaded, "an entry of %s endorsed by %s at %s is being uploaded by another request, as %s", im.Identifier, im.Endorser.Email, im.Endorsed, cur.Image)
		}
		return c.olderThanStored(ctx, id, im, cur.Endorsed, cur.Image)
	}
	return fmt.Errorf("marketplace: %s: still contended after %d attempts", rid, claimAttempts)
}

// olderThanStored refuses im, to be stored as id, when a stored entry of
// its identifier and endorser is as new or newer: 409 when one is the
// very same entry (same endorsement date and content), 400 naming the
// newest otherwise. known, when not empty,
// is the endorsement date of a newer entry already known (of document
// knownID).
func (c *Controller) olderThanStored(ctx context.Context, id string, im catalog.Image, known, knownID string) error {
	docs, err := c.list(ctx, admin, catalog.And(catalog.Eq("identifier", im.Identifier), catalog.Signed()))
	if err != nil {
		return err
	}
	newestDate, newestID := known, knownID
	for _, d := range docs {
		other, err := catalog.Decode(d.Body)
		if err != nil || d.ID == id || other.Draft || !strings.EqualFold(other.Endorser.Email, im.Endorser.Email) {
			continue
		}
		if other.Endorsed == im.Endorsed && sameEntry(other, im) {
			return upload.Refuse(errs.Conflict, metadata.RuleAlreadyUploaded, "this entry (%s, endorsed by %s at %s) is stored already as %s", im.Identifier, im.Endorser.Email, im.Endorsed, d.ID)
		}
		if other.Endorsed > newestDate {
			newestDate, newestID = other.Endorsed, d.ID
		}
	}
	if newestDate != "" && newestDate >= im.Endorsed {
		return upload.Refuse(errs.Invalid, metadata.RuleNewerThanStored,
			"%s has a newer entry from %s, endorsed at %s (%s); this one was endorsed at %s: an entry must be newer than the stored ones of its identifier and endorser",
			im.Identifier, im.Endorser.Email, newestDate, newestID, im.Endorsed)
	}
	return nil
}

// exists reports whether a MachineImage document is stored.
func (c *Controller) exists(ctx context.Context, id string) (bool, error) {
	_, err := c.cfg.Images.Get(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("marketplace: read %s: %w", id, err)
}

// stale reports whether a record is older than StaleAfter.
func (c *Controller) stale(r newest) bool {
	at, err := time.Parse(time.RFC3339Nano, r.At)
	return err != nil || c.now().Sub(at) > c.cfg.StaleAfter
}

// forget drops the record of an identifier and endorser when it names the
// entry id, which an administrator is deleting: the next upload then
// decides from the entries left.
func (c *Controller) forget(ctx context.Context, im catalog.Image, id string) error {
	rid := NewestID(im.Identifier, im.Endorser.Email)
	d, err := c.cfg.Newest.Get(ctx, rid)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("marketplace: read %s: %w", rid, err)
	}
	var cur newest
	if json.Unmarshal(d.Body, &cur) != nil || cur.Image != id {
		return nil // not the record of id: not ours to drop
	}
	if err := c.cfg.Newest.Delete(ctx, rid, d.Revision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("marketplace: drop %s: %w", rid, err)
	}
	return nil
}

// sameEntry reports whether two images are the same entry: the same
// content, whatever the bytes of their documents (white space, signature
// encoding) and whoever uploaded them.
func sameEntry(a, b catalog.Image) bool {
	a.ID, b.ID = "", ""
	a.XML, b.XML = "", ""
	a.DeprecatedBy, b.DeprecatedBy = "", ""
	a.DeprecatedAt, b.DeprecatedAt = "", ""
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
