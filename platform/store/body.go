package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxIDLength is the longest id, in bytes, every adapter accepts: the
// Couchbase key limit, applied everywhere so that a document valid in one
// adapter is valid in the other.
const MaxIDLength = 250

// CheckID returns ErrInvalid unless id can address a document: non-empty,
// at most MaxIDLength bytes of valid UTF-8 without control characters.
func CheckID(id string) error {
	if id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) {
		return fmt.Errorf("%w: id %q must be 1 to %d bytes of UTF-8", ErrInvalid, id, MaxIDLength)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: id %q holds a control character", ErrInvalid, id)
		}
	}
	return nil
}

// PrepareBody checks a body before it is written under id and returns it as
// the store keeps it, together with its decoded form (numbers decoded as
// json.Number, so the caller may convert them as it needs). The body must be
// a JSON object; its "id" attribute is set to id when missing or different,
// because the id a document is stored under is authoritative. An unchanged
// body is copied, never aliased, so callers may reuse their buffer.
func PrepareBody(id string, body json.RawMessage) (json.RawMessage, map[string]any, error) {
	if err := CheckID(id); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("%w: body of %q is not a JSON object: %v", ErrInvalid, id, err)
	}
	if doc == nil {
		return nil, nil, fmt.Errorf("%w: body of %q is null, not a JSON object", ErrInvalid, id)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: body of %q has data after the JSON object", ErrInvalid, id)
	}
	if cur, ok := doc["id"].(string); ok && cur == id {
		return bytes.Clone(body), doc, nil
	}
	doc["id"] = id
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, nil, fmt.Errorf("%w: body of %q: %v", ErrInvalid, id, err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), doc, nil
}
