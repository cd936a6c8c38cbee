package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// home serves the CloudEntryPoint: one link per collection.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	u.render(w, http.StatusOK, "home", &view{Title: "CloudEntryPoint", User: s.Identity.User, Kinds: u.res.Kinds()})
}

// kind finds the kind named in the path or shows a "not found" page.
func (u *UI) kind(w http.ResponseWriter, r *http.Request, s api.Session) (api.Kind, bool) {
	name := r.PathValue("kind")
	k, ok := u.res.Kind(name)
	if !ok {
		u.fail(w, r, s, errs.Errorf(errs.NotFound, "This cloud has no collection named %q; the CloudEntryPoint lists those it has.", name))
	}
	return k, ok
}

// collectionView is one page of a collection.
type collectionView struct {
	Kind  string
	Heads []head
	Rows  []row
	// Filter is the $filter typed in the search box, Quick the quick
	// filters and QuickFilter the $filter they make, and-ed to Filter.
	Filter      string
	Quick       []quickView
	QuickFilter string
	// Filtered is set when the page shows only some of the collection.
	Filtered bool
	OrderBy  string
	// Range says which resources the page shows, e.g. "21–40 of 57".
	Range          string
	Previous, Next string
	CanAdd         bool
	// AddText is the words of the add button.
	AddText string
}

// row is one resource of a collection page; ID is the row's element id.
type row struct {
	ID    string
	Cells []cellView
}

// cellView is one cell of a row, linked when Link is set, with Note in
// small type after it.
type cellView struct {
	Text, Link, Note string
}

// extraColumns are the kind-specific attributes a collection page shows
// beside name, description and updated: those its users look for first.
func extraColumns(kind string) []string {
	switch kind {
	case "User":
		return []string{"username", "first-name", "last-name", "email", "enabled", "roles"}
	case "Job":
		return []string{"state", "action", "targetResource", "progress", "returnCode"}
	case "Event":
		return []string{"timestamp", "type", "severity"}
	case "ServiceConfiguration":
		return []string{"service", "instance"}
	case "Machine":
		return []string{"state", "cpu", "memory"}
	case "MachineImage":
		return []string{"state", "type"}
	case "MachineConfiguration":
		return []string{"cpu", "memory", "cpuArch"}
	case "Host":
		// What an administrator checks before maintenance: whether the
		// host is up, already out of placement, and how busy.
		return []string{"state", "maintenance", "runningMachines", "hypervisor"}
	}
	return nil
}

// pageRange is the $first and $last a collection page asks for: those of
// the request when they are numbers, else the first page of PageSize.
func pageRange(q url.Values) (first, last int) {
	first, err := strconv.Atoi(q.Get("$first"))
	if err != nil || first < 1 {
		first = 1
	}
	last, err = strconv.Atoi(q.Get("$last"))
	if err != nil || last < first {
		last = first + PageSize - 1
	}
	return first, last
}

// collection serves a collection page, or its "add" page: the create
// form of a kind that has one, else the JSON editor.
func (u *UI) collection(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	k, ok := u.kind(w, r, s)
	if !ok {
		return
	}
	in := r.URL.Query()
	kv := u.views[k.Name]
	if in.Get("op") == cimi.RelAdd {
		if len(kv.Create) > 0 && in.Get("editor") != "json" {
			// A link may fill in some fields, such as the image of a
			// machine from a Marketplace entry's page.
			fv := createForm(formContext{r.Context(), u.res, s.Identity}, k, kv, in.Get)
			u.render(w, http.StatusOK, "form", &view{Title: fv.Heading, User: s.Identity.User, Form: fv})
			return
		}
		u.render(w, http.StatusOK, "editor", &view{Title: "Add " + k.Name, User: s.Identity.User,
			Editor: &editorView{Action: Prefix + k.Name, Op: cimi.RelAdd, Text: "{}", Back: Prefix + k.Name, Heading: "Add a " + k.Name}})
		return
	}
	first, last := pageRange(in)
	// keep is what the page was asked for, which its links (paging,
	// ordering) carry on; q is what the page asks the gateway for.
	keep := url.Values{}
	for _, p := range []string{"$filter", "$orderby"} {
		if v := in.Get(p); v != "" {
			keep.Set(p, v)
		}
	}
	if !keep.Has("$orderby") && kv.DefaultOrder != "" {
		keep.Set("$orderby", kv.DefaultOrder)
	}
	quick, quickFilter := quickFilters(kv.Quick, in)
	filtered := keep.Get("$filter") != ""
	for _, qv := range quick {
		// A filter with a default keeps "any" too: without it the next
		// page would be back to the default.
		if qv.Value != "" || qv.Default != "" {
			keep.Set(qv.Name, qv.Value)
		}
		filtered = filtered || qv.Value != qv.Default
	}
	q := url.Values{}
	// The gateway and-s several $filter values, each parsed on its own:
	// the quick filters cannot change the meaning of the typed one.
	for _, f := range []string{keep.Get("$filter"), quickFilter} {
		if f != "" {
			q.Add("$filter", f)
		}
	}
	if o := keep.Get("$orderby"); o != "" {
		q.Set("$orderby", o)
	}
	q.Set("$first", strconv.Itoa(first))
	q.Set("$last", strconv.Itoa(last))
	cols := kv.Columns
	if cols == nil {
		cols = genericColumns(k.Name)
	}
	cv := &collectionView{Kind: k.Name, Filter: keep.Get("$filter"), Quick: quick, QuickFilter: quickFilter,
		Filtered: filtered, OrderBy: keep.Get("$orderby"), AddText: "add"}
	if kv.AddVerb != "" {
		cv.AddText = kv.AddVerb
	}
	for _, c := range cols {
		cv.Heads = append(cv.Heads, heading(k.Name, c, keep))
	}
	v := &view{Title: k.Name, User: s.Identity.User, Collection: cv}
	c, err := u.res.Query(r.Context(), s.Identity, k.Name, q)
	if err != nil {
		code := errs.CodeOf(err)
		if code == errs.Internal {
			u.log.Error("web UI query failed", "kind", k.Name, "error", err)
		}
		v.Error = errs.MessageOf(err)
		u.render(w, errs.HTTPStatus(code), "collection", v)
		return
	}
	cv.CanAdd = hasOp(c.Operations, cimi.RelAdd)
	for _, d := range c.Docs {
		cv.Rows = append(cv.Rows, u.collectionRow(d, cols))
	}
	n := len(c.Docs)
	switch {
	case n == 0 && c.Count == 0:
		cv.Range = "0 of 0"
	case n == 0:
		cv.Range = fmt.Sprintf("none of %d at %d", c.Count, first)
	default:
		cv.Range = fmt.Sprintf("%d–%d of %d", first, first+n-1, c.Count)
	}
	size := last - first + 1
	link := func(f, l int) string {
		p := url.Values{}
		for k, vs := range keep {
			p[k] = vs
		}
		p.Set("$first", strconv.Itoa(f))
		p.Set("$last", strconv.Itoa(l))
		return Prefix + k.Name + "?" + p.Encode()
	}
	if first > 1 {
		cv.Previous = link(max(1, first-size), first-1)
	}
	if uint64(last) < c.Count {
		cv.Next = link(last+1, last+size)
	}
	u.render(w, http.StatusOK, "collection", v)
}

// collectionRow lays out one document in cols.
func (u *UI) collectionRow(d api.Document, cols []column) row {
	rw := row{ID: "row-" + localOf(text(d["id"]))}
	for _, c := range cols {
		cl := c.Cell(d)
		rw.Cells = append(rw.Cells, cellView{Text: cl.Text, Link: linkTo(u.res, cl.Ref), Note: cl.Note})
	}
	return rw
}

// resourceView is a resource's page.
type resourceView struct {
	ID         string
	Href       string
	Collection string
	Attrs      []attr
	CanEdit    bool
	CanDelete  bool
	// Delete is the word of the delete button, and its element id.
	Delete string
	// Actions are the buttons of the actions that take no parameter,
	// ActionForms the forms of those that take one.
	Actions     []actionButton
	ActionForms []actionFormView
	// EditForm, for a kind with one, edits the resource on its page; the
	// JSON editor is then its "edit as JSON" link.
	EditForm *formView
	// Links are the kind's links beside the buttons.
	Links []pageLink
}

// attr is one attribute of a resource; Link is set when the value is the
// id of a resource the UI can show, Items when the value is a list, Table
// when it is a list of records. Note is shown small after the value.
type attr struct {
	Name, Value, Link, Note string
	Items                   []item
	Table                   *table
}

// ID is the element id of the attribute's value on the page.
func (a attr) ID() string {
	return "attr-" + strings.ReplaceAll(a.Name, " ", "-")
}

// item is one element of a list value.
type item struct {
	Text, Link string
}

// get reads the resource named by the path.
func (u *UI) get(w http.ResponseWriter, r *http.Request, s api.Session) (api.Kind, string, api.Document, bool) {
	k, ok := u.kind(w, r, s)
	if !ok {
		return k, "", nil, false
	}
	id := k.Name + "/" + r.PathValue("local")
	doc, err := u.res.Get(r.Context(), s.Identity, id)
	if err != nil {
		u.fail(w, r, s, err)
		return k, id, nil, false
	}
	return k, id, offered(u.views[k.Name], s.Identity, doc), true
}

// offered returns doc with the operations its page offers who: those of
// an ended resource (kindView.Ended) lose the actions and the delete, and
// those the kind does not offer who (kindView.Offers) go.
func offered(kv kindView, who cimi.Identity, doc api.Document) api.Document {
	ended := kv.Ended != nil && kv.Ended(doc)
	if !ended && kv.Offers == nil {
		return doc
	}
	var keep []cimi.Operation
	for _, o := range operations(doc) {
		if ended && (o.Rel == cimi.RelDelete || strings.HasPrefix(o.Rel, cimi.ActionURIPrefix)) {
			continue
		}
		if kv.Offers != nil && !kv.Offers(who, doc, o.Rel) {
			continue
		}
		keep = append(keep, o)
	}
	out := make(api.Document, len(doc))
	for a, v := range doc {
		out[a] = v
	}
	out["operations"] = keep
	return out
}

// resource serves a resource page, its JSON, its editor or the
// confirmation of its deletion.
func (u *UI) resource(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	k, id, doc, ok := u.get(w, r, s)
	if !ok {
		return
	}
	ops := operations(doc)
	page := pageOf(id)
	v := &view{Title: id, User: s.Identity.User}
	switch op := r.URL.Query().Get("op"); {
	case r.URL.Query().Get("format") == "json":
		v.JSON, v.Back = pretty(doc), page
		u.render(w, http.StatusOK, "json", v)
	case op == cimi.RelEdit && hasOp(ops, cimi.RelEdit):
		edit := make(api.Document, len(doc))
		for a, val := range doc {
			if a != "operations" {
				edit[a] = val
			}
		}
		v.Title = "Edit " + id
		v.Editor = &editorView{Action: page, Op: cimi.RelEdit, Text: pretty(edit), Back: page, Heading: "Edit " + id}
		u.render(w, http.StatusOK, "editor", v)
	case op == cimi.RelDelete && hasOp(ops, cimi.RelDelete):
		kv := u.views[k.Name]
		c := &confirmView{ID: id, Action: page, Back: page, Verb: cimi.RelDelete, Warning: kv.DeleteWarning}
		if kv.DeleteVerb != "" {
			c.Verb = kv.DeleteVerb
		}
		if c.Warning == "" {
			c.Warning = "This cannot be undone."
		}
		c.Question = capital(c.Verb)
		v.Title = c.Question + " " + id
		v.Confirm = c
		u.render(w, http.StatusOK, "confirm", v)
	case op != "":
		u.fail(w, r, s, errs.Errorf(errs.Forbidden, "You may not %s %s.", op, id))
	default:
		v.Resource = u.resourceModel(r.Context(), s, k, id, doc, ops, nil)
		u.render(w, http.StatusOK, "resource", v)
	}
}

// resourceModel lays out a resource's attributes: those its kind shows
// in words first, then identity, the others by name, the ACL last. The
// form that sent typed (the values of a refused edit or action), when
// set, holds them; the edit form otherwise holds the resource's values.
func (u *UI) resourceModel(ctx context.Context, s api.Session, k api.Kind, id string, doc api.Document, ops []cimi.Operation, typed url.Values) *resourceView {
	kv := u.views[k.Name]
	rv := &resourceView{ID: id, Href: pageOf(id), Collection: Prefix + k.Name,
		CanEdit: hasOp(ops, cimi.RelEdit), CanDelete: hasOp(ops, cimi.RelDelete), Delete: cimi.RelDelete}
	if kv.DeleteVerb != "" {
		rv.Delete = kv.DeleteVerb
	}
	for _, o := range ops {
		verb, ok := strings.CutPrefix(o.Rel, cimi.ActionURIPrefix)
		if _, param := kv.ActionParams[verb]; ok && !param {
			rv.Actions = append(rv.Actions, actionButton{ID: "action-" + verb, Text: verb, Action: verb, Href: rv.Href})
		}
	}
	for _, af := range kv.ActionForms {
		if !hasOp(ops, cimi.ActionURI(af.Action)) {
			continue
		}
		fv := actionFormView{actionForm: af}
		if typed.Get("op") == "action" && typed.Get("action") == af.Action {
			fv.Value = typed.Get(af.Param)
		}
		rv.ActionForms = append(rv.ActionForms, fv)
	}
	if kv.Links != nil {
		rv.Links = kv.Links(u.res, doc)
	}
	if rv.CanEdit && len(kv.Edit) > 0 {
		value := func(name string) string { return text(doc[name]) }
		if typed.Get("op") == cimi.RelEdit {
			value = typed.Get
		}
		rv.EditForm = editForm(formContext{ctx, u.res, s.Identity}, id, kv, value)
	}
	shown := map[string]bool{}
	if kv.Details != nil {
		rows, used := kv.Details(u.res, doc)
		for _, a := range rows {
			if a.Table == nil {
				continue
			}
			for _, tr := range a.Table.Rows {
				if tr.Button != nil {
					tr.Button.Href = rv.Href
				}
			}
		}
		rv.Attrs = append(rv.Attrs, rows...)
		for _, a := range used {
			shown[a] = true
		}
	}
	for _, name := range attrOrder(doc) {
		if shown[name] {
			continue
		}
		a := attr{Name: name, Value: text(doc[name])}
		if s, ok := doc[name].(string); ok && name != "id" {
			a.Link = linkTo(u.res, s)
		}
		rv.Attrs = append(rv.Attrs, a)
	}
	return rv
}

// attrOrder lists a document's attributes in display order, without its
// operations (shown as buttons).
func attrOrder(doc api.Document) []string {
	head := []string{"id", "name", "description", "resourceURI", "created", "updated"}
	var out []string
	for _, a := range head {
		if _, ok := doc[a]; ok {
			out = append(out, a)
		}
	}
	var rest []string
	for a := range doc {
		switch a {
		case "id", "name", "description", "resourceURI", "created", "updated", "acl", "operations":
			continue
		}
		rest = append(rest, a)
	}
	slices.Sort(rest)
	out = append(out, rest...)
	if _, ok := doc["acl"]; ok {
		out = append(out, "acl")
	}
	return out
}

// editorView is the JSON editor, for adding or editing.
type editorView struct {
	Heading string
	Action  string
	Op      string
	Text    string
	Back    string
}

// confirmView asks before a deletion. Verb is the word of the kind's
// deletion ("delete", "kill"), Question the same capitalised, Warning
// what the deletion does.
type confirmView struct {
	ID, Action, Back        string
	Verb, Question, Warning string
}

// readJSON reads the editor's text: it must be one JSON object.
func readJSON(r *http.Request) (string, []byte, error) {
	t := r.PostFormValue("json")
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return t, nil, errs.Errorf(errs.Invalid, "The text is not a JSON object: %v. Fix it and save again.", jsonProblem(err))
	}
	if dec.More() || obj == nil {
		return t, nil, errs.New(errs.Invalid, "The text must be exactly one JSON object, such as {\"name\": \"...\"}. Fix it and save again.")
	}
	return t, []byte(t), nil
}

// jsonProblem describes a JSON syntax error for a person.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at character %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return "it is empty"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "it is a JSON " + te.Value + ", not an object"
	}
	return err.Error()
}

// parseForm reads a POSTed form, reporting a body that is too large. A
// multipart form (a file upload) is read whole into memory: the body is
// bounded by the Handler.
func parseForm(r *http.Request) error {
	err := r.ParseForm()
	if err == nil && isMultipart(r) {
		err = r.ParseMultipartForm(maxFormBytes + formOverhead)
	}
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errs.Errorf(errs.TooLarge, "The form is larger than the %d bytes the server accepts.", mb.Limit)
		}
		return errs.New(errs.Invalid, "The form cannot be read: reload the page and try again.")
	}
	return nil
}

// add serves the POST of the "add" editor: it creates the resource and
// goes to its page (or to its job while the creation goes on).
func (u *UI) add(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	k, ok := u.kind(w, r, s)
	if !ok {
		return
	}
	if err := parseForm(r); err != nil {
		u.fail(w, r, s, err)
		return
	}
	if op := r.PostFormValue("op"); op != cimi.RelAdd {
		u.fail(w, r, s, errs.Errorf(errs.Invalid, "A collection accepts only the \"add\" form, not %q.", op))
		return
	}
	// The create form of a kind sends its fields, the JSON editor "json".
	if _, isJSON := r.PostForm["json"]; !isJSON {
		if kv := u.views[k.Name]; len(kv.Create) > 0 {
			u.addFromForm(w, r, s, k, kv)
			return
		}
	}
	ed := &editorView{Action: Prefix + k.Name, Op: cimi.RelAdd, Back: Prefix + k.Name, Heading: "Add a " + k.Name}
	text, body, err := readJSON(r)
	ed.Text = text
	var o *api.Outcome
	if err == nil {
		o, err = u.res.Create(r.Context(), s.Identity, k.Name, body)
	}
	if err != nil {
		u.editorError(w, s, ed, err)
		return
	}
	http.Redirect(w, r, outcomePage(o, pageOf(o.ID)), http.StatusSeeOther)
}

// editorError shows the editor again with the text as sent and what was
// wrong with it.
func (u *UI) editorError(w http.ResponseWriter, s api.Session, ed *editorView, err error) {
	code := errs.CodeOf(err)
	if code == errs.Internal {
		u.log.Error("web UI write failed", "target", ed.Action, "error", err)
	}
	u.render(w, errs.HTTPStatus(code), "editor", &view{Title: ed.Heading, User: s.Identity.User, Error: errs.MessageOf(err), Editor: ed})
}

// change serves the POSTs of a resource page: edit, delete and actions.
func (u *UI) change(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	k, ok := u.kind(w, r, s)
	if !ok {
		return
	}
	if err := parseForm(r); err != nil {
		u.fail(w, r, s, err)
		return
	}
	id := k.Name + "/" + r.PathValue("local")
	page := pageOf(id)
	switch op := r.PostFormValue("op"); op {
	case cimi.RelEdit:
		// The edit form of a resource page sends its fields, the JSON
		// editor "json".
		if _, isJSON := r.PostForm["json"]; !isJSON {
			if kv := u.views[k.Name]; len(kv.Edit) > 0 {
				u.editFromForm(w, r, s, k, kv, id)
				return
			}
		}
		ed := &editorView{Action: page, Op: cimi.RelEdit, Back: page, Heading: "Edit " + id}
		text, body, err := readJSON(r)
		ed.Text = text
		var o *api.Outcome
		if err == nil {
			o, err = u.res.Edit(r.Context(), s.Identity, id, body, nil)
		}
		if err != nil {
			u.editorError(w, s, ed, err)
			return
		}
		http.Redirect(w, r, outcomePage(o, page), http.StatusSeeOther)
	case cimi.RelDelete:
		o, err := u.res.Delete(r.Context(), s.Identity, id)
		if err != nil {
			// The resource is still there: show it with why.
			u.refused(w, r, s, k, id, err, nil)
			return
		}
		http.Redirect(w, r, outcomePage(o, Prefix+k.Name), http.StatusSeeOther)
	case "action":
		verb := r.PostFormValue("action")
		act := map[string]string{"resourceURI": cimi.DMTFNamespace + "Action", "action": cimi.ActionURI(verb)}
		var err error
		if p, ok := u.views[k.Name].ActionParams[verb]; ok {
			act[p] = strings.TrimSpace(r.PostFormValue(p))
			if act[p] == "" {
				err = errs.Errorf(errs.Invalid, "Give the %s to %s.", p, strings.ReplaceAll(verb, "_", " "))
			}
		}
		var o *api.Outcome
		if err == nil {
			body, _ := json.Marshal(act)
			o, err = u.res.Action(r.Context(), s.Identity, id, body)
		}
		if err != nil {
			// The resource is still there: show it with why.
			u.refused(w, r, s, k, id, err, r.PostForm)
			return
		}
		http.Redirect(w, r, outcomePage(o, page), http.StatusSeeOther)
	default:
		u.fail(w, r, s, errs.Errorf(errs.Invalid, "A resource page accepts the edit, delete and action forms, not %q.", op))
	}
}

// loginView is the login form.
type loginView struct {
	Username string
}

// loginPage serves the login form.
func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	v := &view{Title: "Login", User: s.Identity.User, Login: &loginView{}}
	if r.URL.Query().Get("ended") != "" && s.Identity.User == "" {
		v.Notice = "Your session has ended (it expired, you logged out elsewhere, or your password changed): log in again."
	}
	u.render(w, http.StatusOK, "login", v)
}

// login serves the POST of the login form: on success the session cookie
// is set and the browser goes to the CloudEntryPoint.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(r); err != nil {
		u.fail(w, r, api.Session{}, err)
		return
	}
	c := api.Credentials{Username: r.PostFormValue("username"), Password: r.PostFormValue("password")}
	s, err := u.sess.Login(r.Context(), r, c)
	if err != nil {
		code := errs.CodeOf(err)
		if code == errs.Internal {
			u.log.Error("web UI login failed", "error", err)
		}
		u.render(w, errs.HTTPStatus(code), "login", &view{Title: "Login", Error: errs.MessageOf(err), Login: &loginView{Username: c.Username}})
		return
	}
	u.sess.SetCookie(w, s)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout serves the POST of the logout button: the session is revoked,
// the cookie cleared and the browser goes to the CloudEntryPoint.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	s, err := u.sess.Authenticate(r)
	u.sess.ClearCookie(w)
	// A caller whose token no longer verifies is logged out already.
	if err == nil && s.Token != "" {
		if err := u.sess.Logout(r.Context(), s); err != nil {
			u.fail(w, r, api.Session{}, err)
			return
		}
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// authnView is the caller's authentication.
type authnView struct {
	Identity string
	Roles    []string
	Method   string
	Expires  string
}

// authn serves the authentication page.
func (u *UI) authn(w http.ResponseWriter, r *http.Request) {
	s, ok := u.session(w, r)
	if !ok {
		return
	}
	a := &authnView{Identity: s.Identity.User, Roles: s.Identity.Roles, Method: s.Method}
	if !s.Expires.IsZero() {
		a.Expires = s.Expires.UTC().Format(time.RFC3339) + " (in " + time.Until(s.Expires).Round(time.Second).String() + ")"
	}
	u.render(w, http.StatusOK, "authn", &view{Title: "Authentication", User: s.Identity.User, Authn: a})
}

// operations reads a document's operations, whether they are still Go
// values or already decoded JSON.
func operations(doc api.Document) []cimi.Operation {
	raw, err := json.Marshal(doc["operations"])
	if err != nil {
		return nil
	}
	var ops []cimi.Operation
	_ = json.Unmarshal(raw, &ops) // anything else offers no operation
	return ops
}

// hasOp reports whether ops offers rel.
func hasOp(ops []cimi.Operation, rel string) bool {
	for _, o := range ops {
		if o.Rel == rel {
			return true
		}
	}
	return false
}

// text shows an attribute value: strings as they are, other scalars as
// JSON writes them, nested values as compact JSON.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the template escapes; keep "<" readable
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// pretty writes a document as indented JSON for people.
func pretty(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
