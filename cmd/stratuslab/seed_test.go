package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"stratuslab.dev/platform/config"
)

func TestSeedSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args, rest []string
		env        string
		on         bool
		err        string
	}{
		{args: []string{"--data-dir", "d"}, rest: []string{"--data-dir", "d"}, on: true},
		{args: []string{"--seed-catalogue=false", "--listen", "x"}, rest: []string{"--listen", "x"}, on: false},
		{args: []string{"-seed-catalogue=0"}, rest: []string{}, on: false},
		{args: []string{"--seed-catalogue"}, env: "false", rest: []string{}, on: true},
		{args: []string{"--data-dir", "d"}, env: "false", rest: []string{"--data-dir", "d"}, on: false},
		{args: []string{"--seed-catalogue=false", "--seed-catalogue=true"}, rest: []string{}, on: true},
		{args: []string{"--", "--seed-catalogue=false"}, rest: []string{"--", "--seed-catalogue=false"}, on: true},
		{args: []string{"--seed-catalogues=false"}, rest: []string{"--seed-catalogues=false"}, on: true},
		{args: []string{"--seed-catalogue=maybe"}, err: "flag --seed-catalogue"},
		{env: "sometimes", err: "STRATUSLAB_SEED_CATALOGUE"},
	} {
		on, rest, err := seedSetting(tc.args, func(k string) string {
			if k == seedEnv {
				return tc.env
			}
			return ""
		})
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q env %q: error %v, want one naming %s", tc.args, tc.env, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q env %q: %v", tc.args, tc.env, err)
		case on != tc.on || !slices.Equal(rest, tc.rest):
			t.Errorf("%q env %q: %v %q, want %v %q", tc.args, tc.env, on, rest, tc.on, tc.rest)
		}
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		listen, actual, public, loopback string
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1"},
		{"127.0.0.1:0", "127.0.0.1:41234", "127.0.0.1:41234", "127.0.0.1"},
		{"0.0.0.0:8443", "0.0.0.0:8443", host + ":8443", "127.0.0.1"},
		{":8443", "[::]:8443", host + ":8443", "127.0.0.1"},
		{"cloud.example.org:443", "192.0.2.7:443", "cloud.example.org:443", "192.0.2.7"},
		{"[::1]:8080", "[::1]:8080", "[::1]:8080", "::1"},
	} {
		if got := publicAddr(tc.listen, tc.actual); got != tc.public {
			t.Errorf("publicAddr(%q, %q) = %q, want %q", tc.listen, tc.actual, got, tc.public)
		}
		if got := loopbackOf(tc.actual); got != tc.loopback {
			t.Errorf("loopbackOf(%q) = %q, want %q", tc.actual, got, tc.loopback)
		}
	}
}

// TestImageCAs: pdisk trusts the gateway's own certificate for the seeded
// locations when the gateway serves HTTPS, unless the site chose its CAs.
func TestImageCAs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		boot   config.Bootstrap
		scheme string
		want   string
	}{
		{"plain HTTP", config.Bootstrap{DataDir: "/d"}, "http", ""},
		{"plain HTTP, site CAs", config.Bootstrap{DataDir: "/d", ImageCAs: "/etc/cas"}, "http", "/etc/cas"},
		{"self-signed", config.Bootstrap{DataDir: "/d"}, "https", "/d/cimi/tls/cert.pem"},
		{"given certificate", config.Bootstrap{DataDir: "/d", TLSCert: "/etc/gw.pem"}, "https", "/etc/gw.pem"},
		{"site CAs win", config.Bootstrap{DataDir: "/d", TLSCert: "/etc/gw.pem", ImageCAs: "/etc/cas"}, "https", "/etc/cas"},
	} {
		if got := imageCAs(tc.boot, tc.scheme); got != tc.want {
			t.Errorf("%s: imageCAs = %q, want %q", tc.name, got, tc.want)
		}
	}
}
