package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/x509auth/x509test"
	"stratuslab.dev/services/cimi/internal/api"
)

// outcome is what the test server tells about a request.
type outcome struct {
	User   string
	Roles  []string
	Method string
	Code   errs.Code
}

// tlsServer serves Authenticate (/) and Login with empty credentials
// (/login) over real TLS, requesting client certificates as the gateway
// does.
func tlsServer(t *testing.T, a *Auth) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s api.Session
		var err error
		if r.URL.Path == "/login" {
			s, err = a.Login(r.Context(), r, api.Credentials{})
		} else {
			s, err = a.Authenticate(r)
		}
		_ = json.NewEncoder(w).Encode(outcome{User: s.Identity.User, Roles: s.Identity.Roles, Method: s.Method, Code: errs.CodeOf(err)})
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request to srv presenting cert (none when empty).
func get(t *testing.T, srv *httptest.Server, path string, cert tls.Certificate) outcome {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert.Certificate != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitLimit}).Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var o outcome
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCertificates(t *testing.T) {
	t.Parallel()
	ca := x509test.NewCA(t, "Grid CA")
	vomsCA := x509test.NewCA(t, "VOMS CA")
	rogue := x509test.NewCA(t, "Rogue CA")
	bob, bobKey := ca.Issue(t, "Bob")
	vomsServer, vomsKey := vomsCA.Issue(t, "voms.lal.in2p3.fr")
	fqans := []string{"/vo.lal.in2p3.fr/Role=admin/Capability=NULL"}
	ac := x509test.NewVOMSAC(t, vomsServer, vomsKey, bob, "vo.lal.in2p3.fr", fqans, time.Now().Add(time.Hour))
	proxy, proxyKey := x509test.NewProxy(t, bob, bobKey, true, nil)
	vomsProxy, vomsProxyKey := x509test.NewProxy(t, bob, bobKey, true, ac)
	fake, fakeKey := rogue.Issue(t, "Bob")
	expired, expiredKey := ca.Issue(t, "Bob", x509test.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)))

	e := newEnv(t, Options{ClientRoots: ca.Pool(), VOMSRoots: vomsCA.Pool()}, false, nil)
	e.authn.setDN(bob.Subject.String(), "bob")
	srv := tlsServer(t, e.auth)

	tests := []struct {
		name   string
		cert   tls.Certificate
		path   string
		user   string
		roles  []string
		method string
		code   errs.Code
	}{
		{name: "no certificate", cert: tls.Certificate{}},
		{name: "user certificate", cert: x509test.TLSCertificate(bobKey, bob), user: "bob", method: "certificate"},
		{name: "RFC 3820 proxy", cert: x509test.TLSCertificate(proxyKey, proxy, bob), user: "bob", method: "certificate"},
		{name: "VOMS proxy", cert: x509test.TLSCertificate(vomsProxyKey, vomsProxy, bob), user: bob.Subject.String(), roles: fqans, method: "voms"},
		{name: "untrusted CA", cert: x509test.TLSCertificate(fakeKey, fake), code: errs.Unauthorized},
		{name: "expired certificate", cert: x509test.TLSCertificate(expiredKey, expired), code: errs.Unauthorized},
		{name: "login with certificate", path: "/login", cert: x509test.TLSCertificate(bobKey, bob), user: "bob", method: "certificate"},
		{name: "login without anything", path: "/login", code: errs.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := get(t, srv, tt.path, tt.cert)
			want := outcome{User: tt.user, Roles: tt.roles, Method: tt.method, Code: tt.code}
			if got.User != want.User || got.Method != want.Method || got.Code != want.Code || !slices.Equal(got.Roles, want.Roles) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}

	t.Run("cached", func(t *testing.T) {
		t.Parallel()
		alice, aliceKey := ca.Issue(t, "Alice")
		e := newEnv(t, Options{ClientRoots: ca.Pool()}, false, nil)
		e.authn.setDN(alice.Subject.String(), "alice")
		srv := tlsServer(t, e.auth)
		cert := x509test.TLSCertificate(aliceKey, alice)
		for range 3 {
			if got := get(t, srv, "/", cert); got.User != "alice" {
				t.Fatalf("got %+v", got)
			}
		}
		if n := e.authn.logins.Load(); n != 1 {
			t.Errorf("%d logins for three requests with one certificate, want 1", n)
		}
	})

	t.Run("VOMS signer found among the configured VOMS certificates", func(t *testing.T) {
		t.Parallel()
		bare := x509test.NewVOMSAC(t, vomsServer, vomsKey, bob, "vo.lal.in2p3.fr", fqans, time.Now().Add(time.Hour), x509test.WithoutSigner())
		p, pk := x509test.NewProxy(t, bob, bobKey, true, bare)
		cert := x509test.TLSCertificate(pk, p, bob)
		for _, tt := range []struct {
			name  string
			certs []*x509.Certificate
			want  string
		}{{"configured", []*x509.Certificate{vomsServer}, "voms"}, {"not configured", nil, "certificate"}} {
			e := newEnv(t, Options{ClientRoots: ca.Pool(), VOMSRoots: vomsCA.Pool(), VOMSCerts: tt.certs}, false, nil)
			e.authn.setDN(bob.Subject.String(), "bob")
			if got := get(t, tlsServer(t, e.auth), "/", cert); got.Method != tt.want {
				t.Errorf("%s: got %+v, want method %s", tt.name, got, tt.want)
			}
		}
	})

	t.Run("certificate logins disabled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{}, false, nil)
		srv := tlsServer(t, e.auth)
		if got := get(t, srv, "/", x509test.TLSCertificate(bobKey, bob)); got.User != "" || got.Method != "" || got.Code != "" {
			t.Errorf("got %+v, want anonymous", got)
		}
	})
}

func TestChainExpiry(t *testing.T) {
	t.Parallel()
	a, b := time.Now().Add(time.Hour), time.Now().Add(time.Minute)
	got := chainExpiry([]*x509.Certificate{{NotAfter: a}, {NotAfter: b}})
	if !got.Equal(b) {
		t.Errorf("chainExpiry = %s, want the earliest, %s", got, b)
	}
}
