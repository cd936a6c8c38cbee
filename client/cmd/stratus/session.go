package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// savedSession is a session opened by stratus login, kept so that later
// commands send its token instead of the password.
type savedSession struct {
	Identity string    `json:"identity"`
	Roles    []string  `json:"roles,omitempty"`
	Expires  time.Time `json:"expires"`
	Token    string    `json:"token"`
}

// sessionsPath is the file of saved sessions, by endpoint. It holds tokens:
// only its owner may read it.
func sessionsPath(home string) string {
	return filepath.Join(home, ".stratuslab", "sessions.json")
}

func readSessions(home string) (map[string]savedSession, error) {
	data, err := os.ReadFile(sessionsPath(home))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]savedSession{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read your saved sessions: %w", err)
	}
	all := map[string]savedSession{}
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("%s is damaged (remove it and log in again): %w", sessionsPath(home), err)
	}
	return all, nil
}

// loadSession returns the saved session for endpoint, or nil when there is
// none or it has expired.
func loadSession(home, endpoint string) (*savedSession, error) {
	all, err := readSessions(home)
	if err != nil {
		return nil, err
	}
	s, ok := all[endpoint]
	if !ok || s.Token == "" || (!s.Expires.IsZero() && time.Now().After(s.Expires)) {
		return nil, nil
	}
	return &s, nil
}

// storeSession saves (or, with s nil, forgets) the session for endpoint.
func storeSession(home, endpoint string, s *savedSession) error {
	all, err := readSessions(home)
	if err != nil {
		all = map[string]savedSession{}
	}
	if s == nil {
		delete(all, endpoint)
	} else {
		all[endpoint] = *s
	}
	dir := filepath.Dir(sessionsPath(home))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot save your session: %w", err)
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".sessions-*")
	if err != nil {
		return fmt.Errorf("cannot save your session: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot save your session: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot save your session: %w", err)
	}
	// CreateTemp makes the file 0600, which it keeps when renamed.
	if err := os.Rename(tmp.Name(), sessionsPath(home)); err != nil {
		return fmt.Errorf("cannot save your session: %w", err)
	}
	return nil
}
