package settings

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestValidate reads documents over the defaults, as the live settings
// do, and checks what Validate refuses.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name, doc, err string
		shutdown       time.Duration
	}{
		{"defaults", `{}`, "", time.Minute},
		{"shutdown timeout", `{"shutdown-timeout": "2m30s"}`, "", 150 * time.Second},
		{"shutdown timeout in seconds", `{"shutdown-timeout": 5}`, "", 5 * time.Second},
		{"shutdown timeout too short", `{"shutdown-timeout": "0s"}`, "shutdown-timeout must be between 1s and 5m0s", 0},
		{"shutdown timeout too long", `{"shutdown-timeout": "6m"}`, "shutdown-timeout must be between 1s and 5m0s", 0},
		{"host lost too early", `{"host-lost-after": "1s"}`, "host-lost-after", 0},
		{"wrong service", `{"service": "pdisk"}`, "service must be", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Defaults()
			if err := json.Unmarshal([]byte(tt.doc), &s); err != nil {
				t.Fatal(err)
			}
			err := s.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if s.ShutdownTimeout.D() != tt.shutdown {
					t.Errorf("shutdown-timeout is %s, want %s", s.ShutdownTimeout.D(), tt.shutdown)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Validate = %v, want an error about %q", err, tt.err)
			}
		})
	}
}

// TestImagePolicy: expired and deprecated Marketplace images are refused
// unless the site says otherwise, each on its own.
func TestImagePolicy(t *testing.T) {
	for _, tt := range []struct {
		doc                 string
		expired, deprecated bool
	}{
		{`{}`, false, false},
		{`{"allow-expired-images": true}`, true, false},
		{`{"allow-deprecated-images": true}`, false, true},
		{`{"allow-expired-images": true, "allow-deprecated-images": true}`, true, true},
	} {
		s := Defaults()
		if err := json.Unmarshal([]byte(tt.doc), &s); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", tt.doc, err)
		}
		if s.AllowExpiredImages != tt.expired || s.AllowDeprecatedImages != tt.deprecated {
			t.Errorf("%s: allow expired %v, deprecated %v; want %v, %v", tt.doc, s.AllowExpiredImages, s.AllowDeprecatedImages, tt.expired, tt.deprecated)
		}
	}
}
