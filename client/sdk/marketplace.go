package sdk

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Marketplace talks to the REST API of an Appliance Marketplace
// (services/marketplace/CONTRACT.md): upload signed entries, read them as
// XML or JSON, search them and deprecate them. It shares its Client's
// transport, TLS settings and trace; the Client's password or session token
// go only to a Marketplace on the Client's own site, so that configuring a
// Marketplace elsewhere never hands it the cloud credentials. A TLS client
// certificate goes everywhere, as it reveals no secret.
type Marketplace struct {
	c       *Client
	base    string // e.g. https://cloud.example.org/marketplace
	secrets bool   // whether c's password or token may be sent to base
}

// MarketplaceURL turns a configured Marketplace endpoint into the base URL
// of its API: https:// when no scheme is given, no trailing slash, and
// /marketplace added to a bare site ("cloud.example.org" and
// "https://cloud.example.org/marketplace" are the same Marketplace); a
// trailing /metadata, pasted from a URL of the API, is dropped.
func MarketplaceURL(endpoint string) string {
	e := strings.TrimSpace(endpoint)
	if e == "" {
		return ""
	}
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	e = strings.TrimRight(e, "/")
	e = strings.TrimRight(strings.TrimSuffix(e, "/metadata"), "/")
	if u, err := url.Parse(e); err == nil && u.Path == "" {
		e += "/marketplace"
	}
	return e
}

// Marketplace returns the client of the Marketplace at endpoint, read as
// MarketplaceURL reads it.
func (c *Client) Marketplace(endpoint string) *Marketplace {
	base := MarketplaceURL(endpoint)
	u, err := url.Parse(base)
	return &Marketplace{c: c, base: base, secrets: err == nil && sameSite(c.endpoint, u)}
}

// URL is the base URL of the Marketplace's API.
func (m *Marketplace) URL() string { return m.base }

// SendsCredentials reports whether the Client's password or session token
// go with this Marketplace's requests: only when it is on the Client's
// site.
func (m *Marketplace) SendsCredentials() bool { return m.secrets }

// ImageEntry is a Marketplace entry as the Marketplace shows it in JSON
// (a MachineImage document): what the entry's XML says, flattened, and
// what the Marketplace adds (status, deprecation by the action, draft).
type ImageEntry struct {
	ID           string          `json:"id,omitempty"` // MachineImage/<uuid>
	Identifier   string          `json:"identifier"`
	Endorser     ImageEndorser   `json:"endorser,omitzero"`
	Endorsed     string          `json:"endorsed,omitempty"` // the endorsement's date, RFC 3339
	Created      string          `json:"created,omitempty"`  // when the Marketplace stored it
	Updated      string          `json:"updated,omitempty"`
	Valid        string          `json:"valid,omitempty"` // end of validity, RFC 3339
	Kind         string          `json:"kind,omitempty"`  // machine or disk
	OS           string          `json:"os,omitempty"`
	OSVersion    string          `json:"osVersion,omitempty"`
	OSArch       string          `json:"osArch,omitempty"`
	Version      string          `json:"version,omitempty"`
	Format       string          `json:"format,omitempty"`
	Compression  string          `json:"compression,omitempty"`
	Hypervisor   string          `json:"hypervisor,omitempty"`
	DisksBus     string          `json:"disksBus,omitempty"`
	Name         string          `json:"name,omitempty"` // the title
	Description  string          `json:"description,omitempty"`
	Tag          string          `json:"tag,omitempty"`
	Bytes        int64           `json:"bytes,omitempty"`
	SHA1         string          `json:"sha1,omitempty"`
	Checksums    []ImageChecksum `json:"checksums,omitempty"`
	Locations    []string        `json:"locations,omitempty"`
	Deprecated   string          `json:"deprecated,omitempty"`   // the reason
	DeprecatedBy string          `json:"deprecatedBy,omitempty"` // who used the deprecate action
	Draft        bool            `json:"draft,omitempty"`
	Volume       string          `json:"volume,omitempty"` // of a draft: Volume/<uuid>
	XML          string          `json:"xml,omitempty"`
	Status       string          `json:"status,omitempty"` // valid, expired, deprecated or draft
}

// ImageEndorser is who signed an entry, from its endorsement block.
type ImageEndorser struct {
	Email   string `json:"email,omitempty"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
}

// ImageChecksum is one checksum of an image.
type ImageChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// Key is the address of e in the Marketplace: identifier, endorser and
// endorsement date.
func (e *ImageEntry) Key() ImageKey {
	return ImageKey{Identifier: e.Identifier, Email: e.Endorser.Email, Endorsed: e.Endorsed}
}

// ImageKey names entries as the Marketplace's URLs do: an identifier
// alone (the newest entry of any endorser), with an endorser e-mail (that
// endorser's newest) or also with the endorsement date (one entry).
type ImageKey struct {
	Identifier string
	Email      string
	Endorsed   string
}

// path is the URL path of the key under the API's base.
func (k ImageKey) path() string {
	p := "/metadata/" + url.PathEscape(k.Identifier)
	if k.Email != "" {
		p += "/" + url.PathEscape(k.Email)
		if k.Endorsed != "" {
			p += "/" + url.PathEscape(k.Endorsed)
		}
	}
	return p
}

// String writes the key as the Marketplace's URLs do.
func (k ImageKey) String() string {
	return strings.TrimPrefix(k.path(), "/metadata/")
}

// ImageQuery selects entries. Zero fields are left out: the Marketplace
// then shows valid entries, the 20 newest first.
type ImageQuery struct {
	Identifier string
	Email      string // the endorser's
	OS         string
	OSVersion  string
	Arch       string
	Tag        string
	Created    string // yyyy-MM-dd or RFC 3339: entries endorsed at or after it
	Status     string // valid, expired, deprecated or all
	First      int    // from 1
	Last       int    // included
}

func (q ImageQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{
		"identifier": q.Identifier, "email": q.Email, "os": q.OS, "os-version": q.OSVersion,
		"arch": q.Arch, "tag": q.Tag, "created": q.Created, "status": q.Status,
	} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.First > 0 {
		v.Set("first", strconv.Itoa(q.First))
	}
	if q.Last > 0 {
		v.Set("last", strconv.Itoa(q.Last))
	}
	return v
}

// get sends a GET to path under the API's base.
func (m *Marketplace) get(ctx context.Context, path string, query url.Values, accept string) (*response, error) {
	return m.c.send(ctx, outgoing{method: http.MethodGet, ref: m.base + path, query: query, accept: accept, secrets: m.secrets})
}

// Search returns how many entries match q in all, and those of the page q
// asks for, newest endorsement first.
func (m *Marketplace) Search(ctx context.Context, q ImageQuery) (int, []ImageEntry, error) {
	r, err := m.get(ctx, "/metadata", q.values(), "application/json")
	if err != nil {
		return 0, nil, err
	}
	return decodeEntries(r.body)
}

// decodeEntries reads a search answer: a JSON list of entries, or a
// collection document with a count and the list under its one array
// attribute (as CIMI collections are).
func decodeEntries(body []byte) (int, []ImageEntry, error) {
	var list []ImageEntry
	if err := json.Unmarshal(body, &list); err == nil {
		return len(list), list, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, nil, fmt.Errorf("the Marketplace answered a search with something that is not JSON: %w", err)
	}
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
		if err := json.Unmarshal(raw, &list); err != nil {
			return 0, nil, fmt.Errorf("the Marketplace's %s is not a list of entries: %w", k, err)
		}
		break
	}
	count := len(list)
	if raw, ok := doc["count"]; ok {
		if err := json.Unmarshal(raw, &count); err != nil {
			return 0, nil, fmt.Errorf("the Marketplace's count is not a number: %w", err)
		}
	}
	return count, list, nil
}

// statusQuery is the status filter of a read; empty leaves the
// Marketplace's default (valid entries only).
func statusQuery(format, status string) url.Values {
	v := url.Values{"format": {format}}
	if status != "" {
		v.Set("status", status)
	}
	return v
}

// Get returns the newest entry key names that the status filter allows
// (valid, expired, deprecated or all; empty: valid), as JSON.
func (m *Marketplace) Get(ctx context.Context, key ImageKey, status string) (*ImageEntry, error) {
	r, err := m.get(ctx, key.path(), statusQuery("json", status), "application/json")
	if err != nil {
		return nil, err
	}
	var e ImageEntry
	if err := json.Unmarshal(r.body, &e); err != nil {
		return nil, fmt.Errorf("the Marketplace answered %s with something that is not an entry: %w", key, err)
	}
	return &e, nil
}

// GetXML returns the entry Get would, as the signed XML document exactly as
// it was uploaded.
func (m *Marketplace) GetXML(ctx context.Context, key ImageKey, status string) ([]byte, error) {
	r, err := m.get(ctx, key.path(), statusQuery("xml", status), "application/xml")
	if err != nil {
		return nil, err
	}
	return r.body, nil
}

// Uploaded is where the Marketplace stored an uploaded entry.
type Uploaded struct {
	Location string   // the entry's absolute URL
	Key      ImageKey // identifier, endorser and endorsement date, from Location
	ID       string   // the CIMI id, MachineImage/<uuid>
}

// Upload sends a signed entry. The Marketplace checks its signature,
// endorser and rules, and refuses it with an *Error (400, whose message
// names the rule; 409 for an entry it already holds) or stores it.
func (m *Marketplace) Upload(ctx context.Context, doc []byte) (Uploaded, error) {
	if doc == nil {
		doc = []byte{}
	}
	r, err := m.c.send(ctx, outgoing{method: http.MethodPost, ref: m.base + "/metadata", payload: doc,
		contentType: "application/xml", accept: "application/json", secrets: m.secrets})
	if err != nil {
		return Uploaded{}, err
	}
	var up Uploaded
	if loc := r.header.Get("Location"); loc != "" {
		up.Location = m.resolve(loc)
		up.Key = keyOf(up.Location)
	}
	var body struct {
		ID         string `json:"id"`
		ResourceID string `json:"resource-id"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		up.ID = cmp.Or(body.ResourceID, body.ID)
	}
	return up, nil
}

// Deprecate marks the entry key names (identifier, endorser and date) as
// no longer to be used, for reason; only its uploader or an administrator
// may. It returns the entry as the Marketplace now shows it, when it does.
func (m *Marketplace) Deprecate(ctx context.Context, key ImageKey, reason string) (*ImageEntry, error) {
	if key.Identifier == "" || key.Email == "" || key.Endorsed == "" {
		return nil, fmt.Errorf("deprecate needs the identifier, endorser and endorsement date of one entry, not %q", key)
	}
	body, err := json.Marshal(map[string]string{"reason": reason})
	if err != nil {
		return nil, err
	}
	r, err := m.c.send(ctx, outgoing{method: http.MethodPost, ref: m.base + key.path() + "/deprecate", payload: body,
		contentType: "application/json", accept: "application/json", secrets: m.secrets})
	if err != nil {
		return nil, err
	}
	var e ImageEntry
	if json.Unmarshal(r.body, &e) != nil || e.Identifier == "" {
		return nil, nil
	}
	return &e, nil
}

// resolve turns a Location header into an absolute URL on the
// Marketplace's site.
func (m *Marketplace) resolve(loc string) string {
	base, err := url.Parse(m.base)
	if err != nil {
		return loc
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	return base.ResolveReference(ref).String()
}

// keyOf reads identifier, e-mail and date from an entry's URL
// (…/metadata/<identifier>/<email>/<endorsed>).
func keyOf(location string) ImageKey {
	u, err := url.Parse(location)
	if err != nil {
		return ImageKey{}
	}
	_, rest, ok := strings.Cut(u.EscapedPath(), "/metadata/")
	if !ok {
		return ImageKey{}
	}
	var parts []string
	for _, p := range strings.Split(rest, "/") {
		s, err := url.PathUnescape(p)
		if err != nil {
			return ImageKey{}
		}
		parts = append(parts, s)
	}
	var k ImageKey
	for i, dst := range []*string{&k.Identifier, &k.Email, &k.Endorsed} {
		if i < len(parts) {
			*dst = parts[i]
		}
	}
	return k
}
