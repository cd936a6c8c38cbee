package tool

import "strings"

// ValidName reports whether s is a name a storage tool takes as it is,
// with nothing to quote in its command lines, device paths or URLs: 1 to
// maxLen ASCII letters, digits and characters of punct, neither "." nor
// "..", and not starting with '-', which the tool would read as an option.
func ValidName(s string, maxLen int, punct string) bool {
	if s == "" || len(s) > maxLen || s[0] == '-' || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune(punct, c) {
			return false
		}
	}
	return true
}
