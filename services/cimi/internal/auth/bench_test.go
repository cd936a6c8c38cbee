package auth

import (
	"testing"
	"time"
)

// BenchmarkAuthenticate measures the cost of authenticating one request:
// a token already verified (the common case), a token verified from
// scratch (Ed25519), and HTTP Basic credentials whose login is cached.
func BenchmarkAuthenticate(b *testing.B) {
	e := newEnv(b, Options{}, false, nil)
	tok := e.authn.token("alice", []string{"::ADMIN"}, "password", time.Now(), time.Hour)
	bearer := request(clientAddr, "Authorization", "Bearer "+tok)
	basic := request(clientAddr)
	basic.SetBasicAuth("alice", alicePassword)
	for _, r := range []struct {
		name string
		run  func(b *testing.B)
	}{
		{"cached token", func(b *testing.B) {
			for b.Loop() {
				if _, err := e.auth.Authenticate(bearer); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"cold verify", func(b *testing.B) {
			for b.Loop() {
				e.auth.tokens.remove(tok)
				if _, err := e.auth.Authenticate(bearer); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"cached basic", func(b *testing.B) {
			for b.Loop() {
				if _, err := e.auth.Authenticate(basic); err != nil {
					b.Fatal(err)
				}
			}
		}},
	} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			r.run(b)
		})
	}
	if n := e.authn.logins.Load(); n != 1 {
		b.Errorf("%d logins for cached Basic credentials, want 1", n)
	}
}
