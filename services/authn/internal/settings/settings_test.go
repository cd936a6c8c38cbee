package settings

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeAndValidate(t *testing.T) {
	t.Parallel()
	ldap := `"ldap": {"password-enabled": true, "connection": {"host": {"address": "ldap.example.org"}, "ssl?": true},
		"user-object-class": "inetOrgPerson", "user-base-dn": "ou=users,o=cloud", "user-id-attr": "uid",
		"role-object-class": "groupOfUniqueNames", "role-base-dn": "ou=groups,o=cloud",
		"role-member-attr": "uniqueMember", "role-name-attr": "cn", "skip-bind?": false}`
	tests := []struct {
		name    string
		doc     string
		wantErr string // substring; "" for valid
		check   func(t *testing.T, s Settings)
	}{
		{"absent", ``, "", func(t *testing.T, s Settings) {
			if !s.LocalDB.PasswordEnabled || s.LocalDB.CertEnabled || s.LDAP != nil || s.VOMS.Enabled {
				t.Errorf("defaults %+v", s)
			}
			if s.SessionTTL.D() != time.Hour || s.KeyRotation.D() != 24*time.Hour {
				t.Errorf("durations %v %v", s.SessionTTL.D(), s.KeyRotation.D())
			}
		}},
		{"seed example", `{"service": "authn", "localdb": {"password-enabled": true, "cert-enabled": false},
			"ldap": {"password-enabled": false, "cert-enabled": false}, "voms": {"enabled": true}}`, "", func(t *testing.T, s Settings) {
			if !s.VOMS.Enabled || s.LDAP == nil || s.LDAP.PasswordEnabled {
				t.Errorf("decoded %+v", s)
			}
		}},
		{"full ldap", `{"service": "authn", ` + ldap + `, "session-ttl": "30m", "key-rotation": 7200}`, "", func(t *testing.T, s Settings) {
			if s.LDAP.Connection.Port() != 636 || s.LDAP.UserIDAttr != "uid" || s.SessionTTL.D() != 30*time.Minute || s.KeyRotation.D() != 2*time.Hour {
				t.Errorf("decoded %+v", s.LDAP)
			}
		}},
		{"wrong service", `{"service": "pdisk"}`, `"service" must be "authn"`, nil},
		{"ldap incomplete", `{"ldap": {"password-enabled": true, "connection": {"host": {"address": "x"}}}}`, `"ldap/user-base-dn" is required`, nil},
		{"filter in an attribute name", `{"ldap": {"password-enabled": true, "connection": {"host": {"address": "x"}},
			"user-object-class": "inetOrgPerson", "user-base-dn": "ou=users,o=cloud", "user-id-attr": "uid)(cn=*",
			"role-object-class": "groupOfUniqueNames", "role-base-dn": "ou=groups,o=cloud",
			"role-member-attr": "uniqueMember", "role-name-attr": "2.5.4.3"}}`, `"ldap/user-id-attr" must be an LDAP attribute`, nil},
		{"ttl too short", `{"session-ttl": "10s"}`, `"session-ttl" must be between`, nil},
		{"rotation too long", `{"key-rotation": "10000h"}`, `"key-rotation" must be between`, nil},
		{"bad duration", `{"session-ttl": "soon"}`, `not a duration`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Defaults()
			var err error
			if tt.doc != "" {
				err = json.Unmarshal([]byte(tt.doc), &s)
			}
			if err == nil {
				err = s.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestDurationRoundTrip(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.SessionTTL != Defaults().SessionTTL || !strings.Contains(string(b), `"session-ttl":"1h0m0s"`) {
		t.Errorf("round trip %s", b)
	}
}
