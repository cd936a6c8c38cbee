package addresses_test

import (
	"strings"
	"testing"

	"stratuslab.dev/services/vmctl/internal/addresses"
)

// FuzzPool feeds pool attributes as an administrator might write them:
// validation must never panic, and a pool it accepts must give DHCP entries
// that name each of its addresses once.
func FuzzPool(f *testing.F) {
	f.Add("10.1.0.0/24", "10.1.0.1", "10.1.0.10-10.1.0.12", "02:00", "vm-{last}", "example.org", "")
	f.Add("134.158.75.0/24", "134.158.75.1", "", "", "vm-{ip}", "lal.stratuslab.eu", "134.158.75.42=0a:00:86:9e:4b:2a")
	f.Add("10.1.0.7/24", "", "10.1.0.12-10.1.0.10", "03:00", "vm-{id}", "bad_domain", "10.1.0.5=01:00:5e:00:00:01")
	f.Add("fd00::/64", "fd00::1", "fd00::2-fd00::9", "0a-00", "{ip}{last}", ".", "x=y")
	f.Fuzz(func(t *testing.T, subnet, gateway, rng, prefix, tmpl, domain, pairs string) {
		p := addresses.Pool{
			Network: addresses.Local, Subnet: subnet, Gateway: gateway, Range: rng,
			MACPrefix: prefix, Hostname: tmpl, Domain: domain,
		}
		for _, pr := range strings.Split(pairs, ",") {
			if ip, mac, ok := strings.Cut(pr, "="); ok {
				p.Pairs = append(p.Pairs, addresses.Pair{IP: ip, MAC: mac})
			}
		}
		if p.Validate() != nil {
			return
		}
		out, err := addresses.DNSMasq([]addresses.Pool{p})
		if err != nil {
			t.Fatalf("valid pool %+v gives no dnsmasq entries: %v", p, err)
		}
		hosts := strings.Count(out, "\ndhcp-host=")
		if n := len(p.Pairs); n > 0 && hosts != n {
			t.Fatalf("%d pairs give %d dhcp-host lines", n, hosts)
		}
		if hosts == 0 || hosts > addresses.MaxPoolSize {
			t.Fatalf("%d dhcp-host lines", hosts)
		}
	})
}
