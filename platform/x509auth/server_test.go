package x509auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"stratuslab.dev/platform/x509auth/x509test"
)

func TestServerConfigSelfSigned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := ServerOptions{DataDir: dir, Hosts: []string{"cloud.example.org", "127.0.0.1"}, ClientAuth: true}
	first, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	if first.MinVersion != tls.VersionTLS12 || first.ClientAuth != tls.RequestClientCert {
		t.Errorf("MinVersion %x, ClientAuth %v; want TLS 1.2 and RequestClientCert", first.MinVersion, first.ClientAuth)
	}
	leaf := first.Certificates[0].Leaf
	if !slices.Equal(leaf.DNSNames, []string{"cloud.example.org"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("certificate names %v %v, want cloud.example.org and 127.0.0.1", leaf.DNSNames, leaf.IPAddresses)
	}
	if err := leaf.VerifyHostname("cloud.example.org"); err != nil {
		t.Error(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	second, err := ServerConfig(ServerOptions{DataDir: dir, Hosts: o.Hosts})
	if err != nil {
		t.Fatalf("ServerConfig again: %v", err)
	}
	if !bytes.Equal(first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]) {
		t.Error("the second start generated a new certificate instead of reusing the first")
	}
	if second.ClientAuth != tls.NoClientCert {
		t.Errorf("ClientAuth %v without ClientAuth option", second.ClientAuth)
	}
}

func TestServerConfigRegeneratesExpired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := selfSigned(dir, []string{"localhost"}, time.Now().Add(-2*selfSignedLifetime))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ServerConfig(ServerOptions{DataDir: dir, Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	if bytes.Equal(old.Certificate[0], c.Certificates[0].Certificate[0]) {
		t.Fatal("an expired certificate was reused")
	}
	if !time.Now().Before(c.Certificates[0].Leaf.NotAfter) {
		t.Error("the new certificate is expired too")
	}
}

func TestServerConfigFiles(t *testing.T) {
	t.Parallel()
	ca := x509test.NewCA(t, "Site CA")
	host, key := ca.Issue(t, "cloud.example.org", x509test.DNSNames("cloud.example.org"), x509test.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "host.pem"), filepath.Join(dir, "hostkey.pem")
	x509test.WriteCertPEM(t, certFile, host, ca.Cert)
	x509test.WriteKeyPEM(t, keyFile, key)
	tests := []struct {
		name    string
		o       ServerOptions
		wantErr bool
	}{
		{name: "certificate and key", o: ServerOptions{CertFile: certFile, KeyFile: keyFile, DataDir: dir}},
		{name: "certificate without key", o: ServerOptions{CertFile: certFile, DataDir: dir}, wantErr: true},
		{name: "key that is not a key", o: ServerOptions{CertFile: certFile, KeyFile: certFile}, wantErr: true},
		{name: "nothing configured and no data directory", o: ServerOptions{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ServerConfig(tt.o)
			if tt.wantErr {
				if err == nil {
					t.Fatal("ServerConfig succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ServerConfig: %v", err)
			}
			if got := c.Certificates[0].Certificate; len(got) != 2 || !bytes.Equal(got[0], host.Raw) {
				t.Error("ServerConfig did not serve the configured chain")
			}
			if _, err := os.Stat(filepath.Join(dir, "tls")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a self-signed pair was written although a certificate is configured (%v)", err)
			}
		})
	}
}

// TestHandshake runs real TLS between clients presenting certificates and
// proxy chains and a server configured by ServerConfig that checks them
// with Verify.
func TestHandshake(t *testing.T) {
	t.Parallel()
	ca := x509test.NewCA(t, "Grid CA")
	vomsCA := x509test.NewCA(t, "VOMS CA")
	user, userKey := ca.Issue(t, "Alice")
	voms, vomsKey := vomsCA.Issue(t, "voms.example.org")
	ac := x509test.NewVOMSAC(t, voms, vomsKey, user, "vo.example.org", nil, time.Now().Add(time.Hour))
	proxy, proxyKey := x509test.NewProxy(t, user, userKey, true, ac)
	legacy, legacyKey := x509test.NewProxy(t, user, userKey, false, nil)
	stranger, strangerKey := x509test.NewCA(t, "Unknown CA").Issue(t, "Eve")

	dir := t.TempDir()
	cfg, err := ServerConfig(ServerOptions{DataDir: dir, Hosts: []string{"localhost"}, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(cfg.Certificates[0].Leaf)
	opts := Options{Roots: ca.Pool(), VOMSRoots: vomsCA.Pool()}

	tests := []struct {
		name    string
		version uint16
		client  []tls.Certificate
		want    Verified
		wantErr bool
	}{
		{name: "VOMS proxy over TLS 1.3", version: tls.VersionTLS13, client: []tls.Certificate{x509test.TLSCertificate(proxyKey, proxy, user)},
			want: Verified{DN: "CN=Alice,O=StratusLab Test", Proxy: true, VO: "vo.example.org", FQANs: []string{"/vo.example.org/Role=NULL/Capability=NULL"}}},
		{name: "legacy proxy over TLS 1.2", version: tls.VersionTLS12, client: []tls.Certificate{x509test.TLSCertificate(legacyKey, legacy, user, ca.Cert)},
			want: Verified{DN: "CN=Alice,O=StratusLab Test", Proxy: true}},
		{name: "user certificate", version: tls.VersionTLS13, client: []tls.Certificate{x509test.TLSCertificate(userKey, user)},
			want: Verified{DN: "CN=Alice,O=StratusLab Test"}},
		{name: "unknown CA", version: tls.VersionTLS13, client: []tls.Certificate{x509test.TLSCertificate(strangerKey, stranger)}, wantErr: true},
		{name: "no certificate", version: tls.VersionTLS13, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type result struct {
				v   Verified
				err error
			}
			done := make(chan result, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					done <- result{err: err}
					return
				}
				defer conn.Close()
				tc := conn.(*tls.Conn)
				if err := tc.HandshakeContext(context.Background()); err != nil {
					done <- result{err: err}
					return
				}
				v, err := Verify(tc.ConnectionState().PeerCertificates, opts)
				done <- result{v, err}
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				ServerName:   "localhost",
				RootCAs:      serverRoots,
				Certificates: tt.client,
				MinVersion:   tt.version,
				MaxVersion:   tt.version,
			})
			if err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			// The connection stays open until the server has read the
			// client's certificate, which TLS 1.3 clients send after Dial
			// returns.
			r := <-done
			conn.Close()
			if tt.wantErr {
				if r.err == nil {
					t.Fatalf("server verified %+v, want an error", r.v)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			if r.v.DN != tt.want.DN || r.v.Proxy != tt.want.Proxy || r.v.VO != tt.want.VO || !slices.Equal(r.v.FQANs, tt.want.FQANs) {
				t.Errorf("server verified %+v, want %+v", r.v, tt.want)
			}
		})
	}
}
