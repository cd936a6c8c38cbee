package webui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// fieldType says which input a field is.
type fieldType string

// The inputs a form can hold.
const (
	fieldNumber   fieldType = "number"
	fieldText     fieldType = "text"
	fieldTextarea fieldType = "textarea"
	// fieldChoice is a set of radio buttons, the first checked unless the
	// resource or the person chose another.
	fieldChoice fieldType = "choice"
)

// field is one input of a create or edit form. Name is both the form
// field's name and the attribute of the JSON body it fills.
type field struct {
	Name, Label string
	Type        fieldType
	// Min and Max bound a number; the server checks again.
	Min, Max int
	Required bool
	// MaxLen bounds text, as a hint to the browser; the server checks.
	MaxLen  int
	Options []string
}

// fieldView is a field on a page with its value.
type fieldView struct {
	ID, Name, Label, Value string
	Type                   fieldType
	Min, Max, MaxLen       int
	Required               bool
	Options                []optionView
}

// formView is a form of fields: the create form of a collection or the
// edit form of a resource page.
type formView struct {
	// ID names the form's elements: the form is ID + "-form", its inputs
	// ID + "-" + name (radio buttons + "-" + their lower-case value), its
	// button ID + "-submit".
	ID      string
	Heading string
	Action  string
	Op      string
	Fields  []fieldView
	// Submit is the button's text.
	Submit string
	Back   string
	// JSONHref leads to the JSON editor doing the same, for attributes
	// the form does not show.
	JSONHref string
}

// newForm lays out fields for a page, each with value(name), or for a
// choice with no value its first option.
func newForm(id string, fs []field, value func(name string) string) []fieldView {
	out := make([]fieldView, 0, len(fs))
	for _, f := range fs {
		fv := fieldView{ID: id + "-" + f.Name, Name: f.Name, Label: f.Label, Value: value(f.Name), Type: f.Type,
			Min: f.Min, Max: f.Max, MaxLen: f.MaxLen, Required: f.Required}
		if f.Type == fieldChoice {
			if fv.Value == "" && len(f.Options) > 0 {
				fv.Value = f.Options[0]
			}
			for _, o := range f.Options {
				fv.Options = append(fv.Options, optionView{ID: fv.ID + "-" + strings.ToLower(o), Value: o, Checked: o == fv.Value})
			}
		}
		out = append(out, fv)
	}
	return out
}

// formBody makes the JSON object a form sends: numbers as JSON numbers,
// the rest as strings. Empty values are left out when create is true, so
// that the server applies its defaults; an edit sends them, to clear the
// attribute.
func formBody(fs []field, form url.Values, create bool) ([]byte, error) {
	body := make(map[string]any, len(fs))
	for _, f := range fs {
		v := form.Get(f.Name)
		if strings.TrimSpace(v) == "" {
			if !create {
				body[f.Name] = ""
			}
			continue
		}
		if f.Type == fieldNumber {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, errs.Errorf(errs.Invalid, "The %s must be a whole number from %d to %d, not %q.", f.Label, f.Min, f.Max, v)
			}
			body[f.Name] = n
			continue
		}
		body[f.Name] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the body is JSON for the server, not HTML
	if err := enc.Encode(body); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "The form could not be sent.")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// createForm is the create form of kind k, filled with value.
func createForm(k api.Kind, kv kindView, value func(string) string) *formView {
	return &formView{ID: "create", Heading: "Create a " + k.Name, Action: Prefix + k.Name, Op: cimi.RelAdd,
		Fields: newForm("create", kv.Create, value), Submit: "create", Back: Prefix + k.Name,
		JSONHref: Prefix + k.Name + "?op=add&editor=json"}
}

// editForm is the edit form of resource id, filled with value.
func editForm(id string, kv kindView, value func(string) string) *formView {
	return &formView{ID: "edit", Heading: "Edit", Action: pageOf(id), Op: cimi.RelEdit,
		Fields: newForm("edit", kv.Edit, value), Submit: "save", Back: pageOf(id)}
}

// addFromForm serves the POST of a create form: it creates the resource
// and goes to its page (or its job while the creation goes on); refused,
// it shows the form again with the values as typed and why.
func (u *UI) addFromForm(w http.ResponseWriter, r *http.Request, s api.Session, k api.Kind, kv kindView) {
	body, err := formBody(kv.Create, r.PostForm, true)
	var o *api.Outcome
	if err == nil {
		o, err = u.res.Create(r.Context(), s.Identity, k.Name, body)
	}
	if err != nil {
		code := errs.CodeOf(err)
		if code == errs.Internal {
			u.log.Error("web UI create failed", "kind", k.Name, "error", err)
		}
		fv := createForm(k, kv, r.PostForm.Get)
		u.render(w, errs.HTTPStatus(code), "form", &view{Title: fv.Heading, User: s.Identity.User, Error: errs.MessageOf(err), Form: fv})
		return
	}
	http.Redirect(w, r, outcomePage(o, pageOf(o.ID)), http.StatusSeeOther)
}

// editFromForm serves the POST of the edit form of a resource page: a PUT
// of the form's attributes only.
func (u *UI) editFromForm(w http.ResponseWriter, r *http.Request, s api.Session, k api.Kind, kv kindView, id string) {
	body, err := formBody(kv.Edit, r.PostForm, false)
	var o *api.Outcome
	if err == nil {
		selects := make([]string, 0, len(kv.Edit))
		for _, f := range kv.Edit {
			selects = append(selects, f.Name)
		}
		o, err = u.res.Edit(r.Context(), s.Identity, id, body, selects)
	}
	if err != nil {
		u.refused(w, r, s, k, id, err, r.PostForm)
		return
	}
	http.Redirect(w, r, outcomePage(o, pageOf(id)), http.StatusSeeOther)
}

// refused shows the resource page again with why a change of it was
// refused, its edit form holding what was typed (typed, when not nil).
// When the resource cannot be read any more, the error page says why the
// change was refused.
func (u *UI) refused(w http.ResponseWriter, r *http.Request, s api.Session, k api.Kind, id string, err error, typed url.Values) {
	code := errs.CodeOf(err)
	if code == errs.Internal {
		u.log.Error("web UI write failed", "id", id, "error", err)
	}
	doc, gerr := u.res.Get(r.Context(), s.Identity, id)
	if gerr != nil {
		u.fail(w, r, s, err)
		return
	}
	v := &view{Title: id, User: s.Identity.User, Error: errs.MessageOf(err)}
	v.Resource = u.resourceModel(k, id, doc, operations(doc), typed)
	u.render(w, errs.HTTPStatus(code), "resource", v)
}
