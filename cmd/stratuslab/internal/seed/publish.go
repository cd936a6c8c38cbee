package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"stratuslab.dev/client/sdk"
)

// Defaults of Publisher.
const (
	DefaultPatience = 3 * time.Minute
	DefaultPause    = 250 * time.Millisecond
)

// Publisher uploads a catalogue's entries through the gateway.
type Publisher struct {
	// Reader reads the catalogue; entries are public, so it needs no
	// credentials.
	Reader *sdk.Client
	// Uploader uploads and deprecates entries: the administrator, who
	// owns the seeded entries.
	Uploader *sdk.Client
	// Log receives what was done; nil: discarded.
	Log *slog.Logger
	// Patience is how long a step is tried again while the services
	// start (the gateway not answering yet, the marketplace or
	// authentication not ready). Default DefaultPatience.
	Patience time.Duration
	// Pause is the wait between two tries. Default DefaultPause.
	Pause time.Duration
}

// Publish uploads every entry of cat that the catalogue does not hold
// yet, and deprecates the endorser's older images under the same tag that
// an upload replaces. It goes on after an entry fails, and returns the
// failures together.
func (p Publisher) Publish(ctx context.Context, cat *Catalogue) error {
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Patience == 0 {
		p.Patience = DefaultPatience
	}
	if p.Pause == 0 {
		p.Pause = DefaultPause
	}
	var failed []error
	for _, e := range cat.Entries {
		if err := p.publish(ctx, cat.Endorser, e); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, fmt.Errorf("seed: %s (%s): %w", e.File, e.Identifier, err))
		}
	}
	return errors.Join(failed...)
}

// stored is what Publish reads of a stored entry.
type stored struct {
	ID         string   `json:"id"`
	Identifier string   `json:"identifier"`
	Status     string   `json:"status"`
	Locations  []string `json:"locations"`
	Deprecated string   `json:"deprecated"`
	Endorsed   string   `json:"endorsed"`
}

// decide says whether the catalogue needs e given the newest stored entry
// of its identifier by the same endorser (nil: none), and why.
func decide(newest *stored, location string) (upload bool, why string) {
	switch {
	case newest == nil:
		return true, "not in the catalogue"
	case newest.Status == "deprecated":
		// Someone withdrew it on purpose: a restart must not bring it
		// back.
		return false, "deprecated: " + newest.Deprecated
	case newest.Status == "expired":
		return true, "the entry in the catalogue expired"
	case !slices.Contains(newest.Locations, location):
		return true, "the entry in the catalogue names another location"
	}
	return false, "already in the catalogue"
}

func (p Publisher) publish(ctx context.Context, endorser string, e Entry) error {
	log := p.Log.With("identifier", e.Identifier, "tag", e.Tag, "endorser", endorser)
	var newest *stored
	err := p.retry(ctx, "read the catalogue", func() error {
		_, found, err := sdk.QueryAs[stored](ctx, p.Reader, "MachineImage", sdk.Query{
			Filter:  fmt.Sprintf("identifier='%s' and endorser/email='%s' and draft=false", e.Identifier, endorser),
			OrderBy: "endorsed:desc", First: 1, Last: 1,
		})
		if err == nil && len(found) > 0 {
			newest = &found[0]
		}
		return err
	})
	if err != nil {
		return err
	}
	upload, why := decide(newest, e.Location)
	if !upload {
		log.Info("seed catalogue: image already published", "why", why, "location", e.Location)
		return nil
	}
	var res sdk.Result
	err = p.retry(ctx, "upload the entry", func() error {
		var err error
		res, err = p.Uploader.Create(ctx, "MachineImage", map[string]any{"metadata": string(e.XML)})
		if err == nil && !res.Done && res.JobID != "" {
			_, err = p.Uploader.WaitJob(ctx, res.JobID)
		}
		return err
	})
	if conflict(err) {
		// Uploaded by a start that stopped before it could say so, or
		// by a try whose answer was lost.
		log.Info("seed catalogue: image already published", "why", "the same entry was uploaded before", "location", e.Location)
		return nil
	} else if err != nil {
		return err
	}
	log.Info("seed catalogue: image published", "why", why, "id", res.ID, "location", e.Location)
	if e.Tag != "" {
		p.replace(ctx, log, endorser, e)
	}
	return nil
}

// replace deprecates the endorser's other valid images with e's tag: a
// rebuilt image file replaces the one they describe, whose bytes are gone.
func (p Publisher) replace(ctx context.Context, log *slog.Logger, endorser string, e Entry) {
	var old []stored
	err := p.retry(ctx, "find the images it replaces", func() error {
		var err error
		_, old, err = sdk.QueryAs[stored](ctx, p.Reader, "MachineImage", sdk.Query{
			Filter: fmt.Sprintf("endorser/email='%s' and tag='%s' and status='valid' and identifier!='%s'", endorser, e.Tag, e.Identifier),
			Last:   100,
		})
		return err
	})
	if err != nil {
		log.Warn("seed catalogue: cannot find the images this one replaces", "error", err)
		return
	}
	reason := fmt.Sprintf("Replaced by %s: the site's image %s was rebuilt.", e.Identifier, e.File)
	for _, o := range old {
		if _, err := p.Uploader.Action(ctx, o.ID, "deprecate", map[string]any{"reason": reason}); err != nil && !conflict(err) {
			log.Warn("seed catalogue: cannot deprecate a replaced image", "replaced", o.Identifier, "error", err)
			continue
		}
		log.Info("seed catalogue: replaced image deprecated", "replaced", o.Identifier)
	}
}

// retry runs fn until it succeeds, fails for good, or p.Patience has
// passed: while the cloud starts, the gateway may not answer yet, and the
// marketplace and authentication may not be ready.
func (p Publisher) retry(ctx context.Context, what string, fn func() error) error {
	deadline := time.Now().Add(p.Patience)
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still failing after %s: %w", what, p.Patience, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.Pause):
		}
	}
}

// transient reports whether err may go away as the cloud finishes
// starting: no answer, a server error, or credentials refused before
// authentication has loaded the users.
func transient(err error) bool {
	var ne *sdk.NetError
	if errors.As(err, &ne) {
		return true
	}
	var e *sdk.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusUnauthorized || e.Status == http.StatusTooManyRequests
	}
	return false
}

// conflict reports whether err is the marketplace answering 409: the
// entry is there already, or the image deprecated already.
func conflict(err error) bool {
	var je *sdk.JobError
	return sdk.IsCode(err, "conflict") || (errors.As(err, &je) && je.Job.ReturnCode == http.StatusConflict)
}
