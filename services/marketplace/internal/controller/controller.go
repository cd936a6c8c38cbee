// Package controller is the marketplace's entry controller: the rules of
// the CIMI MachineImage kind (upload of a signed entry as a create, the
// deprecate action, draft edits, deletes), the record of the newest entry
// of each identifier and endorser that makes "newer than stored" hold
// under concurrent uploads, the create_draft command vmctl sends after a
// capture, and the resolve query that turns an identifier or a tag into
// one entry.
package controller

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/settings"
)

// NewestKind is the collection of newest-entry records, one per
// identifier and endorser (see newest.go).
const NewestKind = "MachineImageNewest"

// Config is what a Controller works with.
type Config struct {
	// Images holds the MachineImage documents; Newest the newest-entry
	// records.
	Images, Newest store.Collection
	Bus            *bus.Bus
	// Settings returns the live ServiceConfiguration/marketplace.
	Settings func() settings.Settings
	Log      *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// StaleAfter is how long a newest-entry record may name an entry that
	// does not exist before it is rebuilt from the stored entries (the
	// upload that wrote it failed after writing it); zero: 10 minutes.
	StaleAfter time.Duration
}

// Controller carries out every change of a Marketplace entry.
type Controller struct {
	cfg    Config
	images catalog.Collection
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	pem  string         // the trusted-cas last read
	pool *x509.CertPool // read from pem
}

// New returns the controller of cfg.
func New(cfg Config) (*Controller, error) {
	if cfg.Images == nil || cfg.Newest == nil || cfg.Bus == nil {
		return nil, errors.New("marketplace: the controller needs its collections and a bus")
	}
	if cfg.Settings == nil {
		cfg.Settings = settings.Defaults
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 10 * time.Minute
	}
	return &Controller{
		cfg: cfg, log: cfg.Log, now: cfg.Now,
		images: catalog.Collection{Collection: cfg.Images, Now: cfg.Now},
	}, nil
}

// trusted returns the trusted CAs of the settings, read once per change
// of the PEM bundle rather than once per upload (a grid bundle holds a
// hundred certificates).
func (c *Controller) trusted(pem string) (*x509.CertPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pem == c.pem && (c.pool != nil || pem == "") {
		return c.pool, nil
	}
	roots, err := settings.Settings{TrustedCAs: pem}.Roots()
	if err != nil {
		return nil, err
	}
	c.pem, c.pool = pem, roots
	return roots, nil
}

// admin is the identity the controller reads as when it must see every
// entry, drafts included, and the system's when a command has no actor.
var admin = catalog.Admin

// pageSize bounds the documents one query of the controller reads.
const pageSize = 500

// list returns every entry matching filter that who may see.
func (c *Controller) list(ctx context.Context, who cimi.Identity, filter cimi.Expr) ([]store.Document, error) {
	var out []store.Document
	for first := 1; ; first += pageSize {
		p, err := c.images.Query(ctx, cimi.Query{Filter: filter, First: first, Last: first + pageSize - 1}, who)
		if err != nil {
			return nil, fmt.Errorf("marketplace: list entries: %w", err)
		}
		out = append(out, p.Docs...)
		if len(p.Docs) < pageSize {
			return out, nil
		}
	}
}

// announce publishes the ResourceChanged event of a document the
// controller wrote itself (after is nil for a delete).
func (c *Controller) announce(ctx context.Context, event, id string, after map[string]any, msgID string) error {
	ev := &cimiv1.ResourceChanged{Kind: catalog.Kind, Id: id, At: timestamppb.New(c.now())}
	if after != nil {
		data, err := encode(c.view(admin, withoutHidden(after)))
		if err != nil {
			return err
		}
		ev.Json = data
	}
	subj := subject.Event(subject.Marketplace, subject.ResourceMachineImage, event)
	if err := c.cfg.Bus.Publish(ctx, subj, ev, msgID); err != nil {
		return fmt.Errorf("marketplace: announce the change of %s: %w", id, err)
	}
	return nil
}

// encode writes a document as the store keeps it: JSON without HTML
// escaping.
func encode(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("marketplace: encode a document: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// decode reads a stored document, numbers as json.Number.
func decode(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, fmt.Errorf("marketplace: decode a document: %v", err)
	}
	return doc, nil
}

// withoutHidden drops the resource framework's own attributes ("_...").
func withoutHidden(doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if len(k) == 0 || k[0] != '_' {
			out[k] = v
		}
	}
	return out
}

// timestamp formats a write time as the resource framework stores it.
func timestamp(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}
