package webui

import (
	"fmt"
	"net/url"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/services/cimi/internal/api"
)

// kindView is how the UI shows one kind beyond the generic pages. A kind
// absent from the table, or a zero field, gets the generic page: a
// collection of id, name, description, a few known attributes and
// updated; the JSON editor to add and edit; every attribute by name.
type kindView struct {
	// Columns of the collection page, the first holding the link to
	// each resource.
	Columns []column
	// Quick are the quick filters above the collection: each one chosen
	// adds attr = 'value' to the $filter typed beside them.
	Quick []quickFilter
	// Create are the inputs of the create form, which replaces the JSON
	// editor (still reachable) on the collection's "add" page.
	Create []field
	// Edit are the attributes the edit form of a resource page changes,
	// sent as a PUT with $select of exactly them: attributes the form
	// does not show cannot be lost or changed by mistake.
	Edit []field
	// Details lays out the attributes a resource page shows first, in
	// words, and names the attributes it used; the others follow as they
	// are. The document holds its operations, for buttons about one row
	// of a table (detach this disk).
	Details func(res api.Resources, doc api.Document) (rows []attr, used []string)
	// AddVerb and DeleteVerb are the words of the kind's pages for
	// creating and deleting when the guide has its own ("run", "kill");
	// "" keeps "create" and "delete".
	AddVerb, DeleteVerb string
	// DeleteWarning says on the confirmation page what the deletion does;
	// "" for "This cannot be undone."
	DeleteWarning string
	// ActionParams are the actions whose body carries one attribute
	// besides "action", by action: the form field of the same name fills
	// it. They get no plain button; ActionForms or Details offer them.
	ActionParams map[string]string
	// ActionForms are small forms of a resource page for actions taking a
	// parameter the person types, each shown when the action is offered.
	ActionForms []actionForm
	// Ended reports whether a resource is over and kept only to be read
	// (a machine in Done). Its page then offers no action and no delete,
	// whatever the operations list: the gateway lists every action of the
	// kind, and on such a resource each would only be refused.
	Ended func(doc api.Document) bool
	// Offers, when set, says whether the page offers who the operation
	// rel on doc: the operations list says what the ACL allows, and a
	// kind's owner may refuse more (a signed Marketplace entry is not
	// edited by its uploader). nil offers every listed operation.
	Offers func(who cimi.Identity, doc api.Document, rel string) bool
	// Links are links of a resource page beside its buttons, such as the
	// downloads of a Marketplace entry.
	Links func(res api.Resources, doc api.Document) []pageLink
	// DefaultOrder is the $orderby of a collection page that asks for
	// none; "" leaves the owner's order.
	DefaultOrder string
}

// pageLink is a link of a resource page; ID is its element id.
type pageLink struct {
	ID, Text, Href string
}

// kindViews is the table of the kinds with pages of their own.
func kindViews() map[string]kindView {
	return map[string]kindView{"Volume": volumeView(), "Machine": machineView(), "MachineImage": machineImageView()}
}

// actionForm is a form of a resource page posting the action Action with
// the typed value as its attribute Param. Its elements are ID + "-form",
// the input ID + "-" + Param and the button ID + "-submit".
type actionForm struct {
	ID, Action, Param  string
	Label, Placeholder string
	Submit             string
}

// actionFormView is an action form on a page, with the value typed.
type actionFormView struct {
	actionForm
	Value string
}

// actionButton posts the action Action to the resource page Href, with
// Param = Value when Param is set; ID is the button's element id.
type actionButton struct {
	ID, Text, Action, Param, Value string
	// Href is filled by the resource page: Details need not know it.
	Href string
}

// table is a small table in the value of an attribute, such as the disks
// of a machine. When Actions is set, the last column holds each row's
// button, if any.
type table struct {
	Heads   []string
	Rows    []tableRow
	Actions bool
}

// tableRow is one row of a table; ID is its element id.
type tableRow struct {
	ID     string
	Cells  []cellView
	Button *actionButton
}

// column is one column of a collection page.
type column struct {
	Head string
	// Attr is the attribute the column's heading orders by; "" when it
	// cannot order.
	Attr string
	Cell func(d api.Document) cell
}

// cell is what a column shows of a document; Ref, when set, is the id
// of a resource the text links to (if the UI knows its kind); Note is
// shown small after the text.
type cell struct {
	Text, Ref, Note string
}

// genericColumns are the columns of a kind without columns of its own.
func genericColumns(kind string) []column {
	cols := []column{idColumn("id"), attrColumn("name"), attrColumn("description")}
	for _, a := range extraColumns(kind) {
		cols = append(cols, attrColumn(a))
	}
	return append(cols, attrColumn("updated"))
}

// idColumn shows the local part of the id, linked to the resource.
func idColumn(head string) column {
	return column{Head: head, Attr: "id", Cell: func(d api.Document) cell {
		id := text(d["id"])
		return cell{Text: localOf(id), Ref: id}
	}}
}

// attrColumn shows an attribute as it is.
func attrColumn(a string) column {
	return column{Head: a, Attr: a, Cell: func(d api.Document) cell { return cell{Text: text(d[a])} }}
}

// localOf returns the part of an id after the kind, or the id when it is
// not one.
func localOf(id string) string {
	if _, local, err := cimi.SplitID(id); err == nil {
		return local
	}
	return id
}

// quickFilter is a choice above a collection that narrows it to the
// resources whose attribute Name equals the chosen value.
type quickFilter struct {
	// Name is the attribute, and the query parameter of the page.
	Name  string
	Label string
	// Attr is the attribute when it is not Name, as a path such as
	// "endorser/email".
	Attr string
	// Options are the values of a select box; nil makes a text box.
	Options []string
	// Default is the value of a page that does not name the parameter
	// at all; choosing "any" (the empty value) still shows everything.
	Default string
}

// quickView is a quick filter on the page, with its current value.
type quickView struct {
	ID, Name, Label, Value string
	Text                   bool
	Options                []optionView
	// Default is the filter's default value; a value other than it makes
	// the page a filtered one.
	Default string
}

// optionView is one choice of a select box or of radio buttons; Label,
// when set, is what a select box shows of it.
type optionView struct {
	ID, Value, Label string
	Checked          bool
}

// quickFilters reads the quick filters of a page request: their views,
// and the $filter they make ("" when none is chosen). Values are quoted
// by the filter grammar's own writer, so no value, quotes included, can
// change the expression's structure.
func quickFilters(qs []quickFilter, in url.Values) ([]quickView, string) {
	var views []quickView
	var terms []cimi.Expr
	for _, q := range qs {
		v := in.Get(q.Name)
		if _, given := in[q.Name]; !given {
			v = q.Default
		}
		qv := quickView{ID: "quick-" + q.Name, Name: q.Name, Label: q.Label, Value: v, Text: q.Options == nil, Default: q.Default}
		for _, o := range q.Options {
			qv.Options = append(qv.Options, optionView{Value: o, Checked: o == v})
		}
		views = append(views, qv)
		path := []string{q.Name}
		if q.Attr != "" {
			path = strings.Split(q.Attr, "/")
		}
		if v != "" {
			terms = append(terms, &cimi.Comparison{Attr: cimi.Attribute{Path: path}, Op: cimi.Eq,
				Value: cimi.Value{Kind: cimi.String, Str: v}})
		}
	}
	if len(terms) == 0 {
		return views, ""
	}
	return views, cimi.FormatFilter(&cimi.Logical{Op: cimi.And, Terms: terms})
}

// head is a column heading; Href orders the collection by the column
// (or reverses the order), Arrow shows the current order.
type head struct {
	Text, Href, Arrow string
}

// heading lays out the heading of c on a page asked for with keep.
func heading(kind string, c column, keep url.Values) head {
	h := head{Text: c.Head}
	if c.Attr == "" {
		return h
	}
	next := c.Attr
	switch keep.Get("$orderby") {
	case c.Attr, c.Attr + ":asc":
		h.Arrow, next = " ▲", c.Attr+":desc"
	case c.Attr + ":desc":
		h.Arrow = " ▼"
	}
	p := url.Values{}
	for k, vs := range keep {
		p[k] = vs
	}
	p.Set("$orderby", next)
	h.Href = Prefix + kind + "?" + p.Encode()
	return h
}

// Volume: the persistent disks of pdisk.

// volumeView shows volumes as the guide's persistent disks: tag, size in
// GiB, visibility, owner, type, state and where each is mounted.
func volumeView() kindView {
	// The values pdisk gives these attributes (services/pdisk/internal/volume).
	visibilities := []string{"PRIVATE", "PUBLIC"}
	states := []string{"DOWNLOADING", "AVAILABLE", "IN_USE", "QUARANTINED", "FAILED", "ERROR"}
	types := []string{"DATA_IMAGE_RAW_READ_WRITE", "DATA_IMAGE_RAW_READONLY", "DATA_IMAGE_ORIGIN",
		"DATA_IMAGE_LIVE", "MACHINE_IMAGE_ORIGIN", "MACHINE_IMAGE_LIVE"}
	desc := field{Name: "description", Label: "description", Type: fieldTextarea, MaxLen: 4096}
	tag := field{Name: "tag", Label: "tag", Type: fieldText, MaxLen: 256}
	vis := field{Name: "visibility", Label: "visibility", Type: fieldChoice, Options: visibilities}
	return kindView{
		Columns: []column{
			{Head: "uuid", Attr: "uuid", Cell: func(d api.Document) cell {
				id := text(d["id"])
				u := text(d["uuid"])
				if u == "" {
					u = localOf(id)
				}
				return cell{Text: u, Ref: id}
			}},
			attrColumn("tag"),
			{Head: "size (GiB)", Attr: "size", Cell: func(d api.Document) cell { return cell{Text: text(d["size"])} }},
			attrColumn("visibility"),
			attrColumn("owner"),
			attrColumn("type"),
			attrColumn("state"),
			{Head: "mounted on", Attr: "machine", Cell: mountedOn},
			attrColumn("created"),
		},
		Quick: []quickFilter{
			{Name: "visibility", Label: "visibility", Options: visibilities},
			{Name: "state", Label: "state", Options: states},
			{Name: "type", Label: "type", Options: types},
			{Name: "tag", Label: "tag"},
		},
		Create: []field{
			{Name: "size", Label: "size (GiB)", Type: fieldNumber, Min: 1, Max: 1024, Required: true},
			tag, desc, vis,
		},
		Edit:    []field{tag, desc, vis},
		Details: volumeDetails,
	}
}

// mountedOn says which machine holds a volume and as which device, "—"
// when none does.
func mountedOn(d api.Document) cell {
	m := text(d["machine"])
	if m == "" {
		return cell{Text: "—"}
	}
	c := cell{Text: strings.TrimPrefix(m, "Machine/"), Ref: m}
	if dev := text(d["device"]); dev != "" {
		c.Text += " (" + dev + ")"
	}
	// A read-only disk may be held by several machines; machine names
	// the first.
	if as, ok := d["attachments"].([]any); ok && len(as) > 1 {
		c.Text += fmt.Sprintf(" and %d more", len(as)-1)
	}
	return c
}

// volumeDetails lays out what a person looks for on a disk's page.
func volumeDetails(res api.Resources, d api.Document) ([]attr, []string) {
	var rows []attr
	add := func(name, value string) {
		rows = append(rows, attr{Name: name, Value: value})
	}
	add("uuid", text(d["uuid"]))
	add("tag", text(d["tag"]))
	add("description", text(d["description"]))
	size := text(d["size"])
	if size != "" {
		size += " GiB"
	}
	add("size", size)
	add("visibility", text(d["visibility"]))
	add("owner", text(d["owner"]))
	add("type", text(d["type"]))
	add("state", text(d["state"]))
	if m := text(d["stateMessage"]); m != "" {
		add("state message", m)
	}
	mc := mountedOn(d)
	rows = append(rows, attr{Name: "mounted on", Value: mc.Text, Link: linkTo(res, mc.Ref)})
	at := attr{Name: "attachments", Value: "none"}
	as, _ := d["attachments"].([]any)
	for _, a := range as {
		m, _ := a.(map[string]any)
		machine := text(m["machine"])
		it := item{Text: strings.TrimPrefix(machine, "Machine/"), Link: linkTo(res, machine)}
		if dev := text(m["device"]); dev != "" {
			it.Text += " as " + dev
		}
		if hot, _ := m["hotPlugged"].(bool); hot {
			it.Text += ", hot-plugged"
		} else {
			it.Text += ", attached at launch"
		}
		if when := text(m["attached"]); when != "" {
			it.Text += ", since " + when
		}
		at.Items = append(at.Items, it)
	}
	if len(at.Items) > 0 {
		at.Value = ""
	}
	rows = append(rows, at)
	if q := text(d["quarantine"]); q != "" {
		add("quarantine", q+" (the disk is deleted then)")
	}
	return rows, []string{"uuid", "tag", "description", "size", "visibility", "owner", "type", "state",
		"stateMessage", "machine", "device", "attachments", "quarantine"}
}

// linkTo returns the page of the resource id when the UI knows its kind.
func linkTo(res api.Resources, id string) string {
	if id == "" {
		return ""
	}
	kind, _, err := cimi.SplitID(id)
	if err != nil {
		return ""
	}
	if _, known := res.Kind(kind); !known {
		return ""
	}
	return pageOf(id)
}
