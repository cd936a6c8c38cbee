package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
)

// Attributes the framework sets; a body cannot choose them.
const (
	attrID          = "id"
	attrResourceURI = "resourceURI"
	attrCreated     = "created"
	attrUpdated     = "updated"
	attrOperations  = "operations"
	attrACL         = "acl"
	// attrCommand holds the id of the command that wrote the document last,
	// so that a redelivered command recognises its own work.
	attrCommand = "_command"
)

// hidden reports whether an attribute is the framework's own: never
// returned, never taken from a body.
func hidden(attr string) bool { return strings.HasPrefix(attr, "_") }

// serverSet reports whether an attribute is set by the framework on every
// write.
func serverSet(attr string) bool {
	switch attr {
	case attrID, attrResourceURI, attrCreated, attrUpdated, attrOperations:
		return true
	}
	return hidden(attr)
}

// decodeObject decodes a JSON object, keeping numbers as json.Number so
// that large integers survive unchanged. It returns nil and an error for
// anything else.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errors.New("null is not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return doc, nil
}

// encode returns the JSON of a document, without HTML escaping so that
// text stays as people wrote it.
func encode(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// body decodes the body of a command for kind: a JSON object, or an empty
// object when the body is empty and emptyOK.
func body(kind string, data []byte, emptyOK bool) (map[string]any, error) {
	if len(data) > MaxBody {
		return nil, errs.Errorf(errs.TooLarge, "The body of this %s request is %d bytes long; the limit is %d.", kind, len(data), MaxBody)
	}
	if emptyOK && len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil
	}
	doc, err := decodeObject(data)
	if err != nil {
		return nil, errs.Errorf(errs.Invalid, "The body of this %s request must be a JSON object.", kind)
	}
	return withoutHidden(doc), nil
}

// withoutHidden returns doc without "operations" and the framework's
// hidden attributes; doc itself is not changed.
func withoutHidden(doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if k != attrOperations && !hidden(k) {
			out[k] = v
		}
	}
	return out
}

// clone returns a shallow copy of doc.
func clone(doc map[string]any) map[string]any {
	if doc == nil {
		return nil
	}
	out := make(map[string]any, len(doc))
	maps.Copy(out, doc)
	return out
}

// aclOf reads the "acl" attribute of a document. A missing or malformed
// ACL gives one only administrators match, so that a damaged document is
// hidden rather than exposed.
func aclOf(doc map[string]any) cimi.ACL {
	acl, err := parseACL(doc[attrACL])
	if err != nil {
		return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
	}
	return acl
}

// parseACL reads an ACL from its JSON value, checking that it names an
// owner and that every principal type and right is one CIMI defines.
func parseACL(v any) (cimi.ACL, error) {
	if v == nil {
		return cimi.ACL{}, errors.New("the acl is missing")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return cimi.ACL{}, err
	}
	var acl cimi.ACL
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&acl); err != nil {
		return cimi.ACL{}, fmt.Errorf("the acl must be {owner:{principal,type}, rules:[{principal,type,right}]}: %w", err)
	}
	if acl.Owner.Principal == "" || !validType(acl.Owner.Type) {
		return cimi.ACL{}, errors.New("the acl owner needs a principal and a type, USER or ROLE")
	}
	for _, r := range acl.Rules {
		if r.Principal == "" || !validType(r.Type) {
			return cimi.ACL{}, errors.New("every acl rule needs a principal and a type, USER or ROLE")
		}
		switch r.Right {
		case cimi.View, cimi.Modify, cimi.All:
		default:
			return cimi.ACL{}, fmt.Errorf("the acl right %q is not one of VIEW, MODIFY, ALL", r.Right)
		}
	}
	return acl, nil
}

func validType(t cimi.PrincipalType) bool { return t == cimi.User || t == cimi.Role }

// aclValue returns the JSON form of an ACL as stored in a document.
func aclValue(acl cimi.ACL) map[string]any {
	owner := map[string]any{"principal": acl.Owner.Principal, "type": string(acl.Owner.Type)}
	out := map[string]any{"owner": owner}
	if len(acl.Rules) > 0 {
		rules := make([]any, len(acl.Rules))
		for i, r := range acl.Rules {
			rules[i] = map[string]any{"principal": r.Principal, "type": string(r.Type), "right": string(r.Right)}
		}
		out["rules"] = rules
	}
	return out
}

// sameACL reports whether two ACLs grant the same rights.
func sameACL(a, b cimi.ACL) bool {
	if a.Owner != b.Owner || len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		if a.Rules[i] != b.Rules[i] {
			return false
		}
	}
	return true
}

// timestamp formats a write time as stored: UTC, to the millisecond, RFC
// 3339, as cimi.Common.Touch keeps it.
func timestamp(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}
