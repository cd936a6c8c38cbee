package resource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// Endpoints are the cimi_get and cimi_query query endpoints, to pass to
// Bus.Serve with the service's others. A request's identity is its actor
// field, or the actor of the bus header when the field is absent; neither
// means anonymous.
func (p *Provider) Endpoints() []bus.Endpoint {
	return []bus.Endpoint{
		bus.Handle(subject.OpCimiGet, func(ctx context.Context, req *cimiv1.GetResourceRequest) (proto.Message, error) {
			doc, rev, err := p.Get(ctx, requestIdentity(ctx, req.GetActor()), req.GetId())
			if err != nil {
				return nil, err
			}
			data, err := encode(doc)
			if err != nil {
				return nil, fmt.Errorf("resource: encode %s: %w", req.GetId(), err)
			}
			return &cimiv1.ResourceDocument{Json: data, Revision: rev}, nil
		}),
		bus.Handle(subject.OpCimiQuery, func(ctx context.Context, req *cimiv1.QueryResourcesRequest) (proto.Message, error) {
			count, docs, err := p.Query(ctx, requestIdentity(ctx, req.GetActor()), req.GetKind(), req.GetQuery())
			if err != nil {
				return nil, err
			}
			out := &cimiv1.ResourceDocuments{Count: count, Documents: make([]*cimiv1.ResourceDocument, len(docs))}
			for i, doc := range docs {
				data, err := encode(doc)
				if err != nil {
					return nil, fmt.Errorf("resource: encode a %s: %w", req.GetKind(), err)
				}
				out.Documents[i] = &cimiv1.ResourceDocument{Json: data}
			}
			return out, nil
		}),
	}
}

// requestIdentity is the identity a query runs as.
func requestIdentity(ctx context.Context, a *commonv1.Actor) cimi.Identity {
	if a == nil {
		a = bus.ActorFrom(ctx)
	}
	return IdentityOf(a)
}

// Get returns the document id as who may see it, and the revision it was
// read at. A document who may not view is "not_found", as is one that does
// not exist: a caller never learns that a resource it may not see exists.
func (p *Provider) Get(ctx context.Context, who cimi.Identity, id string) (map[string]any, uint64, error) {
	k, _, err := p.kindOf(id)
	if err != nil {
		return nil, 0, err
	}
	doc, rev, err := p.load(ctx, k, id, false)
	if err != nil {
		return nil, 0, err
	}
	if !aclOf(doc).Allows(who, cimi.View) {
		return nil, 0, notFound(id)
	}
	return p.view(k, who, doc), rev, nil
}

// load reads a stored document: not_found when absent. A write reads it
// fresh (store.GetFresh): it decides from the document's state, which
// another replica may have just changed; a read may answer from an index.
func (p *Provider) load(ctx context.Context, k *Kind, id string, fresh bool) (map[string]any, uint64, error) {
	get := k.Collection.Get
	if fresh {
		get = func(ctx context.Context, id string) (store.Document, error) {
			return store.GetFresh(ctx, k.Collection, id)
		}
	}
	d, err := get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, notFound(id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("resource: read %s: %w", id, err)
	}
	doc, err := decodeObject(d.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("resource: decode %s: %w", id, err)
	}
	return doc, d.Revision, nil
}

// view returns doc as who sees it: without the framework's attributes,
// through the kind's View.
func (p *Provider) view(k *Kind, who cimi.Identity, doc map[string]any) map[string]any {
	out := withoutHidden(doc)
	if k.View != nil {
		out = k.View(who, out)
	}
	return out
}

// Query returns the documents of kind matching q that who may view: how
// many there are before paging, and the page, with $select applied. The
// query parameters are parsed here again, never trusted.
func (p *Provider) Query(ctx context.Context, who cimi.Identity, kind string, q *commonv1.CollectionQuery) (uint64, []map[string]any, error) {
	k := p.kinds[kind]
	if k == nil {
		return 0, nil, errs.Errorf(errs.NotFound, "There is no collection of %s here.", quoteKind(kind))
	}
	parsed, err := parseQuery(q)
	if err != nil {
		return 0, nil, err
	}
	page, err := k.Collection.Query(ctx, parsed, who)
	if errors.Is(err, store.ErrInvalid) {
		return 0, nil, errs.Errorf(errs.BadFilter, "The query on %s cannot be answered: %w.", kind, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("resource: query %s: %w", kind, err)
	}
	docs := make([]map[string]any, 0, len(page.Docs))
	for _, d := range page.Docs {
		doc, err := decodeObject(d.Body)
		if err != nil {
			return 0, nil, fmt.Errorf("resource: decode %s: %w", d.ID, err)
		}
		docs = append(docs, cimi.Select(p.view(k, who, doc), parsed.Select))
	}
	return uint64(max(page.Count, 0)), docs, nil
}

// parseQuery rebuilds the CIMI query parameters of q and parses them as
// the gateway would from a URL. Attributes hidden from callers cannot be
// filtered or sorted on: that would reveal them.
func parseQuery(q *commonv1.CollectionQuery) (cimi.Query, error) {
	v := url.Values{}
	if f := q.GetFilter(); f != "" {
		v.Set("$filter", f)
	}
	if o := q.GetOrderBy(); len(o) > 0 {
		v["$orderby"] = o
	}
	if n := q.GetFirst(); n > 0 {
		v.Set("$first", strconv.FormatUint(uint64(n), 10))
	}
	if n := q.GetLast(); n > 0 {
		v.Set("$last", strconv.FormatUint(uint64(n), 10))
	}
	if s := q.GetSelect(); len(s) > 0 {
		v["$select"] = s
	}
	parsed, err := cimi.ParseQuery(v)
	if err != nil {
		return cimi.Query{}, errs.Errorf(errs.BadFilter, "The query is not valid: %w.", err)
	}
	for _, o := range parsed.OrderBy {
		if hiddenPath(o.Attr) {
			return cimi.Query{}, errs.Errorf(errs.BadFilter, "The query is not valid: $orderby cannot use attributes starting with '_'.")
		}
	}
	if usesHidden(parsed.Filter) {
		return cimi.Query{}, errs.Errorf(errs.BadFilter, "The query is not valid: $filter cannot use attributes starting with '_'.")
	}
	return parsed, nil
}

func hiddenPath(a cimi.Attribute) bool { return len(a.Path) > 0 && hidden(a.Path[0]) }

// usesHidden reports whether a filter compares an attribute hidden from
// callers.
func usesHidden(e cimi.Expr) bool {
	switch e := e.(type) {
	case *cimi.Logical:
		for _, t := range e.Terms {
			if usesHidden(t) {
				return true
			}
		}
	case *cimi.Comparison:
		return hiddenPath(e.Attr)
	}
	return false
}

// notFound is the answer for a resource that is absent or that the caller
// may not see.
func notFound(id string) error {
	return errs.Errorf(errs.NotFound, "%s does not exist or you may not see it.", quoteKind(id))
}

// quoteKind returns user-supplied text (a kind or an id) fit for a
// message: as it is when short and printable, quoted and shortened
// otherwise.
func quoteKind(s string) string {
	const limit = 120
	printable := utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
	if printable && len(s) <= limit && s != "" {
		return s
	}
	if len(s) > limit {
		return strconv.Quote(strings.ToValidUTF8(s[:limit], "")) + "…"
	}
	return strconv.Quote(s)
}
