package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// Defaults of Options.
const (
	DefaultReadTimeout = 5 * time.Second
	DefaultWriteWait   = 5 * time.Second
)

// JobSpec describes the Job following one write command.
type JobSpec struct {
	// Action is "create", "edit", "delete" or an action URI.
	Action string
	// Target is the id of the resource written.
	Target         string
	CommandID      string
	CommandSubject string
}

// Jobs records the Job of each write: the cimi service's jobs package,
// behind this interface so that the gateway's core does not depend on how
// jobs are stored.
type Jobs interface {
	// Start records a queued job owned by who and returns its id.
	Start(ctx context.Context, who cimi.Identity, s JobSpec) (string, error)
	// Fail marks a job failed at once, when its command could not be sent.
	Fail(ctx context.Context, id string, err error) error
}

// Options configure a Service.
type Options struct {
	Bus *bus.Bus
	// Conn is the bus's NATS connection, on which the Service follows the
	// terminal events of the commands it sends.
	Conn *nats.Conn
	Jobs Jobs
	Log  *slog.Logger
	// Kinds served; nil means DefaultKinds().
	Kinds []Kind
	// ReadTimeout bounds a query to an owning service; DefaultReadTimeout
	// when zero.
	ReadTimeout time.Duration
	// WriteWait is how long a write waits for its command to end before
	// answering "accepted"; DefaultWriteWait when zero.
	WriteWait time.Duration
}

// Service implements Resources over the bus: queries to the owning
// services for reads, commands and jobs for writes.
type Service struct {
	bus         *bus.Bus
	jobs        Jobs
	log         *slog.Logger
	kinds       []Kind
	readTimeout time.Duration
	writeWait   atomic.Int64 // a time.Duration, changed by live settings
	terminals   *bus.Terminals
}

// New returns the Service and starts following the terminal events of
// commands; Close stops.
func New(o Options) (*Service, error) {
	if o.Kinds == nil {
		o.Kinds = DefaultKinds()
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{bus: o.Bus, jobs: o.Jobs, log: o.Log, kinds: o.Kinds, readTimeout: o.ReadTimeout}
	s.SetWriteWait(o.WriteWait)
	terminals, err := bus.FollowTerminals(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.terminals = terminals
	return s, nil
}

// Close stops following events; writes still in progress answer
// "accepted" when their wait ends.
func (s *Service) Close() error {
	return s.terminals.Close()
}

// SetWriteWait changes how long writes wait for their command to end;
// zero or less restores DefaultWriteWait.
func (s *Service) SetWriteWait(d time.Duration) {
	if d <= 0 {
		d = DefaultWriteWait
	}
	s.writeWait.Store(int64(d))
}

// Kinds lists the kinds the cloud serves, in CloudEntryPoint order.
func (s *Service) Kinds() []Kind { return slices.Clone(s.kinds) }

// Kind finds a kind by name.
func (s *Service) Kind(name string) (Kind, bool) {
	for _, k := range s.kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// kind finds the kind of a collection named in a request: not_found when
// the cloud serves no such collection.
func (s *Service) kind(name string) (Kind, error) {
	if k, ok := s.Kind(name); ok {
		return k, nil
	}
	return Kind{}, errs.Errorf(errs.NotFound, "This cloud has no %s collection; the CloudEntryPoint lists those it has.", quote(name))
}

// resolve checks a resource id and finds its kind.
func (s *Service) resolve(id string) (Kind, error) {
	kind, _, err := cimi.SplitID(id)
	if err != nil {
		return Kind{}, errs.Errorf(errs.NotFound, "No resource has the id %s: %s.", quote(id), strings.TrimPrefix(err.Error(), cimi.ErrInvalidID.Error()+" "))
	}
	return s.kind(kind)
}

// Get reads one resource from its owner.
func (s *Service) Get(ctx context.Context, who cimi.Identity, id string) (Document, error) {
	k, err := s.resolve(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	var resp cimiv1.ResourceDocument
	req := &cimiv1.GetResourceRequest{Actor: actor(who), Id: id}
	if err := s.bus.Request(ctx, subject.CimiQuery(k.Service, subject.OpCimiGet), actor(who), req, &resp); err != nil {
		return nil, s.queryError(k, err)
	}
	doc, err := decode(k, resp.GetJson())
	if err != nil {
		return nil, err
	}
	s.decorate(k, who, doc)
	return doc, nil
}

// Query reads one page of a collection from its owner.
func (s *Service) Query(ctx context.Context, who cimi.Identity, kind string, q url.Values) (*Collection, error) {
	k, err := s.kind(kind)
	if err != nil {
		return nil, err
	}
	cq, err := collectionQuery(q)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	var resp cimiv1.ResourceDocuments
	req := &cimiv1.QueryResourcesRequest{Actor: actor(who), Kind: k.Name, Query: cq}
	if err := s.bus.Request(ctx, subject.CimiQuery(k.Service, subject.OpCimiQuery), actor(who), req, &resp); err != nil {
		return nil, s.queryError(k, err)
	}
	c := &Collection{Kind: k, Count: resp.GetCount(), Docs: make([]Document, 0, len(resp.GetDocuments()))}
	for _, d := range resp.GetDocuments() {
		doc, err := decode(k, d.GetJson())
		if err != nil {
			return nil, err
		}
		s.decorate(k, who, doc)
		c.Docs = append(c.Docs, doc)
	}
	c.Operations = cimi.CollectionOperations(s.mayAdd(k, who), k.Name)
	return c, nil
}

// collectionQuery checks the CIMI query parameters and puts them in the
// form the owner parses again.
func collectionQuery(q url.Values) (*commonv1.CollectionQuery, error) {
	pq, err := cimi.ParseQuery(q)
	if err != nil {
		return nil, errs.Errorf(errs.BadFilter, "%s", err.Error())
	}
	cq := &commonv1.CollectionQuery{First: clamp(pq.First), Last: clamp(pq.Last), Select: pq.Select}
	if pq.Filter != nil {
		cq.Filter = cimi.FormatFilter(pq.Filter)
	}
	for _, o := range pq.OrderBy {
		// FormatFilter writes attributes in their canonical form; a
		// comparison with null is the shortest way to reach it.
		attr := strings.TrimSuffix(cimi.FormatFilter(&cimi.Comparison{Attr: o.Attr, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.Null}}), " = null")
		if o.Desc {
			attr += ":desc"
		}
		cq.OrderBy = append(cq.OrderBy, attr)
	}
	return cq, nil
}

// clamp fits a page bound in the wire's uint32: no collection is larger.
func clamp(n int) uint32 {
	return uint32(min(max(n, 0), math.MaxUint32))
}

// mayAdd reports whether who may create resources of kind k.
func (s *Service) mayAdd(k Kind, who cimi.Identity) bool {
	return k.AddRole != "" && who.HoldsRole(k.AddRole)
}

// decorate fills the operations of a document for who.
func (s *Service) decorate(k Kind, who cimi.Identity, doc Document) {
	delete(doc, "operations")
	if k.ReadOnly {
		return
	}
	id, _ := doc["id"].(string)
	if id == "" {
		return
	}
	var acl cimi.ACL
	if raw, err := json.Marshal(doc["acl"]); err == nil {
		_ = json.Unmarshal(raw, &acl) // a malformed acl grants nothing beyond admins
	}
	ops := cimi.ResourceOperations(acl, who, id)
	if len(ops) == 0 {
		return
	}
	if k.Described {
		ops = slices.DeleteFunc(ops, func(o cimi.Operation) bool { return o.Rel == cimi.RelEdit })
	}
	for _, a := range k.Actions {
		ops = append(ops, cimi.Operation{Rel: cimi.ActionURI(a), Href: id + "/" + a})
	}
	doc["operations"] = ops
}

// decode reads a document an owner sent.
func decode(k Kind, raw []byte) (Document, error) {
	var doc Document
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, errs.Errorf(errs.Internal, "The %s service sent a %s that is not a JSON object.", k.Service, k.Name)
	}
	return doc, nil
}

// queryError turns the failure of a query to k's owner into an error for
// the caller.
func (s *Service) queryError(k Kind, err error) error {
	var qe *bus.QueryError
	switch {
	case errors.As(err, &qe):
		return errs.New(errs.Code(qe.Code()), qe.Message())
	case errors.Is(err, bus.ErrUnavailable), errs.CodeOf(err) == errs.Timeout, errors.Is(err, context.DeadlineExceeded):
		return errs.Wrap(errs.Unavailable, err, notAnswering(k.Service))
	}
	s.log.Warn("query failed", "service", k.Service, "kind", k.Name, "error", err)
	return errs.Wrap(errs.Unavailable, err, notAnswering(k.Service))
}

func notAnswering(service string) string {
	return fmt.Sprintf("The %s service is not answering: retry later; administrators: check that it runs.", service)
}

// Create sends the creation of a resource of kind to its owner.
func (s *Service) Create(ctx context.Context, who cimi.Identity, kind string, body []byte) (*Outcome, error) {
	k, err := s.kind(kind)
	if err != nil {
		return nil, err
	}
	if k.AddRole == "" {
		return nil, errs.Errorf(errs.Forbidden, "%s resources cannot be created through CIMI: the cloud makes them itself.", k.Name)
	}
	if !who.HoldsRole(k.AddRole) {
		if who.User == "" {
			return nil, errs.Errorf(errs.Unauthorized, "Log in to create %s resources.", k.Name)
		}
		return nil, errs.Errorf(errs.Forbidden, "You may not create %s resources: that needs the role %s.", k.Name, k.AddRole)
	}
	obj, err := object(body)
	if err != nil {
		return nil, err
	}
	id, err := newID(k, obj)
	if err != nil {
		return nil, err
	}
	return s.write(ctx, who, k, id, subject.VerbCimiCreate, "create", &cimiv1.ResourceCommand{Body: body})
}

// newID names a new resource: after its NameAttrs when the kind has some,
// a new uuid otherwise.
func newID(k Kind, obj map[string]any) (string, error) {
	if len(k.NameAttrs) == 0 {
		return cimi.NewID(k.Name), nil
	}
	var parts []string
	for i, attr := range k.NameAttrs {
		v, present := obj[attr]
		str, ok := v.(string)
		switch {
		case present && v != nil && !ok:
			return "", errs.Errorf(errs.Invalid, "The attribute %q of a %s must be a string.", attr, k.Name)
		case str == "" && i == 0:
			return "", errs.Errorf(errs.Invalid, "A %s needs the attribute %q: it names the resource.", k.Name, attr)
		case str != "":
			parts = append(parts, str)
		}
	}
	id := k.Name + "/" + strings.Join(parts, "-")
	if _, _, err := cimi.SplitID(id); err != nil {
		return "", errs.Errorf(errs.Invalid, "The %s cannot be named %s: %s.", k.Name, quote(strings.Join(parts, "-")),
			strings.TrimPrefix(err.Error(), cimi.ErrInvalidID.Error()+" "))
	}
	return id, nil
}

// Edit sends the change of a resource to its owner.
func (s *Service) Edit(ctx context.Context, who cimi.Identity, id string, body []byte, selects []string) (*Outcome, error) {
	k, err := s.writable(who, id, "change")
	if err != nil {
		return nil, err
	}
	if _, err := object(body); err != nil {
		return nil, err
	}
	return s.write(ctx, who, k, id, subject.VerbCimiEdit, "edit", &cimiv1.ResourceCommand{Body: body, Select: selects})
}

// Delete sends the deletion of a resource to its owner.
func (s *Service) Delete(ctx context.Context, who cimi.Identity, id string) (*Outcome, error) {
	k, err := s.writable(who, id, "delete")
	if err != nil {
		return nil, err
	}
	return s.write(ctx, who, k, id, subject.VerbCimiDelete, "delete", &cimiv1.ResourceCommand{})
}

// Action sends an action on a resource to its owner; body is a CIMI
// Action naming it by URI.
func (s *Service) Action(ctx context.Context, who cimi.Identity, id string, body []byte) (*Outcome, error) {
	k, err := s.writable(who, id, "act on")
	if err != nil {
		return nil, err
	}
	obj, err := object(body)
	if err != nil {
		return nil, err
	}
	uri, _ := obj["action"].(string)
	if uri == "" {
		return nil, errs.Errorf(errs.Invalid, `An action needs the attribute "action", e.g. %q.`, cimi.ActionURI("start"))
	}
	name := uri[strings.LastIndexByte(uri, '/')+1:]
	if !slices.Contains(k.Actions, name) || !subject.ValidToken(name) {
		if len(k.Actions) == 0 {
			return nil, errs.Errorf(errs.Invalid, "%s resources have no actions.", k.Name)
		}
		return nil, errs.Errorf(errs.Invalid, "%s resources have no action %s; they have %s.", k.Name, quote(uri), strings.Join(k.Actions, ", "))
	}
	return s.write(ctx, who, k, id, subject.CimiAction(name), cimi.ActionURI(name), &cimiv1.ResourceCommand{Body: body, Action: name})
}

// writable checks that who may try to change the resource id at all; the
// owner checks the resource's ACL.
func (s *Service) writable(who cimi.Identity, id, verb string) (Kind, error) {
	k, err := s.resolve(id)
	if err != nil {
		return Kind{}, err
	}
	if k.ReadOnly {
		return Kind{}, errs.Errorf(errs.Forbidden, "%s resources cannot be changed through CIMI: the cloud keeps them itself.", k.Name)
	}
	if who.User == "" {
		return Kind{}, errs.Errorf(errs.Unauthorized, "Log in to %s %s.", verb, id)
	}
	return k, nil
}

// object checks that a body is a JSON object.
func object(body []byte) (map[string]any, error) {
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		msg := "The request body must be a JSON object"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg += fmt.Sprintf(" (%s at byte %d)", se.Error(), se.Offset)
		}
		return nil, errs.New(errs.Invalid, msg+".")
	}
	return obj, nil
}

// write records the job, sends the command and waits a bounded time for
// its terminal event.
func (s *Service) write(ctx context.Context, who cimi.Identity, k Kind, id, verb, action string, cmd *cimiv1.ResourceCommand) (*Outcome, error) {
	subj := subject.CimiCommand(k.Service, subject.ResourceToken(k.Name), verb)
	commandID := uuid.NewString()
	jobID, err := s.jobs.Start(ctx, who, JobSpec{Action: action, Target: id, CommandID: commandID, CommandSubject: subj})
	if err != nil {
		s.log.Error("cannot record a job", "target", id, "error", err)
		return nil, errs.Wrap(errs.Unavailable, err, "The gateway cannot record the job of this request: retry later; administrators: check the store.")
	}
	meta := &commonv1.Meta{CommandId: commandID, JobId: jobID, Actor: actor(who)}
	cmd.Meta, cmd.Kind, cmd.Id = meta, k.Name, id

	done, cancel := s.terminals.Expect(commandID)
	defer cancel()
	if err := s.bus.Send(ctx, subj, meta, cmd); err != nil {
		s.log.Error("cannot send a command", "subject", subj, "job", jobID, "error", err)
		ferr := errs.Wrap(errs.Unavailable, err, fmt.Sprintf("The request could not be passed on to the %s service: retry later; administrators: check the message bus.", k.Service))
		if errs.CodeOf(err) == errs.TooLarge {
			// The body fitted the gateway's bound but not, with the
			// command around it, one message of the bus.
			ferr = errs.Wrap(errs.TooLarge, err, fmt.Sprintf("The request is too large to pass on to the %s service: %s", k.Service, errs.MessageOf(err)))
		}
		if jerr := s.jobs.Fail(context.WithoutCancel(ctx), jobID, ferr); jerr != nil {
			s.log.Error("cannot mark a job failed", "job", jobID, "error", jerr)
		}
		return nil, ferr
	}
	out := &Outcome{ID: id, JobID: jobID}
	timer := time.NewTimer(time.Duration(s.writeWait.Load()))
	defer timer.Stop()
	select {
	case t := <-done:
		if t.Err != nil {
			return nil, t.Err
		}
		out.Done = true
	case <-timer.C:
		return out, nil
	case <-ctx.Done():
		return out, nil
	}
	if verb == subject.VerbCimiDelete {
		return out, nil
	}
	doc, err := s.Get(ctx, who, id)
	if err != nil {
		// Done, but not readable now (e.g. the caller gave away its
		// rights); the caller still learns where it is.
		s.log.Info("written resource not readable after the write", "id", id, "error", err)
		return out, nil
	}
	out.Document = doc
	return out, nil
}

// actor is the bus form of an identity.
func actor(who cimi.Identity) *commonv1.Actor {
	return &commonv1.Actor{User: who.User, Roles: who.Roles}
}

// quote quotes user text for a message, shortened so that a huge input
// does not make a huge answer.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Service is the gateway's Resources.
var _ Resources = (*Service)(nil)
