package resource

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// MaxBody bounds the JSON body of a ResourceCommand. The gateway refuses
// larger requests already; the owner checks again because it never trusts
// the sender alone.
const MaxBody = 1 << 20

// Kind is one CIMI kind a service owns and how it is written.
type Kind struct {
	// Name is the CIMI kind, e.g. "User"; ids are "<Name>/<local>".
	Name string
	// Collection is where its documents live.
	Collection store.Collection
	// ReadOnly kinds are served by cimi_get and cimi_query only: their
	// documents are written by the service itself (Job, Event), and
	// Subjects has no filter for them.
	ReadOnly bool
	// CanCreate reports whether who may create one; nil: nobody may.
	CanCreate func(who cimi.Identity) bool
	// New validates a create body and returns the document to store. The
	// framework then sets id, resourceURI, created, updated, and acl (from
	// DefaultACL unless New set a valid "acl"). nil: the body as is.
	New func(ctx context.Context, who cimi.Identity, id string, body map[string]any) (map[string]any, error)
	// Change computes an edit from the current stored document and the PUT
	// body (selects: the $select attributes to replace, empty = all). nil:
	// generic replace of every attribute except the server-set ones (id,
	// resourceURI, created, updated, operations). Whatever computes it,
	// "acl" may be changed only by who holds ALL.
	Change func(ctx context.Context, who cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error)
	// Remove runs before a delete; an error refuses it (e.g. conflict).
	// nil: allowed.
	Remove func(ctx context.Context, who cimi.Identity, current map[string]any) error
	// Actions by name ("start"): compute the new document from the current
	// one and the Action body.
	Actions map[string]func(ctx context.Context, who cimi.Identity, current, body map[string]any) (map[string]any, error)
	// DefaultACL of a new resource; nil: cimi.OwnedBy(who).
	DefaultACL func(who cimi.Identity, id string, doc map[string]any) cimi.ACL
	// View adjusts a document before it is returned to who (e.g. hide a
	// secret); nil: as stored.
	View func(who cimi.Identity, doc map[string]any) map[string]any
	// SoftDelete, when set, turns a delete into an edit: it returns the
	// document that replaces the deleted resource (a machine that is Done
	// stays visible a while), and Remove is not called. The edit needs
	// MODIFY, like any delete.
	SoftDelete func(ctx context.Context, who cimi.Identity, current map[string]any) (map[string]any, error)
	// CheckID, when set, refuses a malformed local id (the part after
	// "<Name>/") before any read or write, so that a bad id is a 400 that
	// says what is wrong rather than a 404.
	CheckID func(local string) error
	// Refuse, when set, words the refusal of an edit ("edit"), action
	// ("action") or delete ("delete") to who, who lacks the MODIFY right;
	// visible says whether who may view the resource. Returning nil keeps
	// the default: not_found when invisible, forbidden otherwise. It exists
	// for the messages users and scripts know ("Not enough rights to
	// delete disk").
	Refuse func(who cimi.Identity, op string, visible bool) error
	// Changed runs after a successful create or edit (before = nil on
	// create) and just before the document of a delete is removed (after =
	// nil), before the command is reported done: e.g. authn revokes a
	// disabled user's sessions. An error retries the command, so Changed
	// must be safe to run twice for one change.
	Changed func(ctx context.Context, who cimi.Identity, before, after map[string]any) error
}

// Provider serves the CIMI kinds of one service: their reads as queries and
// their writes as commands.
type Provider struct {
	bus     *bus.Bus
	service string
	log     *slog.Logger
	kinds   map[string]*Kind // by name
	tokens  map[string]*Kind // by resource token
	order   []*Kind
	now     func() time.Time
}

// New returns the provider of the kinds of service, publishing its events
// on b. It refuses kinds without a valid name or a collection, and action
// names that would collide with the CRUD verbs.
func New(b *bus.Bus, service string, log *slog.Logger, kinds ...Kind) (*Provider, error) {
	if !subject.ValidToken(service) {
		return nil, fmt.Errorf("resource: %q is not a service name: use letters, digits, '-' and '_'", service)
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Provider{
		bus: b, service: service, log: log.With("service", service),
		kinds: make(map[string]*Kind), tokens: make(map[string]*Kind), now: time.Now,
	}
	for i := range kinds {
		k := kinds[i]
		if _, _, err := cimi.SplitID(k.Name + "/x"); err != nil || strings.Contains(k.Name, "/") {
			return nil, fmt.Errorf("resource: %q is not a CIMI kind name such as Volume", k.Name)
		}
		if k.Collection == nil {
			return nil, fmt.Errorf("resource: kind %s has no collection", k.Name)
		}
		token := subject.ResourceToken(k.Name)
		if p.kinds[k.Name] != nil || p.tokens[token] != nil {
			return nil, fmt.Errorf("resource: kind %s is given twice", k.Name)
		}
		for name := range k.Actions {
			switch {
			case !subject.ValidToken(name):
				return nil, fmt.Errorf("resource: kind %s: action %q must be letters, digits, '-' and '_'", k.Name, name)
			case name == "create" || name == "edit" || name == "delete":
				return nil, fmt.Errorf("resource: kind %s: %q cannot be an action: it is a basic operation", k.Name, name)
			}
		}
		p.kinds[k.Name] = &k
		p.tokens[token] = &k
		p.order = append(p.order, &k)
	}
	return p, nil
}

// Service returns the name of the service the provider serves for.
func (p *Provider) Service() string { return p.service }

// Subjects are the command filters to consume, one per kind that is not
// ReadOnly: cmd.<service>.<resource token>.* (subject.ResourceToken); the
// verbs are cimi_create, cimi_edit, cimi_delete and cimi_<action>.
func (p *Provider) Subjects() []string {
	var out []string
	for _, k := range p.order {
		if !k.ReadOnly {
			out = append(out, subject.Commands(p.service, subject.ResourceToken(k.Name)))
		}
	}
	return out
}

// Owns reports whether a command subject is one of the provider's, so
// that a service consuming several kinds of command on one durable can
// dispatch to Handle.
func (p *Provider) Owns(commandSubject string) bool {
	c, err := subject.ParseCommand(commandSubject)
	if err != nil || c.Service != p.service || c.HostID != "" {
		return false
	}
	k := p.tokens[c.Resource]
	return k != nil && !k.ReadOnly && strings.HasPrefix(c.Verb, subject.VerbCimiActionPrefix)
}

// IdentityOf returns the identity of a query's actor: nil is anonymous.
func IdentityOf(a *commonv1.Actor) cimi.Identity {
	return cimi.Identity{User: a.GetUser(), Roles: a.GetRoles()}
}

// commandIdentity returns the identity of a command's actor: nil is the
// system itself, which acts as an administrator.
func commandIdentity(a *commonv1.Actor) cimi.Identity {
	if a == nil {
		return cimi.Identity{Roles: []string{cimi.RoleAdmin}}
	}
	return IdentityOf(a)
}

// ActorOf returns the bus form of an identity.
func ActorOf(who cimi.Identity) *commonv1.Actor {
	return &commonv1.Actor{User: who.User, Roles: who.Roles}
}

// kindOf returns the kind of an id, or a not_found error naming it.
func (p *Provider) kindOf(id string) (*Kind, string, error) {
	name, local, err := cimi.SplitID(id)
	if err != nil {
		return nil, "", notFound(id)
	}
	k := p.kinds[name]
	if k == nil {
		return nil, "", notFound(id)
	}
	if k.CheckID != nil {
		if err := k.CheckID(local); err != nil {
			return nil, "", err
		}
	}
	return k, name, nil
}
