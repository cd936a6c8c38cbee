package config

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// iniFile is a parsed INI file: sections of key = value pairs, with the line
// each came from so errors can point at it.
//
// The dialect is the one Python's configparser reads by default, which the
// original StratusLab tools used: "[section]" headers, "key = value" or
// "key: value", comment lines starting with '#' or ';', keys case-insensitive,
// values taken verbatim after trimming (no inline comments, no quotes, so
// '#' may appear in a password). Unlike configparser, continuation lines are
// not supported, and a key or section given twice is an error, as in
// configparser's strict mode.
type iniFile struct {
	sections map[string]*iniSection // by lower-case name
}

type iniSection struct {
	name string // as written
	line int
	keys map[string]iniEntry // by lower-case key
}

type iniEntry struct {
	value string
	line  int
}

// iniError is a syntax error at a line of a file.
type iniError struct {
	line int
	msg  string
}

func (e *iniError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseINI parses data; errors are *iniError.
func parseINI(data []byte) (*iniFile, error) {
	f := &iniFile{sections: map[string]*iniSection{}}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var cur *iniSection
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if !utf8.ValidString(raw) {
			return nil, &iniError{n, "not valid UTF-8 text"}
		}
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, &iniError{n, fmt.Sprintf("section header %q has no closing ']'", line)}
			}
			if rest := strings.TrimSpace(line[end+1:]); rest != "" {
				return nil, &iniError{n, fmt.Sprintf("unexpected %q after section header", rest)}
			}
			name := strings.TrimSpace(line[1:end])
			if name == "" {
				return nil, &iniError{n, "empty section name"}
			}
			key := strings.ToLower(name)
			if prev, ok := f.sections[key]; ok {
				return nil, &iniError{n, fmt.Sprintf("section [%s] already started at line %d", name, prev.line)}
			}
			cur = &iniSection{name: name, line: n, keys: map[string]iniEntry{}}
			f.sections[key] = cur
			continue
		}
		sep := strings.IndexAny(line, "=:")
		if sep < 0 {
			return nil, &iniError{n, fmt.Sprintf("expected \"key = value\" or a [section] header, got %q", line)}
		}
		key := strings.ToLower(strings.TrimSpace(line[:sep]))
		if key == "" {
			return nil, &iniError{n, "missing key before '" + line[sep:sep+1] + "'"}
		}
		if cur == nil {
			return nil, &iniError{n, fmt.Sprintf("key %q comes before any [section] header; put it under [DEFAULT] or a service section", key)}
		}
		if prev, ok := cur.keys[key]; ok {
			return nil, &iniError{n, fmt.Sprintf("key %q already set in [%s] at line %d", key, cur.name, prev.line)}
		}
		cur.keys[key] = iniEntry{value: strings.TrimSpace(line[sep+1:]), line: n}
	}
	return f, nil
}

// section returns the section named name, case-insensitively, or nil.
func (f *iniFile) section(name string) *iniSection {
	return f.sections[strings.ToLower(name)]
}

// keysByLine returns the section's keys in the order they appear.
func (s *iniSection) keysByLine() []string {
	keys := make([]string, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return s.keys[keys[i]].line < s.keys[keys[j]].line })
	return keys
}
