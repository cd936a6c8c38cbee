package cimi

import (
	"crypto/tls"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
)

func TestUseTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode, listen string
		want         bool
		wantErr      bool
	}{
		{"auto", "127.0.0.1:8080", false, false},
		{"auto", "[::1]:8080", false, false},
		{"auto", "localhost:8080", false, false},
		{"auto", "0.0.0.0:443", true, false},
		{"auto", ":443", true, false},
		{"auto", "cloud.example.org:443", true, false},
		{"", "10.0.0.1:443", true, false},
		{"on", "127.0.0.1:8443", true, false},
		{"off", "127.0.0.1:8080", false, false},
		{"off", "0.0.0.0:8080", false, true},
		{"off", ":8080", false, true},
		{"maybe", "127.0.0.1:8080", false, true},
	}
	for _, tt := range tests {
		got, err := useTLS(tt.mode, tt.listen)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("useTLS(%q, %q) = %v, %v; want %v, error %v", tt.mode, tt.listen, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s       settings
		proxies []netip.Prefix
		wait    time.Duration
		wantErr bool
	}{
		{settings{}, nil, 5 * time.Second, false},
		{settings{TrustedProxies: []string{"10.0.0.0/24", "192.168.1.7"}, ClientDNHeader: "X-Client-DN", WriteWait: "250ms"},
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("192.168.1.7/32")}, 250 * time.Millisecond, false},
		{settings{TrustedProxies: []string{"nope"}}, nil, 0, true},
		{settings{WriteWait: "soon"}, nil, 0, true},
		{settings{WriteWait: "-1s"}, nil, 0, true},
		{settings{WriteWait: "1h"}, nil, 0, true},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if (err != nil) != tt.wantErr {
			t.Errorf("%+v: Validate() = %v", tt.s, err)
			continue
		}
		if err != nil {
			continue
		}
		tr, _ := tt.s.trust()
		wait, _ := tt.s.writeWait()
		if !slices.Equal(tr.Proxies, tt.proxies) || tr.DNHeader != tt.s.ClientDNHeader || wait != tt.wait {
			t.Errorf("%+v: trust %+v, wait %v", tt.s, tr, wait)
		}
	}
}

func TestNewListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		boot       config.Bootstrap
		wantScheme string
		wantErr    string
	}{
		{config.Bootstrap{Listen: "127.0.0.1:0", TLS: config.TLSAuto, DataDir: dir}, "http", ""},
		{config.Bootstrap{Listen: "127.0.0.1:0", TLS: config.TLSOn, DataDir: dir}, "https", ""},
		{config.Bootstrap{Listen: "0.0.0.0:0", TLS: config.TLSOff, DataDir: dir}, "", "loopback"},
		{config.Bootstrap{Listen: "127.0.0.1:0", TLS: config.TLSOn, DataDir: dir, TLSCert: filepath.Join(dir, "none.pem")}, "", "tls_key"},
		{config.Bootstrap{Listen: "127.0.0.1:0", TLS: config.TLSAuto, DataDir: dir, ClientCAs: filepath.Join(dir, "none")}, "", "client_cas"},
	}
	for _, tt := range tests {
		s, err := New(&daemon.Deps{Boot: tt.boot})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: error %v, want one mentioning %q", tt.boot, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tt.boot, err)
			continue
		}
		if s.Scheme() != tt.wantScheme {
			t.Errorf("%+v: scheme %q", tt.boot, s.Scheme())
		}
		if tt.wantScheme == "https" {
			// The listener speaks TLS with the self-signed certificate
			// kept in the data directory.
			go func() {
				if c, err := s.listener.Accept(); err == nil {
					_ = c.(*tls.Conn).Handshake()
					c.Close()
				}
			}()
			c, err := tls.Dial("tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Errorf("TLS handshake: %v", err)
			} else {
				if cn := c.ConnectionState().PeerCertificates[0]; cn == nil {
					t.Error("no server certificate")
				}
				c.Close()
			}
			if _, err := os.Stat(filepath.Join(dir, Name, "tls", "cert.pem")); err != nil {
				t.Errorf("self-signed certificate not kept: %v", err)
			}
		}
		s.listener.Close()
	}
}
