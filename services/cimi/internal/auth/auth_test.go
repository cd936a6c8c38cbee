package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/cimi/internal/api"
)

// Addresses of the tests' clients.
const (
	proxyAddr  = "10.0.0.5:41000"
	clientAddr = "192.0.2.7:52000"
	dnHeader   = "X-Client-DN"
)

func TestAuthenticateSources(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, false, nil)
	e.auth.SetTrust(Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, DNHeader: dnHeader})
	f := e.authn
	now := time.Now()
	good := f.token("alice", []string{"::ADMIN"}, "password", now, time.Hour)
	expired := f.token("alice", nil, "password", now.Add(-2*time.Hour), time.Hour)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + parts[2] + "x." + parts[3]
	basic := func(user, pass string) *http.Request {
		r := request(clientAddr)
		r.SetBasicAuth(user, pass)
		return r
	}
	withCookie := func(r *http.Request, v string) *http.Request {
		r.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: v})
		return r
	}
	tests := []struct {
		name   string
		req    *http.Request
		user   string
		method string
		code   errs.Code
		msg    string // part of the message for people
	}{
		{name: "anonymous", req: request(clientAddr)},
		{name: "other Authorization scheme", req: request(clientAddr, "Authorization", "Negotiate abc")},
		{name: "bearer", req: request(clientAddr, "Authorization", "Bearer "+good), user: "alice", method: "session"},
		{name: "bearer, any case", req: request(clientAddr, "Authorization", "bearer "+good), user: "alice", method: "session"},
		{name: "cookie", req: withCookie(request(clientAddr), good), user: "alice", method: "session"},
		{name: "empty cookie is no cookie", req: withCookie(request(clientAddr), "")},
		{name: "bearer before a bad cookie", req: withCookie(request(clientAddr, "Authorization", "Bearer "+good), "junk"), user: "alice", method: "session"},
		{name: "bad cookie before basic", req: withCookie(basic("alice", alicePassword), "junk"), code: errs.Unauthorized},
		{name: "empty bearer", req: request(clientAddr, "Authorization", "Bearer "), code: errs.Unauthorized},
		{name: "garbage bearer", req: request(clientAddr, "Authorization", "Bearer junk"), code: errs.Unauthorized, msg: "log in again"},
		{name: "expired", req: request(clientAddr, "Authorization", "Bearer "+expired), code: errs.Unauthorized, msg: "Your session has expired: log in again"},
		{name: "tampered", req: request(clientAddr, "Authorization", "Bearer "+tampered), code: errs.Unauthorized},
		{name: "forged key", req: request(clientAddr, "Authorization", "Bearer "+forged(t, "evil")), code: errs.Unauthorized},
		{name: "basic", req: basic("alice", alicePassword), user: "alice", method: "password"},
		{name: "basic, wrong password", req: basic("alice", "wrong"), code: errs.Unauthorized, msg: "username or the password is wrong"},
		{name: "basic, unknown user", req: basic("nobody", "x"), code: errs.Unauthorized},
		{name: "basic, throttled", req: basic(throttled, "x"), code: errs.TooManyRequests},
		{name: "DN from trusted proxy", req: request(proxyAddr, dnHeader, bobDN), user: "bob", method: "certificate"},
		{name: "DN from trusted IPv4-in-IPv6 proxy", req: request("[::ffff:10.0.0.5]:41000", dnHeader, bobDN), user: "bob", method: "certificate"},
		{name: "DN from untrusted client ignored", req: request(clientAddr, dnHeader, bobDN)},
		{name: "unknown DN from trusted proxy", req: request(proxyAddr, dnHeader, "CN=Eve"), code: errs.Unauthorized},
		{name: "basic before DN", req: func() *http.Request {
			r := basic("alice", alicePassword)
			r.RemoteAddr = proxyAddr
			r.Header.Set(dnHeader, bobDN)
			return r
		}(), user: "alice", method: "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := e.auth.Authenticate(tt.req)
			wantCode(t, err, tt.code)
			if err != nil {
				if !strings.Contains(errs.MessageOf(err), tt.msg) {
					t.Errorf("message %q does not say %q", errs.MessageOf(err), tt.msg)
				}
				return
			}
			if s.Identity.User != tt.user || s.Method != tt.method {
				t.Fatalf("session %+v, want user %q by %q", s, tt.user, tt.method)
			}
			if tt.user == "" {
				if s.Token != "" || !s.Expires.IsZero() || len(s.Identity.Roles) != 0 {
					t.Errorf("anonymous session %+v is not zero", s)
				}
				return
			}
			if s.Token == "" || !s.Expires.After(time.Now()) {
				t.Errorf("session %+v has no token or expiry", s)
			}
		})
	}
	t.Run("roles", func(t *testing.T) {
		t.Parallel()
		s, err := e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+good))
		if err != nil || !slices.Equal(s.Identity.Roles, []string{"::ADMIN"}) || s.Token != good {
			t.Fatalf("session %+v, %v", s, err)
		}
	})
}

func TestAuthnUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, true, nil)
	wantCode(t, e.auth.Ready(), errs.Unavailable)
	r := request(clientAddr)
	r.SetBasicAuth("alice", alicePassword)
	_, err := e.auth.Authenticate(r)
	wantCode(t, err, errs.Unavailable)
	tok := e.authn.token("alice", nil, "password", time.Now(), time.Hour)
	_, err = e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+tok))
	wantCode(t, err, errs.Unavailable)
	_, err = e.auth.Login(context.Background(), request(clientAddr), api.Credentials{Username: "alice", Password: alicePassword})
	wantCode(t, err, errs.Unavailable)
	if !strings.Contains(errs.MessageOf(err), "retry later") {
		t.Errorf("message %q does not tell what to do", errs.MessageOf(err))
	}

	// Once authn comes up, Run loads the keys and the same token verifies.
	start(t, e.authn.serve)
	eventually(t, "keys loaded", func() bool { return e.auth.Ready() == nil })
	s, err := e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+tok))
	if err != nil || s.Identity.User != "alice" {
		t.Fatalf("after authn started: %+v, %v", s, err)
	}
}

func TestRevocations(t *testing.T) {
	t.Parallel()
	// One revocation of each kind in force before the gateway starts.
	now := time.Now()
	e := newEnv(t, Options{}, true, nil)
	oldTok := e.authn.token("alice", nil, "password", now, time.Hour)
	carolTok := e.authn.token("carol", nil, "password", now.Add(-time.Minute), time.Hour)
	e.authn.revs = &authnv1.RevocationsResponse{
		Sessions: []*authnv1.SessionRevoked{{TokenId: tokenID(t, oldTok), Expires: timestamppb.New(now.Add(time.Hour))}},
		Users:    []*authnv1.UserSessionsRevoked{{User: "carol", NotBefore: timestamppb.New(now)}},
	}
	start(t, e.authn.serve)
	eventually(t, "keys loaded", func() bool { return e.auth.Ready() == nil })
	ctx := context.Background()
	auth := func(tok string) error {
		_, err := e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+tok))
		return err
	}
	wantCode(t, auth(oldTok), errs.Unauthorized)
	wantCode(t, auth(carolTok), errs.Unauthorized)
	if got := errs.MessageOf(auth(carolTok)); !strings.Contains(got, "account changed") {
		t.Errorf("message %q", got)
	}
	fresh := e.authn.token("carol", nil, "password", time.Now().Add(time.Millisecond), time.Hour)
	wantCode(t, auth(fresh), "")

	// Events take effect on tokens already verified and cached.
	dave := e.authn.token("dave", nil, "password", time.Now(), time.Hour)
	erin := e.authn.token("erin", nil, "password", time.Now(), time.Hour)
	wantCode(t, auth(dave), "")
	wantCode(t, auth(erin), "")
	must(t, e.authn.bus.Publish(ctx, subject.EvtAuthnSessionRevoked,
		&authnv1.SessionRevoked{TokenId: tokenID(t, dave), Expires: timestamppb.New(time.Now().Add(time.Hour))}, ""))
	eventually(t, "session revoked", func() bool { return errs.CodeOf(auth(dave)) == errs.Unauthorized })
	wantCode(t, auth(erin), "")
	must(t, e.authn.bus.Publish(ctx, subject.EvtAuthnUserSessionsRevoked,
		&authnv1.UserSessionsRevoked{User: "erin", NotBefore: timestamppb.New(time.Now().Add(time.Millisecond))}, ""))
	eventually(t, "user sessions revoked", func() bool { return errs.CodeOf(auth(erin)) == errs.Unauthorized })

	// Revocations of tokens that have expired are dropped.
	e.auth.prune(time.Now().Add(2 * time.Hour))
	e.auth.mu.RLock()
	n := len(e.auth.revoked)
	e.auth.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d revocations kept after their tokens expired", n)
	}
}

// tokenID returns the jti of a token, read without verifying it.
func tokenID(t testing.TB, tok string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
	if err != nil {
		t.Fatal(err)
	}
	var c session.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, false, nil)
	ctx := context.Background()
	auth := func(tok string) (api.Session, error) {
		return e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+tok))
	}
	old := e.authn.token("alice", nil, "password", time.Now(), time.Hour)
	wantCode(t, second(auth(old)), "")

	// authn rotates without the event having arrived: the unknown kid makes
	// the gateway fetch the keys once.
	before := e.authn.keyFetches.Load()
	e.authn.rotate(ctx, true, false)
	rotated := e.authn.token("alice", nil, "password", time.Now(), time.Hour)
	wantCode(t, second(auth(rotated)), "")
	if got := e.authn.keyFetches.Load() - before; got != 1 {
		t.Errorf("%d key fetches for one new key, want 1", got)
	}
	wantCode(t, second(auth(old)), "")

	// A flood of forged key ids costs authn at most one fetch a second.
	before = e.authn.keyFetches.Load()
	began := time.Now()
	for i := range 50 {
		_, err := auth(forged(t, "forged"+string(rune('a'+i%26))))
		wantCode(t, err, errs.Unauthorized)
	}
	allowed := int64(time.Since(began)/refetchInterval) + 1
	if got := e.authn.keyFetches.Load() - before; got > allowed {
		t.Errorf("%d key fetches for 50 forged tokens in %s, want at most %d", got, time.Since(began), allowed)
	}

	// A rotation event that drops the old keys refuses their tokens, even
	// those verified and cached, and brings the new key without a fetch.
	e.authn.rotate(ctx, false, true)
	eventually(t, "old key dropped", func() bool { return errs.CodeOf(second(auth(old))) == errs.Unauthorized })
	before = e.authn.keyFetches.Load()
	wantCode(t, second(auth(e.authn.token("alice", nil, "password", time.Now(), time.Hour))), "")
	if got := e.authn.keyFetches.Load() - before; got != 0 {
		t.Errorf("%d key fetches after a rotation event, want 0", got)
	}
}

func second[T any](_ T, err error) error { return err }

func TestBasicCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, false, nil)
	basic := func(pass string) (api.Session, error) {
		r := request(clientAddr)
		r.SetBasicAuth("alice", pass)
		return e.auth.Authenticate(r)
	}
	first, err := basic(alicePassword)
	wantCode(t, err, "")
	again, err := basic(alicePassword)
	wantCode(t, err, "")
	if n := e.authn.logins.Load(); n != 1 {
		t.Fatalf("%d logins for two requests with the same credentials, want 1", n)
	}
	if again.Token != first.Token {
		t.Error("the second request got another session")
	}

	// Refused credentials are not cached.
	wantCode(t, second(basic("wrong")), errs.Unauthorized)
	wantCode(t, second(basic("wrong")), errs.Unauthorized)
	if n := e.authn.logins.Load(); n != 3 {
		t.Fatalf("%d logins, want 3: failures must reach authn every time", n)
	}

	// A revoked cached session makes the next request log in again.
	must(t, e.authn.bus.Publish(context.Background(), subject.EvtAuthnUserSessionsRevoked,
		&authnv1.UserSessionsRevoked{User: "alice", NotBefore: timestamppb.Now()}, ""))
	eventually(t, "revocation seen", func() bool {
		return errs.CodeOf(second(e.auth.Authenticate(request(clientAddr, "Authorization", "Bearer "+first.Token)))) == errs.Unauthorized
	})
	time.Sleep(2 * time.Millisecond) // the new token must be issued after not_before, at millisecond precision
	s, err := basic(alicePassword)
	wantCode(t, err, "")
	if n := e.authn.logins.Load(); n != 4 || s.Token == first.Token {
		t.Fatalf("%d logins (want 4), same token %v", n, s.Token == first.Token)
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, false, nil)
	e.auth.SetTrust(Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}, DNHeader: dnHeader})
	ctx := context.Background()

	tests := []struct {
		name   string
		req    *http.Request
		creds  api.Credentials
		user   string
		method string
		source string
		code   errs.Code
	}{
		{name: "password", req: request(clientAddr), creds: api.Credentials{Username: "alice", Password: alicePassword}, user: "alice", method: "password", source: "192.0.2.7"},
		{name: "forwarded source from trusted proxy", req: request(proxyAddr, "X-Forwarded-For", "198.51.100.1, 203.0.113.9"), creds: api.Credentials{Username: "alice", Password: alicePassword}, user: "alice", method: "password", source: "203.0.113.9"},
		{name: "forwarded source from untrusted client ignored", req: request(clientAddr, "X-Forwarded-For", "203.0.113.9"), creds: api.Credentials{Username: "alice", Password: alicePassword}, user: "alice", method: "password", source: "192.0.2.7"},
		{name: "wrong password", req: request(clientAddr), creds: api.Credentials{Username: "alice", Password: "x"}, code: errs.Unauthorized, source: "192.0.2.7"},
		{name: "DN of trusted proxy", req: request(proxyAddr, dnHeader, bobDN), user: "bob", method: "certificate", source: "10.0.0.5"},
		{name: "nothing to log in with", req: request(clientAddr, dnHeader, bobDN), code: errs.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case reads the last login authn saw.
			before := e.authn.logins.Load()
			s, err := e.auth.Login(ctx, tt.req, tt.creds)
			wantCode(t, err, tt.code)
			if tt.source == "" {
				if e.authn.logins.Load() != before {
					t.Error("authn was asked although there was nothing to log in with")
				}
				return
			}
			if got := e.authn.lastLogin().GetSource(); got != tt.source {
				t.Errorf("source %q, want %q", got, tt.source)
			}
			if err == nil && (s.Identity.User != tt.user || s.Method != tt.method || s.Token == "") {
				t.Errorf("session %+v, want %s by %s", s, tt.user, tt.method)
			}
		})
	}

	// Logout takes effect at once on this gateway, without waiting for
	// authn's event, and at authn.
	e.authn.mu.Lock()
	e.authn.silentLogout = true
	e.authn.mu.Unlock()
	s, err := e.auth.Login(ctx, request(clientAddr), api.Credentials{Username: "alice", Password: alicePassword})
	wantCode(t, err, "")
	bearer := request(clientAddr, "Authorization", "Bearer "+s.Token)
	wantCode(t, second(e.auth.Authenticate(bearer)), "")
	wantCode(t, e.auth.Logout(ctx, s), "")
	wantCode(t, second(e.auth.Authenticate(bearer)), errs.Unauthorized)
	if n := e.authn.logouts.Load(); n != 1 {
		t.Errorf("%d logouts at authn, want 1", n)
	}
	wantCode(t, e.auth.Logout(ctx, api.Session{}), "")
	if n := e.authn.logouts.Load(); n != 1 {
		t.Errorf("logging out an anonymous session asked authn")
	}
	// Logging out twice is not an error.
	wantCode(t, e.auth.Logout(ctx, s), "")
}

func TestCookies(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, secure := range []bool{false, true} {
		a := New(nil, quiet(), Options{SecureCookies: secure})
		w := httptest.NewRecorder()
		a.SetCookie(w, api.Session{Token: "st1.k.p.s", Expires: exp})
		a.ClearCookie(w)
		cs := (&http.Response{Header: w.Header()}).Cookies()
		if len(cs) != 2 {
			t.Fatalf("%d cookies", len(cs))
		}
		set, cleared := cs[0], cs[1]
		for _, c := range cs {
			if c.Name != api.SessionCookie || c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure {
				t.Errorf("cookie %+v", c)
			}
		}
		if set.Value != "st1.k.p.s" || !set.Expires.Equal(exp) {
			t.Errorf("set %+v", set)
		}
		if cleared.Value != "" || cleared.MaxAge >= 0 {
			t.Errorf("cleared %+v", cleared)
		}
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	c := newBounded[int, int](16)
	for i := range 16 {
		until := now.Add(time.Hour)
		if i < 4 {
			until = now.Add(-time.Second)
		}
		c.put(i, i, until, now)
	}
	if _, ok := c.get(1, now); ok {
		t.Error("an expired entry was returned")
	}
	if v, ok := c.get(10, now); !ok || v != 10 {
		t.Errorf("get(10) = %d, %v", v, ok)
	}
	c.put(100, 100, now.Add(time.Hour), now) // overflow: the expired ones go first
	if n := c.len(); n != 13 {
		t.Errorf("%d entries after evicting the expired ones, want 13", n)
	}
	for i := range 1000 {
		c.put(1000+i, i, now.Add(time.Hour), now)
		if c.len() > 16 {
			t.Fatalf("%d entries, bound 16", c.len())
		}
	}
	if _, ok := c.get(1999, now); !ok {
		t.Error("the newest entry was evicted")
	}
	c.prune(now.Add(2 * time.Hour))
	if n := c.len(); n != 0 {
		t.Errorf("%d entries after prune", n)
	}
}
