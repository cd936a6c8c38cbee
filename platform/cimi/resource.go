package cimi

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Namespaces of resource type URIs and of action URIs.
const (
	DMTFNamespace       = "http://schemas.dmtf.org/cimi/1/"
	StratusLabNamespace = "http://stratuslab.eu/cimi/1/"
	// ActionURIPrefix starts the "action" of an Action request and the rel
	// of the operation that accepts it, e.g. ActionURIPrefix+"start".
	ActionURIPrefix = DMTFNamespace + "action/"
)

// Operation rels for the basic CRUD operations.
const (
	RelAdd    = "add"
	RelEdit   = "edit"
	RelDelete = "delete"
)

// MaxLocalIDLength bounds the part of an id after the kind.
const MaxLocalIDLength = 200

// ErrInvalidID marks an id SplitID cannot accept; errors wrap it.
var ErrInvalidID = errors.New("invalid resource id")

// Operation is an action the caller may take on a resource or collection,
// advertised in its "operations" list.
type Operation struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// Common holds the attributes every CIMI resource carries. Resource types
// embed it; the server sets ID, ResourceURI, Created, Updated and Operations
// on every write.
type Common struct {
	ID          string            `json:"id"`
	ResourceURI string            `json:"resourceURI"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Created     time.Time         `json:"created"` // UTC, RFC 3339
	Updated     time.Time         `json:"updated"` // UTC, RFC 3339
	Properties  map[string]string `json:"properties,omitempty"`
	Operations  []Operation       `json:"operations,omitempty"`
	ACL         ACL               `json:"acl"`
}

// Touch records a write at now: it sets Updated, and Created too when it is
// still zero. Times are kept in UTC, whatever zone now is in, and to the
// millisecond so that they survive JSON round trips through stores and
// clients that do not keep nanoseconds.
func (c *Common) Touch(now time.Time) {
	now = now.UTC().Truncate(time.Millisecond)
	if c.Created.IsZero() {
		c.Created = now
	}
	c.Updated = now
}

// extensions are the StratusLab resource types outside the DMTF CIMI
// standard. Event is not here: CIMI 1.1 defines it.
func isExtension(kind string) bool {
	switch strings.TrimSuffix(kind, "Collection") {
	case "ServiceConfiguration", "ServiceMessage", "User", "UserTemplate", "Host", "Registration":
		return true
	}
	return false
}

// ResourceURI returns the type URI of a resource kind (or of its collection,
// "VolumeCollection"): the DMTF namespace for standard types, the
// StratusLab one for its extensions (ServiceConfiguration, ServiceMessage,
// User, UserTemplate, Host, Registration).
func ResourceURI(kind string) string {
	if isExtension(kind) {
		return StratusLabNamespace + kind
	}
	return DMTFNamespace + kind
}

// ActionURI returns the URI of an action verb such as "start".
func ActionURI(verb string) string {
	return ActionURIPrefix + verb
}

// NewID returns a fresh id for a resource of this kind, "Kind/<uuid v4>".
func NewID(kind string) string {
	return kind + "/" + uuid.NewString()
}

// SplitID splits "Volume/8d0f…" into its kind and local part. The kind is a
// CIMI type name (an upper-case letter, then letters and digits); the local
// part is non-empty UTF-8 of at most MaxLocalIDLength bytes, without
// whitespace, control characters or the URL-significant '/', '?', '#', '%'
// and '\'. Errors wrap ErrInvalidID.
func SplitID(id string) (kind, local string, err error) {
	kind, local, ok := strings.Cut(id, "/")
	if !ok {
		return "", "", fmt.Errorf("%w %q: expected Kind/identifier, e.g. Volume/<uuid>", ErrInvalidID, id)
	}
	if !isKind(kind) {
		return "", "", fmt.Errorf("%w %q: the kind %q must be a CIMI type name such as Volume", ErrInvalidID, id, kind)
	}
	if local == "" {
		return "", "", fmt.Errorf("%w %q: nothing follows the kind", ErrInvalidID, id)
	}
	if len(local) > MaxLocalIDLength {
		return "", "", fmt.Errorf("%w: the part after %q is %d bytes long; the limit is %d",
			ErrInvalidID, kind+"/", len(local), MaxLocalIDLength)
	}
	if !utf8.ValidString(local) {
		return "", "", fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidID, id)
	}
	if i := strings.IndexFunc(local, badIDRune); i >= 0 {
		r, _ := utf8.DecodeRuneInString(local[i:])
		return "", "", fmt.Errorf("%w %q: %q is not allowed after the kind", ErrInvalidID, id, r)
	}
	return kind, local, nil
}

func isKind(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) {
			return false
		}
	}
	return true
}

func badIDRune(r rune) bool {
	switch r {
	case '/', '?', '#', '%', '\\':
		return true
	}
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
}

// ResourceOperations lists what who may do to a resource at href: edit and
// delete when the ACL grants MODIFY, nothing otherwise (nil).
func ResourceOperations(acl ACL, who Identity, href string) []Operation {
	if !acl.Allows(who, Modify) {
		return nil
	}
	return []Operation{{Rel: RelEdit, Href: href}, {Rel: RelDelete, Href: href}}
}

// CollectionOperations lists what a caller may do to a collection at href:
// add when canAdd, nothing otherwise (nil).
func CollectionOperations(canAdd bool, href string) []Operation {
	if !canAdd {
		return nil
	}
	return []Operation{{Rel: RelAdd, Href: href}}
}

// Select applies $select to a resource: it returns a new map holding the
// listed top-level attributes present in doc, plus id, resourceURI and
// operations. An empty list keeps every attribute. doc is not modified.
func Select(doc map[string]any, attrs []string) map[string]any {
	if len(attrs) == 0 {
		out := make(map[string]any, len(doc))
		maps.Copy(out, doc)
		return out
	}
	out := make(map[string]any, len(attrs)+3)
	// These stay whatever $select says so that a client can still identify
	// the resource and act on it.
	for _, k := range []string{"id", "resourceURI", "operations"} {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	for _, k := range attrs {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	return out
}
