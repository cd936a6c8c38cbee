package settings

import (
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary documents to the decoding and validation the
// live settings apply: they must refuse or accept, never panic, and what
// they accept must survive a round trip.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"service": "authn", "localdb": {"password-enabled": true, "cert-enabled": false}}`,
		`{"ldap": {"password-enabled": true, "connection": {"host": {"address": "h", "port": 389}, "ssl?": true}, "user-id-attr": "uid"}}`,
		`{"session-ttl": "90m", "key-rotation": 86400}`,
		`{"session-ttl": 1e300}`,
		`{"voms": {"enabled": "yes"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s := Defaults()
		if json.Unmarshal(doc, &s) != nil || s.Validate() != nil {
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("accepted settings do not encode: %v", err)
		}
		var back Settings
		if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
			t.Fatalf("accepted settings do not round-trip: %s: %v", b, err)
		}
	})
}
