package webui

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/services/cimi/internal/api"
)

// MachineImage: the entries of the Appliance Marketplace
// (services/marketplace/CONTRACT.md), signed metadata of images.

// MaxMetadataBytes is the size of the largest Marketplace entry (the
// marketplace's document-size rule): the most the upload form and the
// gateway's upload route pass on.
const MaxMetadataBytes = 1 << 20

// MetadataPrefix is where the gateway serves the Marketplace's REST API.
const MetadataPrefix = "/marketplace/metadata"

// MetadataPath is the REST address of the entries of identifier: of one
// endorser when email is set, and of one endorsement when endorsed is
// set too. Each part is one path segment, escaped.
func MetadataPath(identifier, email, endorsed string) string {
	p := MetadataPrefix + "/" + url.PathEscape(identifier)
	if email != "" {
		p += "/" + url.PathEscape(email)
		if endorsed != "" {
			p += "/" + url.PathEscape(endorsed)
		}
	}
	return p
}

// The statuses of an entry, as the marketplace computes them when it is
// read.
const (
	statusValid      = "valid"
	statusExpired    = "expired"
	statusDeprecated = "deprecated"
	statusDraft      = "draft"
)

// machineImageView shows the Marketplace as a catalogue: each entry's
// identifier, title, endorser, system, tag, dates and status, searched by
// endorser, system, tag and status (valid ones unless the person asks
// otherwise), newest endorsement first. An entry's page shows what its
// endorser signed and what became of it, links to its XML and JSON and to
// the form running a machine from it, and to its uploader a form to
// deprecate it. Entries are uploaded as files: the signed XML that
// `stratus sign-metadata` writes.
func machineImageView() kindView {
	return kindView{
		Columns: []column{
			{Head: "identifier", Attr: "identifier", Cell: func(d api.Document) cell {
				return cell{Text: text(d["identifier"]), Ref: text(d["id"])}
			}},
			{Head: "title", Attr: "name", Cell: func(d api.Document) cell { return cell{Text: text(d["name"])} }},
			{Head: "endorser", Attr: "endorser/email", Cell: func(d api.Document) cell { return cell{Text: endorserEmail(d)} }},
			attrColumn("os"),
			{Head: "os version", Attr: "osVersion", Cell: func(d api.Document) cell { return cell{Text: text(d["osVersion"])} }},
			{Head: "arch", Attr: "osArch", Cell: func(d api.Document) cell { return cell{Text: text(d["osArch"])} }},
			attrColumn("tag"),
			attrColumn("endorsed"),
			attrColumn("valid"),
			// The marketplace computes the status when it reads an entry:
			// it cannot order a query.
			{Head: "status", Cell: func(d api.Document) cell { return cell{Text: text(d["status"])} }},
		},
		Quick: []quickFilter{
			{Name: "email", Attr: "endorser/email", Label: "endorser"},
			{Name: "os", Label: "os"},
			{Name: "tag", Label: "tag"},
			{Name: "identifier", Label: "identifier"},
			{Name: "status", Label: "status", Options: []string{statusValid, statusExpired, statusDeprecated, statusDraft},
				Default: statusValid},
		},
		DefaultOrder: "endorsed:desc",
		Create: []field{{Name: "file", Attr: "metadata", Label: "signed entry", Type: fieldFile, Required: true,
			MaxLen: MaxMetadataBytes, Accept: ".xml,application/xml,text/xml"}},
		AddVerb:      "upload",
		Details:      imageDetails,
		Links:        imageLinks,
		Offers:       imageOffers,
		ActionParams: map[string]string{"deprecate": "reason"},
		ActionForms: []actionForm{{ID: "deprecate", Action: "deprecate", Param: "reason", Label: "deprecate, because",
			Placeholder: "why the image should no longer be used", Submit: "deprecate"}},
		DeleteWarning: "The entry leaves the Marketplace and its history. This cannot be undone.",
	}
}

// imageOffers keeps what the marketplace would refuse off an entry's
// page: a signed entry is changed and deleted by administrators only, and
// deprecated once; a draft is its author's to change or delete, not to
// deprecate.
func imageOffers(who cimi.Identity, d api.Document, rel string) bool {
	draft, _ := d["draft"].(bool)
	switch rel {
	case cimi.RelEdit, cimi.RelDelete:
		return draft || who.IsAdmin()
	case cimi.ActionURI("deprecate"):
		return !draft && text(d["deprecated"]) == ""
	}
	return true
}

// endorserEmail is the e-mail of an entry's endorser.
func endorserEmail(d api.Document) string {
	e, _ := d["endorser"].(map[string]any)
	return text(e["email"])
}

// imageLinks are the downloads of an entry (its XML exactly as signed, and
// its JSON, from the REST API) and the form running a machine from it.
func imageLinks(res api.Resources, d api.Document) []pageLink {
	var links []pageLink
	if p := entryPath(d); p != "" {
		status := "all"
		if draft, _ := d["draft"].(bool); draft {
			status = statusDraft
		}
		links = append(links,
			pageLink{ID: "entry-xml", Text: "XML", Href: p + "?" + url.Values{"format": {"xml"}, "status": {status}}.Encode()},
			pageLink{ID: "entry-json", Text: "JSON", Href: p + "?" + url.Values{"format": {"json"}, "status": {status}}.Encode()})
	}
	if _, ok := res.Kind("Machine"); ok && text(d["identifier"]) != "" {
		links = append(links, pageLink{ID: "run-machine", Text: "run a machine from it",
			Href: Prefix + "Machine?" + url.Values{"op": {cimi.RelAdd}, "image": {text(d["identifier"])}}.Encode()})
	}
	return links
}

// entryPath is the REST address of the entry d: identifier, endorser and
// endorsement, or for a draft (not endorsed) its author's newest draft of
// the identifier; "" when d lacks them.
func entryPath(d api.Document) string {
	id, email, endorsed := text(d["identifier"]), endorserEmail(d), text(d["endorsed"])
	if draft, _ := d["draft"].(bool); draft {
		endorsed = ""
	}
	if id == "" || email == "" || (endorsed == "" && d["draft"] != true) {
		return ""
	}
	return MetadataPath(id, email, endorsed)
}

// imageDetails lays out what a person looks for on an entry's page.
func imageDetails(res api.Resources, d api.Document) ([]attr, []string) {
	var rows []attr
	add := func(name, value string) {
		rows = append(rows, attr{Name: name, Value: value})
	}
	add("identifier", text(d["identifier"]))
	add("title", text(d["name"]))
	if s := text(d["description"]); s != "" {
		add("description", s)
	}
	add("status", text(d["status"]))
	if reason := text(d["deprecated"]); reason != "" {
		var by []string
		if who := text(d["deprecatedBy"]); who != "" {
			by = append(by, "by "+who)
		}
		if when := text(d["deprecatedAt"]); when != "" {
			by = append(by, "on "+when)
		}
		rows = append(rows, attr{Name: "deprecated", Value: reason, Note: strings.Join(by, " ")})
	}
	e, _ := d["endorser"].(map[string]any)
	rows = append(rows, attr{Name: "endorser", Value: text(e["email"]), Note: text(e["subject"])})
	if draft, _ := d["draft"].(bool); draft {
		rows = append(rows, attr{Name: "endorsed", Value: "not signed yet", Note: "a draft: download its XML, sign it with stratus sign-metadata and upload it"})
	} else {
		add("endorsed", text(d["endorsed"]))
	}
	valid := text(d["valid"])
	if valid == "" {
		valid = "never expires"
	}
	add("valid until", valid)
	if t := text(d["tag"]); t != "" {
		add("tag", t)
	}
	add("os", text(d["os"]))
	add("os version", text(d["osVersion"]))
	add("arch", text(d["osArch"]))
	add("kind", text(d["kind"]))
	add("format", text(d["format"]))
	if c := text(d["compression"]); c != "" {
		add("compression", c)
	}
	add("bytes", text(d["bytes"]))
	add("sha1", text(d["sha1"]))
	locs := attr{Name: "locations", Value: "none"}
	for _, l := range stringsOf(d["locations"]) {
		it := item{Text: l}
		if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			it.Link = l
		} else if vol, ok := strings.CutPrefix(l, "pdisk:"); ok {
			it.Link = linkTo(res, "Volume/"+vol)
		}
		locs.Items = append(locs.Items, it)
	}
	if len(locs.Items) > 0 {
		locs.Value = ""
	}
	rows = append(rows, locs)
	for _, a := range []struct{ name, attr string }{{"version", "version"}, {"creator", "creator"}, {"publisher", "publisher"},
		{"hypervisor", "hypervisor"}} {
		if v := text(d[a.attr]); v != "" {
			add(a.name, v)
		}
	}
	for _, a := range []string{"volume", "machine"} {
		if ref := text(d[a]); ref != "" {
			rows = append(rows, attr{Name: a, Value: localOf(ref), Link: linkTo(res, ref)})
		}
	}
	// The XML is behind the XML link: shown here it would bury the page.
	return rows, []string{"identifier", "name", "description", "status", "deprecated", "deprecatedBy", "deprecatedAt",
		"endorser", "endorsed", "valid", "tag", "os", "osVersion", "osArch", "kind", "format", "compression", "bytes",
		"sha1", "locations", "version", "creator", "publisher", "hypervisor", "volume", "machine", "xml"}
}

// stringsOf reads a list of strings of a decoded document.
func stringsOf(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// isMultipart reports whether r carries a multipart form (a file upload).
func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}
