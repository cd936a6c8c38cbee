// Package api is the core of the gateway, shared by the REST handlers
// (internal/gateway) and the web UI (internal/webui): the table of CIMI
// kinds and the services owning them, and the operations a caller can do on
// them. Reads become queries to the owning service (svc.<service>.cimi_get
// and cimi_query); writes become ResourceCommands on the COMMANDS stream
// followed by a Job (see proto/stratus/cimi/v1/resource.proto). The gateway
// never reads or writes another service's documents itself.
package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"stratuslab.dev/platform/cimi"
)

// Document is one resource as JSON decoded into a map: every attribute,
// with "operations" filled for the caller.
type Document = map[string]any

// Kind describes one CIMI kind the cloud serves.
type Kind struct {
	// Name is the CIMI kind, the href of its collection and the first part
	// of its ids, e.g. "ServiceMessage".
	Name string
	// Attr is the attribute of the CloudEntryPoint that points at the
	// collection, e.g. "serviceMessages".
	Attr string
	// Service owns the kind's documents and answers for them, e.g. "cimi".
	Service string
	// AddRole is the role a caller needs to create through CIMI:
	// cimi.RoleAdmin, cimi.RoleUser, or "" when nobody may (Job, Event).
	AddRole string
	// ReadOnly kinds cannot be edited or deleted through CIMI.
	ReadOnly bool
	// Described kinds are written by their owner (a Host by its agent):
	// callers with MODIFY may delete them and run their actions, and are
	// offered no edit, which the owner refuses.
	Described bool
	// Actions are the action names resources of this kind accept, e.g.
	// "start"; advertised with their action URI to callers who may modify.
	Actions []string
	// NameAttrs, when set, name the resource after attributes of the
	// create body instead of a new uuid: User/<username>,
	// ServiceConfiguration/<service>[-<instance>].
	NameAttrs []string
}

// Collection is one page of a collection as the caller may see it.
type Collection struct {
	Kind Kind
	// Count is the number of resources matching the filter before paging.
	Count uint64
	// Docs is the page, each with its operations.
	Docs []Document
	// Operations on the collection itself ("add" when the caller may).
	Operations []cimi.Operation
}

// Outcome is what a write did, or has been accepted to do.
type Outcome struct {
	// ID of the resource written, e.g. "ServiceMessage/<uuid>".
	ID string
	// JobID follows the write, e.g. "Job/<uuid>".
	JobID string
	// Done is true when the owner finished within the gateway's wait:
	// Document then holds the resource (nil after a delete). When false
	// the write goes on; follow the job.
	Done     bool
	Document Document
}

// Resources is what the gateway does with resources on a caller's behalf.
// Errors carry a stable code (platform/errs): invalid, bad_filter,
// forbidden, not_found, conflict, revision_conflict, unavailable (the
// owning service did not answer in time), timeout, ...
type Resources interface {
	// Kinds lists the kinds the cloud serves, in CloudEntryPoint order.
	Kinds() []Kind
	// Kind finds a kind by name.
	Kind(name string) (Kind, bool)
	// Get reads one resource: "not_found" when absent or not visible.
	Get(ctx context.Context, who cimi.Identity, id string) (Document, error)
	// Query reads one page of a collection with the CIMI query parameters
	// ($filter, $orderby, $first, $last, $select) as given in q.
	Query(ctx context.Context, who cimi.Identity, kind string, q url.Values) (*Collection, error)
	// Create, Edit, Delete and Action send the write to the owner, wait a
	// bounded time for it to end and report the outcome; a write that
	// fails within the wait returns its error (e.g. invalid body).
	Create(ctx context.Context, who cimi.Identity, kind string, body []byte) (*Outcome, error)
	// Edit replaces the attributes of a resource the caller may change;
	// selects limits the replacement to those attributes ($select).
	Edit(ctx context.Context, who cimi.Identity, id string, body []byte, selects []string) (*Outcome, error)
	Delete(ctx context.Context, who cimi.Identity, id string) (*Outcome, error)
	// Action runs an action (body is a CIMI Action) on a resource.
	Action(ctx context.Context, who cimi.Identity, id string, body []byte) (*Outcome, error)
}

// Session is an authenticated caller.
type Session struct {
	Identity cimi.Identity
	// Method is how the caller proved who they are: "password",
	// "certificate", "voms", "session" (a token from an earlier login),
	// or "" for anonymous callers.
	Method string
	// Token is the session token, when the caller logged in; Expires is
	// when it stops being valid.
	Token   string
	Expires time.Time
}

// Credentials are what a caller logs in with.
type Credentials struct {
	Username string
	Password string
}

// SessionCookie is the name of the cookie carrying the session token for
// browsers (the web UI) and `stratus` alike; API clients may also send
// "Authorization: Bearer <token>" or HTTP Basic credentials.
const SessionCookie = "stratus_session"

// Authenticator authenticates requests and opens and closes sessions.
// Errors carry a stable code: unauthorized (refused credentials; the
// message never says whether the user exists), too_many_requests,
// unavailable.
type Authenticator interface {
	// Authenticate finds who sent r: a session token (cookie or Bearer),
	// HTTP Basic credentials, a verified client certificate, or the DN
	// header of a trusted front proxy. A request with none of these is
	// anonymous (a zero Session, no error); a request with credentials that
	// do not verify fails with "unauthorized".
	Authenticate(r *http.Request) (Session, error)
	// Login verifies credentials (or, with empty credentials, the client
	// certificate of r) and opens a session.
	Login(ctx context.Context, r *http.Request, c Credentials) (Session, error)
	// Logout revokes the session's token at every gateway.
	Logout(ctx context.Context, s Session) error
}
