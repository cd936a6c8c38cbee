package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
	"stratuslab.dev/services/cimi/internal/webui"
)

// The Marketplace's own REST API (services/marketplace/CONTRACT.md
// "Upload", "Read", "Deprecate"), as the original marketplace offered it:
// uploads of signed XML, searches by query parameters, entries by
// identifier, endorser and endorsement date. Each request becomes a CIMI
// request on MachineImage, the kind the marketplace owns, made for the
// caller through api.Resources: the same rules and the same refusals as
// /cimi/MachineImage.

// imageKind is the CIMI kind of Marketplace entries.
const imageKind = "MachineImage"

// uploadFormOverhead is what a multipart form may add to the entry it
// carries (boundaries, part headers, other fields).
const uploadFormOverhead = 64 << 10

// maxCreateBody bounds the create body of an entry, the XML in a JSON
// string: it travels to the marketplace in one message of the bus (at
// most 1 MiB with its headers), and the marketplace stores no document
// larger than this anyway. A larger body would only fail to be sent.
const maxCreateBody = 1<<20 - 64<<10

// Pages of a search: the default, and the most one page may hold.
const (
	defaultSearchLast = 20
	maxSearchPage     = 1000
)

// maxParamBytes bounds the value of a search parameter: e-mails, tags and
// identifiers are far shorter.
const maxParamBytes = 1024

// searchParams are the query parameters of a search that compare one
// attribute of the entries, in the order the filter lists them.
var searchParams = []struct {
	param string
	attr  []string
}{
	{"identifier", []string{"identifier"}},
	{"email", []string{"endorser", "email"}},
	{"os", []string{"os"}},
	{"os-version", []string{"osVersion"}},
	{"arch", []string{"osArch"}},
	{"tag", []string{"tag"}},
}

// Status filters of the REST API: the statuses of CONTRACT.md, and "all"
// for every signed entry.
const (
	statusValid = "valid"
	statusAll   = "all"
)

var statuses = []string{statusValid, "expired", "deprecated", "draft", statusAll}

// metadataCollection serves /marketplace/metadata: upload (POST) and
// search (GET).
func (g *Gateway) metadataCollection(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodPost {
		g.uploadMetadata(w, r, s)
		return
	}
	g.searchMetadata(w, r, s)
}

// metadataEntry serves /marketplace/metadata/<identifier>[/<email>[/<endorsed>]]
// (GET) and …/<identifier>/<email>/<endorsed>/deprecate (POST).
func (g *Gateway) metadataEntry(w http.ResponseWriter, r *http.Request) {
	key, err := entryKey(r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	switch {
	case len(key) == 0:
		g.metadataCollection(w, r)
	case len(key) == 4 && key[3] == "deprecate":
		if !allow(w, r, http.MethodPost) {
			return
		}
		if s, ok := g.who(w, r); ok {
			g.deprecateMetadata(w, r, s, key[:3])
		}
	case len(key) <= 3:
		if !allow(w, r, http.MethodGet) {
			return
		}
		if s, ok := g.who(w, r); ok {
			g.getMetadata(w, r, s, key)
		}
	default:
		g.fail(w, r, errs.Errorf(errs.NotFound, "Nothing is served at %s: entries are %s/<identifier>[/<email>[/<endorsed>]].",
			quote(r.URL.Path), webui.MetadataPrefix))
	}
}

// entryKey reads the path segments after /marketplace/metadata/, each
// unescaped on its own so that an escaped "/" stays in its segment.
func entryKey(r *http.Request) ([]string, error) {
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), webui.MetadataPrefix+"/")
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return nil, nil
	}
	var key []string
	for _, seg := range strings.Split(rest, "/") {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return nil, errs.Errorf(errs.NotFound, "Nothing is served at %s: entries are %s/<identifier>[/<email>[/<endorsed>]].",
				quote(r.URL.Path), webui.MetadataPrefix)
		}
		key = append(key, v)
	}
	if len(key) <= 4 {
		for i, name := range []string{"identifier", "e-mail", "endorsement date"}[:min(len(key), 3)] {
			if err := checkParam(name, key[i]); err != nil {
				return nil, err
			}
		}
	}
	return key, nil
}

// checkParam refuses a value that cannot be an attribute of an entry:
// too long, not UTF-8, or holding control characters.
func checkParam(name, v string) error {
	if len(v) > maxParamBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return errs.Errorf(errs.Invalid, "The %s must be text of at most %d bytes without control characters.", name, maxParamBytes)
	}
	return nil
}

// imageSearch is a search of the REST API read from its query parameters.
type imageSearch struct {
	// terms are and-ed into the CIMI filter.
	terms       []cimi.Expr
	first, last int
	// format is "json", "xml" or "" (the Accept header chooses).
	format string
	// status is the status asked for ("valid" by default).
	status string
}

// readFormat reads the format parameter of a read.
func readFormat(q url.Values) (string, error) {
	switch f := q.Get("format"); f {
	case "", "json", "xml":
		return f, nil
	default:
		return "", errs.Errorf(errs.Invalid, "The format must be json or xml, not %s.", quote(f))
	}
}

// statusTerm is the filter term of a status parameter: status='…' for a
// status, draft=false for "all" (every signed entry).
func statusTerm(v string) (cimi.Expr, error) {
	if v == "" {
		v = statusValid
	}
	switch {
	case v == statusAll:
		return &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"draft"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.Bool, Bool: false}}, nil
	case slices.Contains(statuses, v):
		return eq([]string{"status"}, v), nil
	}
	return nil, errs.Errorf(errs.Invalid, "The status must be one of %s, not %s.", strings.Join(statuses, ", "), quote(v))
}

func eq(path []string, v string) cimi.Expr {
	return &cimi.Comparison{Attr: cimi.Attribute{Path: path}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: v}}
}

// parseSearch reads the query parameters of a search. Every value is
// checked and put in the filter as a literal by the grammar's own writer
// (cimi.FormatFilter), so that no value can change the filter's shape.
func parseSearch(q url.Values) (imageSearch, error) {
	known := []string{"status", "created", "first", "last", "format"}
	for _, p := range searchParams {
		known = append(known, p.param)
	}
	for p, vs := range q {
		if !slices.Contains(known, p) {
			return imageSearch{}, errs.Errorf(errs.Invalid, "%s is not a search parameter of the Marketplace; use %s.", quote(p), strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return imageSearch{}, errs.Errorf(errs.Invalid, "The search parameter %s is given %d times; give it once.", p, len(vs))
		}
	}
	s := imageSearch{first: 1, last: defaultSearchLast, status: statusValid}
	for _, p := range searchParams {
		v := q.Get(p.param)
		if v == "" {
			continue
		}
		if err := checkParam(p.param, v); err != nil {
			return imageSearch{}, err
		}
		s.terms = append(s.terms, eq(p.attr, v))
	}
	if v := q.Get("created"); v != "" {
		t, err := parseSince(v)
		if err != nil {
			return imageSearch{}, err
		}
		s.terms = append(s.terms, &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"endorsed"}}, Op: cimi.Ge,
			Value: cimi.Value{Kind: cimi.Date, Time: t}})
	}
	if v := q.Get("status"); v != "" {
		s.status = v
	}
	st, err := statusTerm(s.status)
	if err != nil {
		return imageSearch{}, err
	}
	s.terms = append(s.terms, st)
	for _, b := range []struct {
		name string
		dst  *int
	}{{"first", &s.first}, {"last", &s.last}} {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return imageSearch{}, errs.Errorf(errs.Invalid, "%s must be a whole number from 1, not %s.", b.name, quote(v))
		}
		*b.dst = n
	}
	if q.Get("last") == "" && q.Get("first") != "" {
		s.last = s.first + defaultSearchLast - 1
	}
	switch {
	case s.last < s.first:
		return imageSearch{}, errs.Errorf(errs.Invalid, "last (%d) must not be before first (%d).", s.last, s.first)
	case s.last-s.first >= maxSearchPage:
		return imageSearch{}, errs.Errorf(errs.Invalid, "A page holds at most %d entries; ask for first=%d&last=%d and go on from there.",
			maxSearchPage, s.first, s.first+maxSearchPage-1)
	}
	if s.format, err = readFormat(q); err != nil {
		return imageSearch{}, err
	}
	return s, nil
}

// parseSince reads the created parameter: a date (yyyy-MM-dd, the start
// of that day in UTC) or an RFC 3339 time.
func parseSince(v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		t, err = time.Parse(time.RFC3339, v)
	}
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, errs.Errorf(errs.Invalid, "created must be a date such as 2012-01-02 or a time such as 2012-01-02T03:04:05Z, not %s.", quote(v))
	}
	return t.UTC(), nil
}

// cimiQuery is the CIMI query of a search: its filter, newest endorsement
// first, its page.
func (s imageSearch) cimiQuery() url.Values {
	var f cimi.Expr = &cimi.Logical{Op: cimi.And, Terms: s.terms}
	if len(s.terms) == 1 {
		f = s.terms[0]
	}
	return url.Values{
		"$filter":  {cimi.FormatFilter(f)},
		"$orderby": {"endorsed:desc"},
		"$first":   {strconv.Itoa(s.first)},
		"$last":    {strconv.Itoa(s.last)},
	}
}

// searchMetadata serves GET /marketplace/metadata: the entries matching
// the query parameters, as a collection in JSON or a <metadata> element
// holding each entry's XML. A browser goes to the web UI's catalogue.
func (g *Gateway) searchMetadata(w http.ResponseWriter, r *http.Request, s api.Session) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		g.fail(w, r, errs.Errorf(errs.Invalid, "The query string cannot be read: %s.", err.Error()))
		return
	}
	search, err := parseSearch(q)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	format := search.format
	if format == "" {
		format = negotiate(r.Header.Get("Accept"))
	}
	if format == "html" {
		http.Redirect(w, r, catalogueURL(q), http.StatusSeeOther)
		return
	}
	c, err := g.res.Query(r.Context(), s.Identity, imageKind, search.cimiQuery())
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if format == "xml" {
		var b bytes.Buffer
		b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n")
		for _, d := range c.Docs {
			xml, _ := d["xml"].(string)
			b.WriteString(withoutDeclaration(xml))
			b.WriteString("\n")
		}
		b.WriteString("</metadata>\n")
		writeXML(w, b.Bytes())
		return
	}
	docs := c.Docs
	if docs == nil {
		docs = []api.Document{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":          imageKind,
		"resourceURI": cimi.ResourceURI(imageKind + "Collection"),
		"count":       c.Count,
		"first":       search.first,
		"last":        search.last,
		c.Kind.Attr:   docs,
	})
}

// withoutDeclaration drops the XML declaration (and a byte order mark)
// that starts a document, which may not appear inside another one.
func withoutDeclaration(xml string) string {
	xml = strings.TrimPrefix(xml, "\uFEFF")
	if strings.HasPrefix(xml, "<?xml") {
		if end := strings.Index(xml, "?>"); end >= 0 {
			xml = xml[end+2:]
		}
	}
	return strings.TrimLeft(xml, " \t\r\n")
}

// catalogueURL is the web UI's catalogue showing what the search q asks
// for: its quick filters, and a typed filter for the parameters the
// catalogue has no box for.
func catalogueURL(q url.Values) string {
	out := url.Values{}
	for _, p := range []string{"identifier", "email", "os", "tag"} {
		if v := q.Get(p); v != "" {
			out.Set(p, v)
		}
	}
	switch st := q.Get("status"); st {
	case "":
	case statusAll:
		out.Set("status", "")
	default:
		out.Set("status", st)
	}
	var terms []cimi.Expr
	for _, p := range []struct {
		param string
		attr  []string
	}{{"os-version", []string{"osVersion"}}, {"arch", []string{"osArch"}}} {
		if v := q.Get(p.param); v != "" {
			terms = append(terms, eq(p.attr, v))
		}
	}
	if v := q.Get("created"); v != "" {
		if t, err := parseSince(v); err == nil {
			terms = append(terms, &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"endorsed"}}, Op: cimi.Ge,
				Value: cimi.Value{Kind: cimi.Date, Time: t}})
		}
	}
	switch len(terms) {
	case 0:
	case 1:
		out.Set("$filter", cimi.FormatFilter(terms[0]))
	default:
		out.Set("$filter", cimi.FormatFilter(&cimi.Logical{Op: cimi.And, Terms: terms}))
	}
	u := webui.Prefix + imageKind
	if len(out) > 0 {
		u += "?" + out.Encode()
	}
	return u
}

// findEntry finds the newest entry the key names among those the status
// filter allows.
func (g *Gateway) findEntry(r *http.Request, s api.Session, key []string, status string) (api.Document, error) {
	var terms []cimi.Expr
	for i, attr := range [][]string{{"identifier"}, {"endorser", "email"}, {"endorsed"}}[:len(key)] {
		terms = append(terms, eq(attr, key[i]))
	}
	st, err := statusTerm(status)
	if err != nil {
		return nil, err
	}
	terms = append(terms, st)
	search := imageSearch{terms: terms, first: 1, last: 1}
	c, err := g.res.Query(r.Context(), s.Identity, imageKind, search.cimiQuery())
	if err != nil {
		return nil, err
	}
	if len(c.Docs) == 0 {
		if status == "" {
			status = statusValid
		}
		hint := ""
		if status != statusAll {
			hint = " (status=all shows every signed entry, deprecated and expired ones too)"
		}
		return nil, errs.Errorf(errs.NotFound, "The Marketplace has no %s entry %s%s.", status, strings.Join(key, "/"), hint)
	}
	return c.Docs[0], nil
}

// getMetadata serves GET /marketplace/metadata/<identifier>[/<email>[/<endorsed>]]:
// the newest matching entry as its signed XML (byte for byte), as JSON,
// or for a browser the web UI's page of the entry.
func (g *Gateway) getMetadata(w http.ResponseWriter, r *http.Request, s api.Session, key []string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		g.fail(w, r, errs.Errorf(errs.Invalid, "The query string cannot be read: %s.", err.Error()))
		return
	}
	for p, vs := range q {
		if p != "status" && p != "format" {
			g.fail(w, r, errs.Errorf(errs.Invalid, "%s is not a parameter of a Marketplace entry; use status or format.", quote(p)))
			return
		}
		if len(vs) > 1 {
			g.fail(w, r, errs.Errorf(errs.Invalid, "The parameter %s is given %d times; give it once.", p, len(vs)))
			return
		}
	}
	format, err := readFormat(q)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if format == "" {
		format = negotiate(r.Header.Get("Accept"))
	}
	doc, err := g.findEntry(r, s, key, q.Get("status"))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	id, _ := doc["id"].(string)
	switch format {
	case "xml":
		xml, _ := doc["xml"].(string)
		writeXML(w, []byte(xml))
	case "html":
		http.Redirect(w, r, webui.Prefix+id, http.StatusSeeOther)
	default:
		writeJSON(w, http.StatusOK, doc)
	}
}

// writeXML answers an XML document.
func writeXML(w http.ResponseWriter, doc []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/xml; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// uploadMetadata serves POST /marketplace/metadata: the signed XML of an
// entry, raw or as the file of a form, becomes the CIMI create of a
// MachineImage {"metadata": "<xml>"}. Done, it answers 201 with the
// entry's address in Location.
func (g *Gateway) uploadMetadata(w http.ResponseWriter, r *http.Request, s api.Session) {
	if s.Identity.User == "" {
		g.fail(w, r, errs.New(errs.Unauthorized, "Log in to upload Marketplace entries."))
		return
	}
	if err := g.fromThisSite(r); err != nil {
		g.fail(w, r, err)
		return
	}
	xml, err := readMetadata(w, r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	body, err := jsonText(map[string]string{"metadata": string(xml)})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if len(body) > maxCreateBody {
		g.fail(w, r, errs.Errorf(errs.TooLarge, "Entry refused (document-size): the entry takes %d bytes once encoded for the marketplace, which stores at most %d.",
			len(body), maxCreateBody))
		return
	}
	out, err := g.res.Create(r.Context(), s.Identity, imageKind, body)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !out.Done || out.Document == nil {
		g.writeOutcome(w, r, out, http.StatusCreated, "created")
		return
	}
	if negotiate(r.Header.Get("Accept")) == "html" {
		http.Redirect(w, r, webui.Prefix+out.ID, http.StatusSeeOther)
		return
	}
	g.setOutcomeHeaders(w, r, out)
	if p := entryPath(out.Document); p != "" {
		w.Header().Set("Location", p)
	}
	answer := map[string]any{"status": http.StatusCreated, "message": out.ID + " created", "resource-id": out.ID, "resource": out.Document}
	if out.JobID != "" {
		answer["job-id"] = out.JobID
	}
	writeJSON(w, http.StatusCreated, answer)
}

// entryPath is the REST address of a signed entry: identifier, endorser
// and endorsement date; "" when the document lacks one.
func entryPath(doc api.Document) string {
	id, _ := doc["identifier"].(string)
	endorsed, _ := doc["endorsed"].(string)
	endorser, _ := doc["endorser"].(map[string]any)
	email, _ := endorser["email"].(string)
	if id == "" || email == "" || endorsed == "" {
		return ""
	}
	return webui.MetadataPath(id, email, endorsed)
}

// readMetadata reads the entry of an upload: the body itself (XML), or
// the field "file" of a multipart form. An entry is at most
// webui.MaxMetadataBytes (the marketplace's document-size rule); the
// gateway refuses a larger one with 413 before reading it all.
func readMetadata(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	var data []byte
	switch {
	case mt == "application/xml" || mt == "text/xml":
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, webui.MaxMetadataBytes))
		if err != nil {
			return nil, bodyError(err)
		}
	case mt == "multipart/form-data" && params["boundary"] != "":
		data, err = formFile(w, r)
		if err != nil {
			return nil, err
		}
	default:
		return nil, errs.Errorf(errs.UnsupportedMediaType, "Send the signed entry as the body (Content-Type: application/xml) or as the field \"file\" of a multipart/form-data form, not as %s.",
			quote(r.Header.Get("Content-Type")))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errs.New(errs.Invalid, "The upload holds no entry: send the signed XML that stratus sign-metadata writes.")
	}
	if !utf8.Valid(data) {
		return nil, errs.New(errs.Invalid, "Entry refused (well-formed): the document is not UTF-8 text.")
	}
	return data, nil
}

// formFile reads the field "file" of a multipart form, part by part so
// that nothing is written to disk; the other fields are skipped.
func formFile(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, webui.MaxMetadataBytes+uploadFormOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "The form cannot be read")
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errs.New(errs.Invalid, "The form has no field \"file\": send the signed entry in it.")
		}
		if err != nil {
			return nil, bodyError(err)
		}
		if part.FormName() != "file" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, bodyError(err)
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, webui.MaxMetadataBytes+1))
		if err != nil {
			return nil, bodyError(err)
		}
		if len(data) > webui.MaxMetadataBytes {
			return nil, tooLarge()
		}
		return data, nil
	}
}

// bodyError is the error of a body that could not be read.
func bodyError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return tooLarge()
	}
	return errs.Wrap(errs.Invalid, err, "The request body could not be read")
}

func tooLarge() error {
	return errs.Errorf(errs.TooLarge, "Entry refused (document-size): an entry may have at most %d bytes (1 MiB).", webui.MaxMetadataBytes)
}

// fromThisSite refuses a form a browser sent from another site with the
// session cookie: a form can post multipart and urlencoded bodies across
// sites, and the cookie would make it the person's request. Other bodies
// (XML, JSON) cannot be sent across sites without the gateway's consent.
func (g *Gateway) fromThisSite(r *http.Request) error {
	if _, err := r.Cookie(api.SessionCookie); err != nil {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data", "application/x-www-form-urlencoded", "text/plain", "":
		if !webui.SameOrigin(r) {
			g.log.Warn("refused a cross-site form", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
			return errs.New(errs.Forbidden, "This form was not sent from this site's own pages, so it was refused.")
		}
	}
	return nil
}

// jsonText encodes v as JSON for a service: "<" and ">" stay as they are
// (the marketplace reads the XML, not a web page).
func jsonText(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "The request could not be encoded")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// deprecateMetadata serves POST …/<identifier>/<email>/<endorsed>/deprecate:
// the CIMI action deprecate on that entry, with the reason of a JSON body
// ({"reason": "…"}) or of a form (reason=…).
func (g *Gateway) deprecateMetadata(w http.ResponseWriter, r *http.Request, s api.Session, key []string) {
	if s.Identity.User == "" {
		g.fail(w, r, errs.New(errs.Unauthorized, "Log in to deprecate Marketplace entries."))
		return
	}
	if err := g.fromThisSite(r); err != nil {
		g.fail(w, r, err)
		return
	}
	reason, err := readReason(w, r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	doc, err := g.findEntry(r, s, key, statusAll)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	id, _ := doc["id"].(string)
	body, err := jsonText(map[string]any{"resourceURI": cimi.ResourceURI("Action"), "action": cimi.ActionURI("deprecate"), "reason": reason})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	out, err := g.res.Action(r.Context(), s.Identity, id, body)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if negotiate(r.Header.Get("Accept")) == "html" && out.Done {
		http.Redirect(w, r, webui.Prefix+id, http.StatusSeeOther)
		return
	}
	if out.Done && out.Document != nil {
		g.setOutcomeHeaders(w, r, out)
		writeJSON(w, http.StatusOK, out.Document)
		return
	}
	g.writeOutcome(w, r, out, http.StatusOK, "deprecated")
}

// readReason reads the reason of a deprecation: "reason" (or
// properties.reason, as some CIMI clients send parameters) of a JSON
// object, or the field reason of a form. An empty body gives no reason,
// which the marketplace refuses with what to send.
func readReason(w http.ResponseWriter, r *http.Request) (string, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(MaxBodyBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return "", bodyErrorForm(err)
		}
		return r.PostFormValue("reason"), nil
	}
	body, err := readBody(w, r)
	if err != nil {
		return "", err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil
	}
	var act struct {
		Reason     string `json:"reason"`
		Properties struct {
			Reason string `json:"reason"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(body, &act); err != nil {
		return "", errs.New(errs.Invalid, `The body must be a JSON object {"reason": "why the image should no longer be used"} or a form with the field reason.`)
	}
	if act.Reason == "" {
		return act.Properties.Reason, nil
	}
	return act.Reason, nil
}

// bodyErrorForm is the error of a form that could not be read.
func bodyErrorForm(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errs.Errorf(errs.TooLarge, "The request body is larger than %d bytes, the most the gateway accepts.", MaxBodyBytes)
	}
	return errs.Wrap(errs.Invalid, err, "The form cannot be read")
}

// negotiate chooses the format of an answer from an Accept header: "json"
// (also for no header, */* and anything else), "xml" or "html" (browsers,
// which ask for text/html first). Quality values decide; at equal
// quality JSON wins, then XML.
func negotiate(accept string) string {
	type choice struct {
		format string
		types  []string
	}
	choices := []choice{
		{"json", []string{"application/json"}},
		{"xml", []string{"application/xml", "text/xml"}},
		{"html", []string{"text/html"}},
	}
	best, bestQ := "json", -1.0
	for _, c := range choices {
		q := 0.0
		for _, t := range c.types {
			q = max(q, quality(accept, t))
		}
		if q > bestQ {
			best, bestQ = c.format, q
		}
	}
	if bestQ <= 0 {
		return "json"
	}
	return best
}

// quality is the quality an Accept header gives the media type mt: that
// of its most specific range matching mt (type/subtype, type/*, */*), 0
// when none does; with no header, everything is acceptable.
func quality(accept, mt string) float64 {
	if strings.TrimSpace(accept) == "" {
		return 1
	}
	typ, _, _ := strings.Cut(mt, "/")
	q, specificity := 0.0, -1
	for _, rng := range strings.Split(accept, ",") {
		media, params, err := mime.ParseMediaType(strings.TrimSpace(rng))
		if err != nil {
			continue
		}
		s := -1
		switch {
		case media == mt:
			s = 2
		case media == typ+"/*":
			s = 1
		case media == "*/*":
			s = 0
		}
		if s < specificity || s < 0 {
			continue
		}
		rq := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			rq = f
		}
		if s > specificity {
			q, specificity = rq, s
		} else {
			q = max(q, rq)
		}
	}
	return q
}
