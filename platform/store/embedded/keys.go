package embedded

import (
	"fmt"
	"strings"

	"stratuslab.dev/platform/store"
)

const hexDigits = "0123456789ABCDEF"

// plain reports whether b may stand for itself in a key. '_' is the escape
// and '.' separates subject tokens, so both are escaped.
func plain(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '/' || b == '='
}

// encodeKey turns a document id into a valid KV key.
func encodeKey(id string) string {
	var b strings.Builder
	b.Grow(len(id) + 8)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// decodeKey reverses encodeKey.
func decodeKey(key string) (string, error) {
	if !strings.Contains(key, "_") {
		return key, nil
	}
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(key) {
			return "", fmt.Errorf("%w: key %q ends inside an escape", store.ErrInvalid, key)
		}
		hi, lo := unhex(key[i+1]), unhex(key[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("%w: key %q has a bad escape", store.ErrInvalid, key)
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// BucketName returns the name of the KV bucket holding the kind documents
// of service: "store_<service>_<kind>" with every character outside
// [A-Za-z0-9_-] replaced by '_'.
func BucketName(service, kind string) string {
	return "store_" + sanitize(service) + "_" + sanitize(kind)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (plain(byte(r)) && r != '/' && r != '=' || r == '_') {
			return r
		}
		return '_'
	}, s)
}
