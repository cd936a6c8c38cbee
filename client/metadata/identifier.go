package metadata

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
)

// IdentifierLength is the length of every Marketplace identifier.
const IdentifierLength = 27

// Identifier is the Marketplace identifier of an image with the given
// SHA-1: the digest read as an unsigned big-endian integer and written in
// base 64 with the alphabet A–Z a–z 0–9 - _, most significant digit first,
// left-padded with A to 27 digits.
func Identifier(sum [sha1.Size]byte) string {
	// 27 digits carry 162 bits: a zero byte in front makes 168 bits, which
	// base64url writes as 28 digits without padding; the first is always
	// "A" and is the one the identifier drops.
	var b [1 + sha1.Size]byte
	copy(b[1:], sum[:])
	return base64.RawURLEncoding.EncodeToString(b[:])[1:]
}

// SHA1Of is the inverse of Identifier. It refuses strings that are not 27
// characters of the identifier alphabet, and identifiers whose value does
// not fit in 160 bits (a first character after P).
func SHA1Of(id string) ([sha1.Size]byte, error) {
	var sum [sha1.Size]byte
	if !ValidIdentifier(id) {
		return sum, fmt.Errorf("metadata: %q is not a Marketplace identifier (27 characters of A-Z, a-z, 0-9, '-' and '_', starting with A to P)", id)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString("A" + id)
	if err != nil || len(b) != len(sum)+1 || b[0] != 0 {
		// ValidIdentifier has checked everything decoding could refuse.
		return sum, fmt.Errorf("metadata: cannot decode identifier %q: %v", id, err)
	}
	copy(sum[:], b[1:])
	return sum, nil
}

// ValidIdentifier reports whether id is a Marketplace identifier: 27
// characters of the alphabet A–Z a–z 0–9 - _ whose value fits in 160 bits.
func ValidIdentifier(id string) bool {
	if len(id) != IdentifierLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		v := digitValue(id[i])
		if v < 0 {
			return false
		}
		// 27 digits are 162 bits: the two top bits of the first digit
		// must be zero for the value to be a SHA-1.
		if i == 0 && v >= 16 {
			return false
		}
	}
	return true
}

// digitValue is the value of one identifier digit, or -1.
func digitValue(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}
