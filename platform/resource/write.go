package resource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	"stratuslab.dev/proto/subject"
)

// Bounds of the retries of a write that lost a race with another writer
// and that the command did not pin to a revision.
const (
	writeAttempts = 20
	writePause    = 5 * time.Millisecond
)

// Handle is the bus.Handler of the provider's commands (see Subjects); a
// service may dispatch to it from its own handler. The command's actor is
// who writes; a command without one comes from the system itself, which
// may do everything. Refusals (bad body, rights, conflicts) are permanent
// failures with a stable code; other errors are retried by the bus.
func (p *Provider) Handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	res, err := p.handle(ctx, cmd)
	return res, bus.Settle(err)
}

func (p *Provider) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	c, err := subject.ParseCommand(cmd.Subject())
	if err != nil || c.Service != p.service || c.HostID != "" {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The %s service has no command %s.", p.service, quoteKind(cmd.Subject()))
	}
	k := p.tokens[c.Resource]
	if k == nil || k.ReadOnly {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The %s service accepts no CIMI writes on %s.", p.service, quoteKind(c.Resource))
	}
	var rc cimiv1.ResourceCommand
	if err := cmd.Decode(&rc); err != nil {
		return bus.Result{}, err
	}
	if rc.GetKind() != "" && rc.GetKind() != k.Name {
		return bus.Result{}, errs.Errorf(errs.Invalid, "A command on %s resources cannot write a %s.", k.Name, quoteKind(rc.GetKind()))
	}
	name, local, err := cimi.SplitID(rc.GetId())
	if err != nil || name != k.Name {
		return bus.Result{}, errs.Errorf(errs.Invalid, "%s is not the id of a %s: ids look like %s/<identifier>.", quoteKind(rc.GetId()), k.Name, k.Name)
	}
	if k.CheckID != nil {
		if err := k.CheckID(local); err != nil {
			return bus.Result{}, err
		}
	}
	w := &write{p: p, k: k, cmd: cmd, rc: &rc, id: rc.GetId(), who: commandIdentity(cmd.Actor())}
	switch c.Verb {
	case subject.VerbCimiCreate:
		return w.create(ctx)
	case subject.VerbCimiEdit:
		return w.edit(ctx)
	case subject.VerbCimiDelete:
		return w.delete(ctx)
	}
	name, ok := strings.CutPrefix(c.Verb, subject.VerbCimiActionPrefix)
	if !ok || (rc.GetAction() != "" && rc.GetAction() != name) {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The %s service does not understand the command %s.", p.service, quoteKind(cmd.Subject()))
	}
	return w.action(ctx, name)
}

// write is one ResourceCommand being carried out.
type write struct {
	p   *Provider
	k   *Kind
	cmd *bus.Command
	rc  *cimiv1.ResourceCommand
	id  string
	who cimi.Identity
}

// create stores a new resource under the id the sender chose. A
// redelivered create finds the document it wrote (by its command id) and
// finishes the work; another command's document is a conflict.
func (w *write) create(ctx context.Context) (bus.Result, error) {
	k, id := w.k, w.id
	if k.CanCreate == nil || !k.CanCreate(w.who) {
		return bus.Result{}, errs.Errorf(errs.Forbidden, "You may not create a %s.", k.Name)
	}
	in, err := body(k.Name, w.rc.GetBody(), false)
	if err != nil {
		return bus.Result{}, err
	}
	doc := in
	if k.New != nil {
		if doc, err = k.New(ctx, w.who, id, clone(in)); err != nil {
			return bus.Result{}, err
		}
		if doc == nil {
			return bus.Result{}, fmt.Errorf("resource: the New hook of %s returned no document", k.Name)
		}
		doc = withoutHidden(doc)
	}
	var acl cimi.ACL
	if v, ok := doc[attrACL]; ok && v != nil {
		if acl, err = parseACL(v); err != nil {
			return bus.Result{}, errs.Errorf(errs.Invalid, "The acl of the new %s is not valid: %s.", k.Name, err.Error())
		}
		// Nobody gives away at creation what they could not give away by
		// an edit, which needs ALL.
		if !acl.Allows(w.who, cimi.All) {
			return bus.Result{}, errs.Errorf(errs.Forbidden, "The acl of the new %s must leave you the ALL right: you could not manage it otherwise.", k.Name)
		}
	} else if k.DefaultACL != nil {
		acl = k.DefaultACL(w.who, id, clone(doc))
	} else {
		acl = cimi.OwnedBy(w.who)
	}
	now := timestamp(w.p.now())
	doc[attrID] = id
	doc[attrResourceURI] = cimi.ResourceURI(k.Name)
	doc[attrCreated] = now
	doc[attrUpdated] = now
	doc[attrACL] = aclValue(acl)
	doc[attrCommand] = w.cmd.ID()
	data, err := encode(doc)
	if err != nil {
		return bus.Result{}, errs.Errorf(errs.Invalid, "The new %s cannot be stored as JSON: %w.", k.Name, err)
	}
	_, err = k.Collection.Create(ctx, id, data)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrExists):
		stored, _, lerr := w.p.load(ctx, k, id, true)
		if lerr != nil {
			return bus.Result{}, fmt.Errorf("resource: %s exists but cannot be read (retrying): %v", id, lerr)
		}
		if stored[attrCommand] != w.cmd.ID() {
			return bus.Result{}, errs.Errorf(errs.Conflict, "%s already exists.", id)
		}
		doc = stored // a redelivery: finish what the first delivery began
	case errors.Is(err, store.ErrInvalid):
		return bus.Result{}, errs.Errorf(errs.Invalid, "The new %s cannot be stored: %w.", k.Name, err)
	default:
		return bus.Result{}, fmt.Errorf("resource: create %s: %w", id, err)
	}
	after := withoutHidden(doc)
	if err := w.changed(ctx, nil, after); err != nil {
		return bus.Result{}, err
	}
	return w.finish(ctx, subject.EventCreated, after, "created")
}

// edit replaces the attributes of a resource with those of the body.
func (w *write) edit(ctx context.Context) (bus.Result, error) {
	in, err := body(w.k.Name, w.rc.GetBody(), false)
	if err != nil {
		return bus.Result{}, err
	}
	return w.update(ctx, "updated", func(current map[string]any) (map[string]any, error) {
		if w.k.Change != nil {
			return w.k.Change(ctx, w.who, current, clone(in), slices.Clone(w.rc.GetSelect()))
		}
		return Replace(current, in, w.rc.GetSelect()), nil
	})
}

// action runs an action of the kind on a resource.
func (w *write) action(ctx context.Context, name string) (bus.Result, error) {
	fn := w.k.Actions[name]
	if fn == nil {
		return bus.Result{}, errs.Errorf(errs.Invalid, "A %s has no action %s%s.", w.k.Name, quoteKind(name), w.actionList())
	}
	in, err := body(w.k.Name, w.rc.GetBody(), true)
	if err != nil {
		return bus.Result{}, err
	}
	return w.update(ctx, name+" done", func(current map[string]any) (map[string]any, error) {
		return fn(ctx, w.who, current, clone(in))
	})
}

// actionList names the actions a kind accepts, for a message.
func (w *write) actionList() string {
	names := slices.Sorted(maps.Keys(w.k.Actions))
	if len(names) == 0 {
		return ": it accepts none"
	}
	return ": it accepts " + strings.Join(names, ", ")
}

// Replace is the generic edit, for Change hooks that validate its result:
// every attribute the caller may write (all, or those of selects) takes
// the body's value, or disappears when the body lacks it. Server-set
// attributes (id, resourceURI, created, updated, operations) keep their
// current values, and the acl is kept unless the body gives one. current
// is not modified.
func Replace(current, in map[string]any, selects []string) map[string]any {
	next := clone(current)
	if len(selects) == 0 {
		for a := range next {
			if !serverSet(a) && a != attrACL {
				delete(next, a)
			}
		}
		for a, v := range in {
			if !serverSet(a) {
				next[a] = v
			}
		}
		return next
	}
	for _, a := range selects {
		if serverSet(a) {
			continue
		}
		if v, ok := in[a]; ok {
			next[a] = v
		} else if a != attrACL {
			delete(next, a)
		}
	}
	return next
}

// update reads the resource, checks the caller's rights and the revision
// it read, computes the new document with fn and writes it, starting again
// when another writer got there first (unless the command named the
// revision it read). A redelivered command finds its own write done and
// only finishes.
func (w *write) update(ctx context.Context, done string, fn func(current map[string]any) (map[string]any, error)) (bus.Result, error) {
	k, id := w.k, w.id
	for attempt := 1; ; attempt++ {
		stored, rev, err := w.p.load(ctx, k, id, true)
		if err != nil {
			return bus.Result{}, err
		}
		acl := aclOf(stored)
		if !acl.Allows(w.who, cimi.View) {
			return bus.Result{}, w.refuse(done, false, notFound(id))
		}
		if stored[attrCommand] == w.cmd.ID() {
			after := withoutHidden(stored)
			if err := w.changed(ctx, after, after); err != nil {
				return bus.Result{}, err
			}
			return w.finish(ctx, subject.EventUpdated, after, done)
		}
		if !acl.Allows(w.who, cimi.Modify) {
			return bus.Result{}, w.refuse(done, true, errs.Errorf(errs.Forbidden, "You may not change %s.", id))
		}
		if err := w.checkRevision(rev); err != nil {
			return bus.Result{}, err
		}
		current := withoutHidden(stored)
		next, err := fn(clone(current))
		if err != nil {
			return bus.Result{}, err
		}
		if next == nil {
			return bus.Result{}, fmt.Errorf("resource: a hook of %s returned no document", k.Name)
		}
		next = withoutHidden(next)
		if err := w.keepServerSet(current, next, acl); err != nil {
			return bus.Result{}, err
		}
		next[attrUpdated] = timestamp(w.p.now())
		next[attrCommand] = w.cmd.ID()
		data, err := encode(next)
		if err != nil {
			return bus.Result{}, errs.Errorf(errs.Invalid, "The new state of %s cannot be stored as JSON: %w.", id, err)
		}
		_, err = k.Collection.Put(ctx, id, data, rev)
		switch {
		case err == nil:
			after := withoutHidden(next)
			if err := w.changed(ctx, current, after); err != nil {
				return bus.Result{}, err
			}
			return w.finish(ctx, subject.EventUpdated, after, done)
		case errors.Is(err, store.ErrNotFound):
			return bus.Result{}, notFound(id)
		case errors.Is(err, store.ErrInvalid):
			return bus.Result{}, errs.Errorf(errs.Invalid, "The new state of %s cannot be stored: %w.", id, err)
		case !errors.Is(err, store.ErrConflict):
			return bus.Result{}, fmt.Errorf("resource: write %s: %w", id, err)
		}
		if err := w.raced(ctx, attempt); err != nil {
			return bus.Result{}, err
		}
	}
}

// keepServerSet restores in next the attributes a write cannot choose
// (id, resourceURI, created) and checks its acl: unchanged, or changed by
// who holds ALL.
func (w *write) keepServerSet(current, next map[string]any, acl cimi.ACL) error {
	for _, a := range []string{attrResourceURI, attrCreated, attrUpdated} {
		if v, ok := current[a]; ok {
			next[a] = v
		} else {
			delete(next, a)
		}
	}
	next[attrID] = w.id
	v, ok := next[attrACL]
	if !ok || v == nil {
		next[attrACL] = current[attrACL]
		return nil
	}
	nacl, err := parseACL(v)
	if err != nil {
		return errs.Errorf(errs.Invalid, "The acl of %s is not valid: %s.", w.id, err.Error())
	}
	if !sameACL(nacl, acl) && !acl.Allows(w.who, cimi.All) {
		return errs.Errorf(errs.Forbidden, "You may not change the acl of %s: that needs the ALL right.", w.id)
	}
	next[attrACL] = aclValue(nacl)
	return nil
}

// checkRevision compares the revision the caller read (if it said) with
// the stored one.
func (w *write) checkRevision(rev uint64) error {
	if want := w.rc.GetIfRevision(); want != 0 && want != rev {
		return errs.Errorf(errs.RevisionConflict, "%s changed since you read it: read it again and retry.", w.id)
	}
	return nil
}

// raced handles a write that lost a race: a revision_conflict when the
// caller pinned the revision, otherwise a short pause before trying again,
// up to writeAttempts.
func (w *write) raced(ctx context.Context, attempt int) error {
	if w.rc.GetIfRevision() != 0 {
		return errs.Errorf(errs.RevisionConflict, "%s changed since you read it: read it again and retry.", w.id)
	}
	if attempt >= writeAttempts {
		return fmt.Errorf("resource: %s: still changing after %d attempts", w.id, attempt)
	}
	t := time.NewTimer(writePause * time.Duration(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// delete removes a resource. Changed runs before the removal, so that a
// crash between the two cannot skip it; a redelivered delete that finds
// the resource gone finishes the work.
func (w *write) delete(ctx context.Context) (bus.Result, error) {
	k, id := w.k, w.id
	if k.SoftDelete != nil {
		return w.update(ctx, "deleted", func(current map[string]any) (map[string]any, error) {
			return k.SoftDelete(ctx, w.who, current)
		})
	}
	for attempt := 1; ; attempt++ {
		stored, rev, err := w.p.load(ctx, k, id, true)
		if errs.CodeOf(err) == errs.NotFound && w.cmd.Deliveries() > 1 {
			return w.finish(ctx, subject.EventDeleted, nil, "deleted")
		}
		if err != nil {
			return bus.Result{}, err
		}
		acl := aclOf(stored)
		if !acl.Allows(w.who, cimi.View) {
			return bus.Result{}, w.refuse("delete", false, notFound(id))
		}
		if !acl.Allows(w.who, cimi.Modify) {
			return bus.Result{}, w.refuse("delete", true, errs.Errorf(errs.Forbidden, "You may not delete %s.", id))
		}
		if err := w.checkRevision(rev); err != nil {
			return bus.Result{}, err
		}
		current := withoutHidden(stored)
		if k.Remove != nil {
			if err := k.Remove(ctx, w.who, clone(current)); err != nil {
				return bus.Result{}, err
			}
		}
		if err := w.changed(ctx, current, nil); err != nil {
			return bus.Result{}, err
		}
		err = k.Collection.Delete(ctx, id, rev)
		switch {
		case err == nil:
			return w.finish(ctx, subject.EventDeleted, nil, "deleted")
		case errors.Is(err, store.ErrNotFound):
			// Someone else deleted it meanwhile: the next read says so.
			continue
		case !errors.Is(err, store.ErrConflict):
			return bus.Result{}, fmt.Errorf("resource: delete %s: %w", id, err)
		}
		if err := w.raced(ctx, attempt); err != nil {
			return bus.Result{}, err
		}
	}
}

// refuse returns the kind's wording of a refused write, or def. op is
// "delete", or the done word of an update ("updated" for an edit, the
// action's name otherwise).
func (w *write) refuse(op string, visible bool, def error) error {
	if w.k.Refuse == nil {
		return def
	}
	switch op {
	case "delete":
	case "deleted":
		op = "delete"
	case "updated":
		op = "edit"
	default:
		op = "action"
	}
	if err := w.k.Refuse(w.who, op, visible); err != nil {
		return err
	}
	return def
}

// changed runs the kind's Changed hook, if any.
func (w *write) changed(ctx context.Context, before, after map[string]any) error {
	if w.k.Changed == nil {
		return nil
	}
	return w.k.Changed(ctx, w.who, clone(before), clone(after))
}

// finish publishes the ResourceChanged event of the write (after is nil
// for a delete) and reports the command done. The event's message id
// derives from the command id, so that a redelivery stores it once.
func (w *write) finish(ctx context.Context, event string, after map[string]any, done string) (bus.Result, error) {
	ev := &cimiv1.ResourceChanged{Kind: w.k.Name, Id: w.id, At: timestamppb.New(w.p.now())}
	if after != nil {
		data, err := encode(w.p.view(w.k, w.who, after))
		if err != nil {
			return bus.Result{}, fmt.Errorf("resource: encode %s: %w", w.id, err)
		}
		ev.Json = data
	}
	subj := subject.Event(w.p.service, subject.ResourceToken(w.k.Name), event)
	if err := w.p.bus.Publish(ctx, subj, ev, w.cmd.ID()+".changed"); err != nil {
		return bus.Result{}, fmt.Errorf("resource: announce the change of %s: %w", w.id, err)
	}
	return bus.Result{Affected: []string{w.id}, Message: w.id + " " + done + "."}, nil
}
