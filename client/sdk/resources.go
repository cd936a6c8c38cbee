package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// EntryPoint is the cloud's CloudEntryPoint: who it is and where its
// collections are.
type EntryPoint struct {
	ID          string
	BaseURI     string
	Created     string
	Updated     string
	Collections map[string]string // attribute ("serviceMessages") → href ("ServiceMessage")
	Raw         map[string]any
}

// CloudEntryPoint returns the cloud's entry point as the cloud wrote it.
func (c *Client) CloudEntryPoint(ctx context.Context) (map[string]any, error) {
	var cep map[string]any
	err := c.getJSON(ctx, "cloudEntryPoint", nil, &cep)
	return cep, err
}

// Entry returns the cloud's entry point with its collections. It is read
// once per client and kept.
func (c *Client) Entry(ctx context.Context) (*EntryPoint, error) {
	c.mu.Lock()
	e := c.entry
	c.mu.Unlock()
	if e != nil {
		return e, nil
	}
	raw, err := c.CloudEntryPoint(ctx)
	if err != nil {
		return nil, err
	}
	e = &EntryPoint{Collections: map[string]string{}, Raw: raw}
	e.ID, _ = raw["id"].(string)
	e.BaseURI, _ = raw["baseURI"].(string)
	e.Created, _ = raw["created"].(string)
	e.Updated, _ = raw["updated"].(string)
	for k, v := range raw {
		if m, ok := v.(map[string]any); ok {
			if href, ok := m["href"].(string); ok {
				e.Collections[k] = c.ID(href)
			}
		}
	}
	c.mu.Lock()
	c.entry = e
	c.mu.Unlock()
	return e, nil
}

// Collection finds the href of a collection by its entry-point attribute
// ("serviceMessages") or its kind ("ServiceMessage"), ignoring case.
func (c *Client) Collection(ctx context.Context, name string) (string, error) {
	e, err := c.Entry(ctx)
	if err != nil {
		return "", err
	}
	for attr, href := range e.Collections {
		if strings.EqualFold(attr, name) || strings.EqualFold(href, name) {
			return href, nil
		}
	}
	kinds := make([]string, 0, len(e.Collections))
	for _, href := range e.Collections {
		kinds = append(kinds, href)
	}
	slices.Sort(kinds)
	return "", &Error{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("this cloud has no collection %q; it has %s", name, strings.Join(kinds, ", "))}
}

// Get reads the resource id ("ServiceMessage/42") into out, which may be a
// *json.RawMessage, a map or a struct.
func (c *Client) Get(ctx context.Context, id string, out any) error {
	return c.getJSON(ctx, id, nil, out)
}

// Query selects documents of a collection. Zero fields are left out. First
// and Last count from 1 and are both included, as in CIMI.
type Query struct {
	Filter  string
	OrderBy string
	First   int
	Last    int
	Select  []string
}

func (q Query) values() url.Values {
	v := url.Values{}
	if q.Filter != "" {
		v.Set("$filter", q.Filter)
	}
	if q.OrderBy != "" {
		v.Set("$orderby", q.OrderBy)
	}
	if q.First > 0 {
		v.Set("$first", strconv.Itoa(q.First))
	}
	if q.Last > 0 {
		v.Set("$last", strconv.Itoa(q.Last))
	}
	if len(q.Select) > 0 {
		v.Set("$select", strings.Join(q.Select, ","))
	}
	return v
}

// Page is one answer to a query: how many documents match in all, and
// those of this page.
type Page struct {
	Count      int
	Items      []json.RawMessage
	Operations []Operation
}

// Operation is a link a resource or collection offers this caller.
type Operation struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// Query runs q on the collection kind ("ServiceMessage") and returns the
// number of matching documents and the page asked for.
func (c *Client) Query(ctx context.Context, kind string, q Query) (int, []json.RawMessage, error) {
	p, err := c.QueryPage(ctx, kind, q)
	if err != nil {
		return 0, nil, err
	}
	return p.Count, p.Items, nil
}

// QueryPage is Query that also returns the collection's operations (whether
// this caller may add, for instance).
func (c *Client) QueryPage(ctx context.Context, kind string, q Query) (*Page, error) {
	var doc map[string]json.RawMessage
	if err := c.getJSON(ctx, kind, q.values(), &doc); err != nil {
		return nil, err
	}
	p := &Page{}
	if raw, ok := doc["count"]; ok {
		if err := json.Unmarshal(raw, &p.Count); err != nil {
			return nil, fmt.Errorf("%s: the count is not a number: %w", kind, err)
		}
	}
	if raw, ok := doc["operations"]; ok {
		_ = json.Unmarshal(raw, &p.Operations)
	}
	// The documents are under the collection's plural attribute
	// ("serviceMessages"), the one array that is not operations or acl.
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := doc[k]
		if k == "operations" || k == "acl" || len(raw) == 0 || raw[0] != '[' {
			continue
		}
		if err := json.Unmarshal(raw, &p.Items); err != nil {
			return nil, fmt.Errorf("%s: %s is not a list of documents: %w", kind, k, err)
		}
		break
	}
	return p, nil
}

// QueryAs is Query decoding each document into T.
func QueryAs[T any](ctx context.Context, c *Client, kind string, q Query) (int, []T, error) {
	n, raws, err := c.Query(ctx, kind, q)
	if err != nil {
		return 0, nil, err
	}
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return 0, nil, fmt.Errorf("%s: a document does not decode: %w", kind, err)
		}
		out = append(out, v)
	}
	return n, out, nil
}

// QueryAll runs q page after page of pageSize documents (100 when 0) and
// yields every matching document, from q.First up to q.Last when set. It
// stops at the first error, which it yields.
func (c *Client) QueryAll(ctx context.Context, kind string, q Query, pageSize int) iter.Seq2[json.RawMessage, error] {
	if pageSize <= 0 {
		pageSize = 100
	}
	return func(yield func(json.RawMessage, error) bool) {
		first := max(q.First, 1)
		for {
			page := q
			page.First, page.Last = first, first+pageSize-1
			if q.Last > 0 {
				page.Last = min(page.Last, q.Last)
			}
			count, items, err := c.Query(ctx, kind, page)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			next := first + len(items)
			if len(items) < page.Last-page.First+1 || next > count || (q.Last > 0 && next > q.Last) {
				return
			}
			first = next
		}
	}
}

// All is QueryAll decoding each document into T.
func All[T any](ctx context.Context, c *Client, kind string, q Query, pageSize int) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for raw, err := range c.QueryAll(ctx, kind, q, pageSize) {
			var v T
			if err == nil {
				if uerr := json.Unmarshal(raw, &v); uerr != nil {
					err = fmt.Errorf("%s: a document does not decode: %w", kind, uerr)
				}
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// Result is the answer to a create, edit, delete or action. Done is false
// when the cloud accepted the work (202) and a job carries it on: wait for
// JobID with WaitJob.
type Result struct {
	Status   int
	ID       string
	JobID    string
	Done     bool
	Message  string
	Document json.RawMessage // the resource, when the cloud returned it
}

// Create adds body (any JSON value, or json.RawMessage) to the collection
// kind.
func (c *Client) Create(ctx context.Context, kind string, body any) (Result, error) {
	return c.change(ctx, http.MethodPost, kind, nil, body)
}

// Edit replaces the resource id with body; attributes the caller may not
// change are kept by the cloud.
func (c *Client) Edit(ctx context.Context, id string, body any) (Result, error) {
	return c.change(ctx, http.MethodPut, id, nil, body)
}

// EditSelect replaces only the attributes attrs of the resource id with
// their values in body (a PUT with $select); the cloud keeps every other
// attribute as it is, so a concurrent change to those is not undone. An
// attribute in attrs but absent from body is removed.
func (c *Client) EditSelect(ctx context.Context, id string, body any, attrs ...string) (Result, error) {
	if len(attrs) == 0 {
		return c.Edit(ctx, id, body)
	}
	return c.change(ctx, http.MethodPut, id, url.Values{"$select": {strings.Join(attrs, ",")}}, body)
}

// Delete removes the resource id.
func (c *Client) Delete(ctx context.Context, id string) (Result, error) {
	return c.change(ctx, http.MethodDelete, id, nil, nil)
}

// Action runs an operation of the resource id: verb is the action's last
// word ("start", "stop", "capture"); params go into the action document.
func (c *Client) Action(ctx context.Context, id, verb string, params map[string]any) (Result, error) {
	doc := map[string]any{}
	for k, v := range params {
		doc[k] = v
	}
	doc["resourceURI"] = "http://schemas.dmtf.org/cimi/1/Action"
	doc["action"] = "http://schemas.dmtf.org/cimi/1/action/" + verb
	return c.change(ctx, http.MethodPost, strings.TrimSuffix(id, "/")+"/"+verb, nil, doc)
}

func (c *Client) change(ctx context.Context, method, ref string, query url.Values, body any) (Result, error) {
	r, err := c.do(ctx, method, ref, query, body)
	if err != nil {
		return Result{}, err
	}
	res := Result{Status: r.status, Done: r.status != http.StatusAccepted}
	if loc := r.header.Get("Location"); loc != "" {
		res.ID = c.ID(loc)
	}
	if job := r.header.Get("CIMI-Job-URI"); job != "" {
		res.JobID = c.ID(job)
	}
	var status struct {
		Message    string `json:"message"`
		ResourceID string `json:"resource-id"`
		JobID      string `json:"job-id"`
	}
	if len(r.body) > 0 && json.Unmarshal(r.body, &status) == nil {
		res.Message = status.Message
		if res.ID == "" {
			res.ID = c.ID(status.ResourceID)
		}
		if res.JobID == "" {
			res.JobID = c.ID(status.JobID)
		}
		if status.ResourceID == "" && status.JobID == "" {
			res.Document = json.RawMessage(r.body)
		}
	}
	if res.ID == "" && method != http.MethodPost {
		res.ID = ref
	}
	return res, nil
}
