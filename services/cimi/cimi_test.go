package cimi

import (
	"net/netip"
	"slices"
	"testing"
	"time"
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
