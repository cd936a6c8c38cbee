package config

import (
	"encoding/json"
	"log/slog"
)

// Secret is a setting that must never reach logs or dumps: every way of
// printing it shows "********" (or "" when unset). Use string(s) where the
// value itself is needed.
type Secret string

const redacted = "********"

func (s Secret) redact() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String redacts the secret for fmt's %v and %s.
func (s Secret) String() string { return s.redact() }

// GoString redacts the secret for fmt's %#v.
func (s Secret) GoString() string { return `"` + s.redact() + `"` }

// LogValue redacts the secret for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redact()) }

// MarshalJSON redacts the secret in JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.redact()) }
