package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

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
	// fieldSelect is a select box of the options Choices gives when the
	// page is laid out.
	fieldSelect fieldType = "select"
	// fieldPairs is a textarea of KEY=value lines, sent as a list of
	// {"key", "value"} objects.
	fieldPairs fieldType = "pairs"
	// fieldFile is a file the browser uploads, sent as a string holding
	// its bytes (UTF-8 text only) of at most MaxLen bytes; Accept lists
	// the file types the browser offers to choose.
	fieldFile fieldType = "file"
)

// field is one input of a create or edit form. Name is the form field's
// name and, unless Attr says otherwise, the attribute of the JSON body it
// fills.
type field struct {
	Name, Label string
	Type        fieldType
	// Attr is the attribute of the body when it is not Name.
	Attr string
	// List sends the value as a list of one element: the create body of a
	// machine takes lists of disks, the form offers one of each.
	List bool
	// Trim drops the spaces around the value: identifiers and keys pasted
	// from elsewhere often bring some.
	Trim bool
	// Min and Max bound a number; the server checks again.
	Min, Max int
	Required bool
	// MaxLen bounds text, as a hint to the browser; the server checks.
	MaxLen int
	// Placeholder shows in an empty text input, as an example.
	Placeholder string
	// Options are the radio buttons of a choice.
	Options []string
	// Choices gives the options of a select box when the page is laid
	// out, as who may read them.
	Choices func(ctx context.Context, res api.Resources, who cimi.Identity) []option
	// Default is the option a select box shows chosen when the resource
	// or the person chose none.
	Default string
	// Accept is the accept attribute of a file input.
	Accept string
}

// option is one choice of a select box: the value sent and the words
// shown.
type option struct {
	Value, Label string
}

// fieldView is a field on a page with its value.
type fieldView struct {
	ID, Name, Label, Value string
	Type                   fieldType
	Min, Max, MaxLen       int
	Required               bool
	Placeholder            string
	Options                []optionView
	Accept                 string
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
	// Multipart forms upload a file.
	Multipart bool
}

// formContext is what laying out a form may need beyond its values: the
// options of a select box are read as the caller, within the request (a
// formContext lives for one request).
type formContext struct {
	ctx context.Context
	res api.Resources
	who cimi.Identity
}

// newForm lays out fields for a page, each with value(name), or for a
// choice with no value its first option, for a select box its Default.
func newForm(fc formContext, id string, fs []field, value func(name string) string) []fieldView {
	out := make([]fieldView, 0, len(fs))
	for _, f := range fs {
		fv := fieldView{ID: id + "-" + f.Name, Name: f.Name, Label: f.Label, Value: value(f.Name), Type: f.Type,
			Min: f.Min, Max: f.Max, MaxLen: f.MaxLen, Required: f.Required, Placeholder: f.Placeholder, Accept: f.Accept}
		switch f.Type {
		case fieldChoice:
			if fv.Value == "" && len(f.Options) > 0 {
				fv.Value = f.Options[0]
			}
			for _, o := range f.Options {
				fv.Options = append(fv.Options, optionView{ID: fv.ID + "-" + strings.ToLower(o), Value: o, Checked: o == fv.Value})
			}
		case fieldSelect:
			if fv.Value == "" {
				fv.Value = f.Default
			}
			if f.Choices != nil {
				for _, o := range f.Choices(fc.ctx, fc.res, fc.who) {
					fv.Options = append(fv.Options, optionView{Value: o.Value, Label: o.Label, Checked: o.Value == fv.Value})
				}
			}
		}
		out = append(out, fv)
	}
	return out
}

// formBody makes the JSON object a form sends: numbers as JSON numbers,
// pairs as a list of {"key", "value"}, the rest as strings, each in a list
// of one for a List field. Empty values are left out when create is true,
// so that the server applies its defaults; an edit sends them, to clear
// the attribute.
func formBody(fs []field, form url.Values, create bool) ([]byte, error) {
	body := make(map[string]any, len(fs))
	for _, f := range fs {
		attr := f.Name
		if f.Attr != "" {
			attr = f.Attr
		}
		v := form.Get(f.Name)
		if f.Type == fieldTextarea || f.Type == fieldPairs {
			// Browsers send the line breaks of a textarea as CRLF.
			v = strings.ReplaceAll(v, "\r\n", "\n")
		}
		if f.Trim {
			v = strings.TrimSpace(v)
		}
		if strings.TrimSpace(v) == "" {
			if !create {
				body[attr] = ""
			}
			continue
		}
		var val any = v
		switch f.Type {
		case fieldNumber:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, notWholeNumber(f, v)
			}
			val = n
		case fieldPairs:
			ps, err := parsePairs(f.Label, v)
			if err != nil {
				return nil, err
			}
			val = ps
		}
		if f.List {
			val = []any{val}
		}
		body[attr] = val
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the body is JSON for the server, not HTML
	if err := enc.Encode(body); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "The form could not be sent.")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// notWholeNumber says why v is not a number field f accepts.
func notWholeNumber(f field, v string) error {
	switch {
	case f.Max > 0:
		return errs.Errorf(errs.Invalid, "The %s must be a whole number from %d to %d, not %q.", f.Label, f.Min, f.Max, v)
	case f.Min > 0:
		return errs.Errorf(errs.Invalid, "The %s must be a whole number of at least %d, not %q.", f.Label, f.Min, v)
	}
	return errs.Errorf(errs.Invalid, "The %s must be a whole number, not %q.", f.Label, v)
}

// pair is one KEY=value line of a pairs field, as the body sends it.
type pair struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// parsePairs reads KEY=value lines, as stratus-run-instance --context
// takes them: blank lines are skipped, the key loses the spaces around
// it, the value is kept as typed (it may hold "=" and spaces) but for the
// carriage returns ending its line. The server checks the keys'
// characters.
func parsePairs(label, s string) ([]pair, error) {
	var out []pair
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, errs.Errorf(errs.Invalid, "Line %d of the %s, %q, is not KEY=value: write one pair a line, such as MY_KEY=some value.", i+1, label, shorten(line))
		}
		out = append(out, pair{Key: k, Value: v})
	}
	return out, nil
}

// capital returns s with its first letter (ASCII) in upper case.
func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// shorten cuts a long text for a message.
func shorten(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

// createForm is the create form of kind k, filled with value.
func createForm(fc formContext, k api.Kind, kv kindView, value func(string) string) *formView {
	heading, submit := "Create a "+k.Name, "create"
	if kv.AddVerb != "" {
		heading, submit = capital(kv.AddVerb)+" a "+k.Name, kv.AddVerb
	}
	fv := &formView{ID: "create", Heading: heading, Action: Prefix + k.Name, Op: cimi.RelAdd,
		Fields: newForm(fc, "create", kv.Create, value), Submit: submit, Back: Prefix + k.Name,
		JSONHref: Prefix + k.Name + "?op=add&editor=json"}
	for _, f := range kv.Create {
		fv.Multipart = fv.Multipart || f.Type == fieldFile
	}
	return fv
}

// editForm is the edit form of resource id, filled with value.
func editForm(fc formContext, id string, kv kindView, value func(string) string) *formView {
	return &formView{ID: "edit", Heading: "Edit", Action: pageOf(id), Op: cimi.RelEdit,
		Fields: newForm(fc, "edit", kv.Edit, value), Submit: "save", Back: pageOf(id)}
}

// addFromForm serves the POST of a create form: it creates the resource
// and goes to its page (or its job while the creation goes on); refused,
// it shows the form again with the values as typed and why.
func (u *UI) addFromForm(w http.ResponseWriter, r *http.Request, s api.Session, k api.Kind, kv kindView) {
	form, err := withFiles(r, kv.Create)
	var body []byte
	if err == nil {
		body, err = formBody(kv.Create, form, true)
	}
	var o *api.Outcome
	if err == nil {
		o, err = u.res.Create(r.Context(), s.Identity, k.Name, body)
	}
	if err != nil {
		code := errs.CodeOf(err)
		if code == errs.Internal {
			u.log.Error("web UI create failed", "kind", k.Name, "error", err)
		}
		fv := createForm(formContext{r.Context(), u.res, s.Identity}, k, kv, r.PostForm.Get)
		u.render(w, errs.HTTPStatus(code), "form", &view{Title: fv.Heading, User: s.Identity.User, Error: errs.MessageOf(err), Form: fv})
		return
	}
	http.Redirect(w, r, outcomePage(o, pageOf(o.ID)), http.StatusSeeOther)
}

// withFiles returns the values of a form with the content of each file
// field as its value. A file too large, or not UTF-8 text, is refused: it
// could not travel in a JSON string unchanged.
func withFiles(r *http.Request, fs []field) (url.Values, error) {
	form := r.PostForm
	for _, f := range fs {
		if f.Type != fieldFile {
			continue
		}
		if r.MultipartForm == nil || len(r.MultipartForm.File[f.Name]) == 0 {
			continue // an empty value: the owner says what is missing
		}
		fh := r.MultipartForm.File[f.Name][0]
		if f.MaxLen > 0 && fh.Size > int64(f.MaxLen) {
			return nil, errs.Errorf(errs.TooLarge, "The file %s is %d bytes; the %s may have at most %d bytes.", quoteName(fh.Filename), fh.Size, f.Label, f.MaxLen)
		}
		file, err := fh.Open()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "The uploaded file cannot be read: choose it again")
		}
		data, err := io.ReadAll(file)
		file.Close()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "The uploaded file cannot be read: choose it again")
		}
		if !utf8.Valid(data) {
			return nil, errs.Errorf(errs.Invalid, "The file %s is not UTF-8 text, which the %s must be.", quoteName(fh.Filename), f.Label)
		}
		form = cloneValues(form)
		form.Set(f.Name, string(data))
	}
	return form, nil
}

// cloneValues copies form values, so that filling in a file's content
// leaves the request's own values as the browser sent them.
func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// quoteName quotes a file name for a message, shortened.
func quoteName(s string) string {
	return strconv.Quote(shorten(s))
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
// refused, the form that sent it holding what was typed (typed, when not
// nil).
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
	doc = offered(u.views[k.Name], s.Identity, doc)
	v := &view{Title: id, User: s.Identity.User, Error: errs.MessageOf(err)}
	v.Resource = u.resourceModel(r.Context(), s, k, id, doc, operations(doc), typed)
	u.render(w, errs.HTTPStatus(code), "resource", v)
}
