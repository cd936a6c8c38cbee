package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/client/internal/ini"
)

// Inputs are the places settings come from, passed in so that tests need
// no real environment.
type Inputs struct {
	// Home is the user's home directory.
	Home string
	// Getenv reads the environment.
	Getenv func(string) string
	// Flags holds the options given on the command line, by key name.
	Flags map[string]string
	// Section is the -S/--user-config-section option, if given.
	Section string
	// File overrides the configuration file's path, if not empty.
	File string
	// Exists tells whether a file exists; os.Stat when nil.
	Exists func(string) bool
}

// Settings are the resolved values and where each came from.
type Settings struct {
	// Path is the configuration file read (or that would have been).
	Path string
	// Found is false when there was no configuration file.
	Found bool
	// Section is the section in use besides [default]; "" for none.
	Section string
	values  map[string]string
	sources map[string]string
}

// Get returns the value of a key, "" when unset.
func (s *Settings) Get(name string) string { return s.values[name] }

// Source says where the value of a key came from, for messages: "the
// command line (--endpoint)", "STRATUSLAB_ENDPOINT", "/home/u/...cfg
// [sl-cloud]", or "the default".
func (s *Settings) Source(name string) string { return s.sources[name] }

// Where names the file and section a person should edit, e.g.
// "/home/u/.stratuslab/stratuslab-user.cfg [sl-cloud]".
func (s *Settings) Where() string {
	sec := s.Section
	if sec == "" {
		sec = "default"
	}
	return fmt.Sprintf("%s [%s]", s.Path, sec)
}

// Bool reads a yes/no key as the Python client did: true, yes, on, 1 and
// their opposites, in any case.
func (s *Settings) Bool(name string) (bool, error) {
	v := strings.ToLower(strings.TrimSpace(s.values[name]))
	switch v {
	case "", "false", "no", "off", "0":
		return false, nil
	case "true", "yes", "on", "1":
		return true, nil
	}
	return false, fmt.Errorf("%s = %q (from %s) is neither true nor false", name, s.values[name], s.sources[name])
}

// Timeout reads endpoint_timeout: seconds, or a duration such as "1m".
func (s *Settings) Timeout() (time.Duration, error) {
	v := strings.TrimSpace(s.values[EndpointTimeout])
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("endpoint_timeout = %q (from %s) is not a number of seconds", v, s.sources[EndpointTimeout])
}

// Resolve reads the configuration file and applies the precedence:
// command line, environment, selected section, [default], defaults.
func Resolve(in Inputs) (*Settings, error) {
	getenv := in.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	exists := in.Exists
	if exists == nil {
		exists = func(p string) bool { _, err := os.Stat(p); return err == nil }
	}
	s := &Settings{Path: in.File, values: map[string]string{}, sources: map[string]string{}}
	if s.Path == "" {
		s.Path = getenv(FileEnv)
	}
	if s.Path == "" {
		s.Path = Path(in.Home)
	}
	file, err := read(s.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		file = &ini.File{}
	case err != nil:
		return nil, err
	default:
		s.Found = true
	}

	var chosenBy string
	switch {
	case in.Section != "":
		s.Section, chosenBy = in.Section, "-S/--"+SectionFlag
	case getenv(SectionEnv) != "":
		s.Section, chosenBy = getenv(SectionEnv), SectionEnv
	default:
		s.Section, _ = file.Get("default", SelectedSection)
		chosenBy = "selected_section in [default]"
	}
	if s.Section == "default" {
		s.Section = ""
	}
	if s.Section != "" && !file.Has(s.Section) {
		have := "no section"
		if secs := file.Sections(); len(secs) > 0 {
			have = "[" + strings.Join(secs, "], [") + "]"
		}
		if !s.Found {
			have = "no such file"
		}
		return nil, fmt.Errorf("section [%s] chosen by %s is not in %s (there is %s): add it, or choose another section", s.Section, chosenBy, s.Path, have)
	}

	for _, k := range Keys() {
		if v, ok := in.Flags[k.Name]; ok {
			s.set(k.Name, v, "the command line (--"+k.Flag+")")
			continue
		}
		if v := getenv(k.Env); v != "" {
			s.set(k.Name, v, k.Env)
			continue
		}
		if s.Section != "" {
			if v, ok := file.Get(s.Section, k.Name); ok {
				s.set(k.Name, v, fmt.Sprintf("%s [%s]", s.Path, s.Section))
				continue
			}
		}
		if v, ok := file.Get("default", k.Name); ok {
			s.set(k.Name, v, s.Path+" [default]")
			continue
		}
		s.defaults(k.Name, in.Home, exists)
	}
	// pdisk_endpoint follows the endpoint however the endpoint was set.
	if s.sources[PdiskEndpoint] == "the default" {
		s.values[PdiskEndpoint] = s.values[Endpoint]
	}
	return s, nil
}

func (s *Settings) set(name, value, source string) {
	s.values[name], s.sources[name] = value, source
}

func (s *Settings) defaults(name, home string, exists func(string) bool) {
	v := ""
	switch name {
	case EndpointTimeout:
		v = DefaultTimeout
	case UserPublicKeyFile:
		v = filepath.Join(home, ".ssh", "id_rsa.pub")
	case PemCertificate, PemKey:
		// A grid user's certificate is used only if they have one.
		file := map[string]string{PemCertificate: "usercert.pem", PemKey: "userkey.pem"}[name]
		if p := filepath.Join(home, ".globus", file); home != "" && exists(p) {
			v = p
		}
	}
	s.set(name, v, "the default")
}

func read(path string) (*ini.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot read the configuration file: %w", err)
	}
	defer f.Close()
	file, err := ini.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file, nil
}
