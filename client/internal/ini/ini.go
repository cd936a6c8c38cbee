package ini

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// File is a parsed INI file.
type File struct {
	order    []string
	sections map[string]map[string]string
}

// SyntaxError is a line the parser cannot read.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// maxLine bounds a line; a configuration line longer than this is a wrong
// file, not a configuration.
const maxLine = 64 << 10

// Parse reads an INI file.
func Parse(r io.Reader) (*File, error) {
	f := &File{sections: map[string]map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	sc.Split(lines)
	var current map[string]string
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, &SyntaxError{n, fmt.Sprintf("section header %q has no closing ]", line)}
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if name == "" {
				return nil, &SyntaxError{n, "section header [] has no name"}
			}
			current = f.section(name)
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, &SyntaxError{n, fmt.Sprintf("%q is not a key = value line", line)}
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		if key == "" {
			return nil, &SyntaxError{n, "a value without a key"}
		}
		if current == nil {
			return nil, &SyntaxError{n, fmt.Sprintf("%s is set before any [section]; put it under [default]", key)}
		}
		current[key] = unquote(strings.TrimSpace(line[i+1:]))
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, &SyntaxError{n + 1, "line too long"}
		}
		return nil, err
	}
	return f, nil
}

// lines splits at \n, \r\n or a lone \r, so that no value holds a line
// break whatever editor wrote the file.
func lines(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		switch {
		case c == '\n':
			return i + 1, data[:i], nil
		case c == '\r' && i+1 < len(data):
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		case c == '\r' && atEOF:
			return i + 1, data[:i], nil
		case c == '\r':
			return 0, nil, nil // is a \n next?
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.ReplaceAll(v, "%%", "%")
}

func (f *File) section(name string) map[string]string {
	s, ok := f.sections[name]
	if !ok {
		s = map[string]string{}
		f.sections[name] = s
		f.order = append(f.order, name)
	}
	return s
}

// Sections lists the section names in the order they first appear.
func (f *File) Sections() []string { return slices.Clone(f.order) }

// Has reports whether the file has the section.
func (f *File) Has(section string) bool {
	_, ok := f.sections[section]
	return ok
}

// Get returns the value of key in section.
func (f *File) Get(section, key string) (string, bool) {
	v, ok := f.sections[section][strings.ToLower(key)]
	return v, ok
}

// Keys lists the keys of a section, sorted.
func (f *File) Keys(section string) []string {
	keys := make([]string, 0, len(f.sections[section]))
	for k := range f.sections[section] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Set sets key in section, adding the section if needed.
func (f *File) Set(section, key, value string) {
	if f.sections == nil {
		f.sections = map[string]map[string]string{}
	}
	f.section(section)[strings.ToLower(key)] = value
}

// WriteTo writes the file so that Parse reads it back the same: every
// value quoted, % doubled. Values cannot hold line breaks.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for i, name := range f.order {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", name)
		for _, k := range f.Keys(name) {
			v := f.sections[name][k]
			if strings.ContainsAny(v, "\r\n") {
				return 0, fmt.Errorf("the value of %s in [%s] has a line break, which INI cannot hold", k, name)
			}
			fmt.Fprintf(&b, "%s = \"%s\"\n", k, strings.ReplaceAll(v, "%", "%%"))
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
