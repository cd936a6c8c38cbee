package addresses_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/vmctl/internal/addresses"
)

// lal is a pool like the public network of the LAL StratusLab site.
func lal() addresses.Pool {
	return addresses.Pool{
		Network: addresses.Public, Subnet: "134.158.75.0/24", Gateway: "134.158.75.1",
		DNS: []string{"134.158.88.149", "134.158.88.147"}, Domain: "lal.stratuslab.eu", Hostname: "vm-{last}",
		Pairs: []addresses.Pair{
			{IP: "134.158.75.42", MAC: "0a:00:86:9e:4b:2a"},
			{IP: "134.158.75.43", MAC: "0a:00:86:9e:4b:2b"},
		},
	}
}

// ranged is a local pool given as a range.
func ranged() addresses.Pool {
	return addresses.Pool{Network: addresses.Local, Subnet: "10.1.0.0/24", Gateway: "10.1.0.1", Range: "10.1.0.10-10.1.0.12"}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	edit := func(p addresses.Pool, f func(*addresses.Pool)) addresses.Pool {
		p.Pairs = append([]addresses.Pair(nil), p.Pairs...)
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name string
		pool addresses.Pool
		want string // the message; "" for a valid pool
	}{
		{"pairs", lal(), ""},
		{"range", ranged(), ""},
		{"no gateway, dns or domain", addresses.Pool{Network: addresses.Private, Subnet: "172.16.0.0/16", Range: "172.16.0.1-172.16.255.254"}, ""},
		{"mac with dashes and capitals", edit(lal(), func(p *addresses.Pool) { p.Pairs[0].MAC = "0A-00-86-9E-4B-2A" }), ""},
		{"globally administered mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[0].MAC = "00:16:3e:00:00:01" }), ""},
		{"mac prefix", edit(ranged(), func(p *addresses.Pool) { p.MACPrefix = "0a:00" }), ""},
		{"single address range", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.10-10.1.0.10" }), ""},

		{"unknown network", edit(ranged(), func(p *addresses.Pool) { p.Network = "dmz" }),
			`Address pool dmz 10.1.0.0/24: the network must be public, local or private, not "dmz".`},
		{"bad cidr", edit(ranged(), func(p *addresses.Pool) { p.Subnet = "10.1.0.0/33" }),
			`Address pool local 10.1.0.0/33: the subnet "10.1.0.0/33" is not an IPv4 network in CIDR notation such as 10.1.0.0/24.`},
		{"no cidr", edit(ranged(), func(p *addresses.Pool) { p.Subnet = "" }),
			`Address pool local: the subnet "" is not an IPv4 network in CIDR notation such as 10.1.0.0/24.`},
		{"ipv6 subnet", edit(ranged(), func(p *addresses.Pool) { p.Subnet = "fd00::/64" }),
			`Address pool local fd00::/64: the subnet "fd00::/64" is not an IPv4 network in CIDR notation such as 10.1.0.0/24.`},
		{"host bits", edit(ranged(), func(p *addresses.Pool) { p.Subnet = "10.1.0.7/24" }),
			`Address pool local 10.1.0.7/24: the subnet 10.1.0.7/24 has bits set after the prefix; write 10.1.0.0/24.`},
		{"tiny subnet", edit(ranged(), func(p *addresses.Pool) { p.Subnet = "10.1.0.8/31" }),
			`Address pool local 10.1.0.8/31: the subnet 10.1.0.8/31 has no room for machines; use a /30 or larger.`},
		{"bad gateway", edit(ranged(), func(p *addresses.Pool) { p.Gateway = "10.1.0" }),
			`Address pool local 10.1.0.0/24: the gateway "10.1.0" is not an IPv4 address.`},
		{"gateway outside", edit(ranged(), func(p *addresses.Pool) { p.Gateway = "10.2.0.1" }),
			`Address pool local 10.1.0.0/24: the gateway 10.2.0.1 is outside the subnet.`},
		{"gateway broadcast", edit(ranged(), func(p *addresses.Pool) { p.Gateway = "10.1.0.255" }),
			`Address pool local 10.1.0.0/24: the gateway 10.1.0.255 is the subnet's network or broadcast address.`},
		{"bad dns", edit(ranged(), func(p *addresses.Pool) { p.DNS = []string{"ns.example.org"} }),
			`Address pool local 10.1.0.0/24: the DNS server "ns.example.org" is not an IPv4 address.`},
		{"bad domain", edit(ranged(), func(p *addresses.Pool) { p.Domain = "lal_stratuslab.eu" }),
			`Address pool local 10.1.0.0/24: the domain "lal_stratuslab.eu" is not a DNS name such as cloud.example.org.`},
		{"unknown placeholder", edit(ranged(), func(p *addresses.Pool) { p.Hostname = "vm-{id}" }),
			`Address pool local 10.1.0.0/24: the host name template "vm-{id}" may use only the placeholders {ip} and {last}.`},
		{"bad host name", edit(ranged(), func(p *addresses.Pool) { p.Hostname = "vm_{last}" }),
			`Address pool local 10.1.0.0/24: the host name template "vm_{last}" names 10.1.0.10 "vm_10", which is not a host name (letters, digits and '-', at most 63).`},
		{"last beyond a /24", addresses.Pool{Network: addresses.Local, Subnet: "10.1.0.0/23", Hostname: "vm-{last}", Range: "10.1.0.250-10.1.1.250"},
			`Address pool local 10.1.0.0/23: the host name template "vm-{last}" names both 10.1.0.250 and 10.1.1.250 "vm-250"; use {ip} in it, as {last} is unique only within a /24.`},
		{"constant host name", edit(ranged(), func(p *addresses.Pool) { p.Hostname = "vm" }),
			`Address pool local 10.1.0.0/24: the host name template "vm" names both 10.1.0.10 and 10.1.0.11 "vm"; use {ip} in it, as {last} is unique only within a /24.`},
		{"neither", edit(ranged(), func(p *addresses.Pool) { p.Range = "" }),
			`Address pool local 10.1.0.0/24: give the addresses as pairs of ip and mac, or as a range such as 10.1.0.10-10.1.0.250.`},
		{"both", edit(lal(), func(p *addresses.Pool) { p.Range = "134.158.75.10-134.158.75.20" }),
			`Address pool public 134.158.75.0/24: give the addresses either as pairs or as a range, not both.`},
		{"prefix with pairs", edit(lal(), func(p *addresses.Pool) { p.MACPrefix = "0a:00" }),
			`Address pool public 134.158.75.0/24: the MAC prefix applies to a range only; pairs carry their own MAC addresses.`},
		{"bad pair ip", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.75" }),
			`Address pool public 134.158.75.0/24: pair 2: "134.158.75" is not an IPv4 address.`},
		{"pair outside subnet", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.76.43" }),
			`Address pool public 134.158.75.0/24: the address 134.158.76.43 is outside the subnet.`},
		{"pair is gateway", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.75.1" }),
			`Address pool public 134.158.75.0/24: the address 134.158.75.1 is the gateway.`},
		{"pair is network address", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.75.0" }),
			`Address pool public 134.158.75.0/24: the address 134.158.75.0 is the subnet's network address.`},
		{"pair is broadcast", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.75.255" }),
			`Address pool public 134.158.75.0/24: the address 134.158.75.255 is the subnet's broadcast address.`},
		{"bad mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].MAC = "0a:00:86:9e:4b" }),
			`Address pool public 134.158.75.0/24: pair 2: the MAC address "0a:00:86:9e:4b" is not six bytes such as 02:00:0a:01:00:05.`},
		{"eui-64 mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].MAC = "0a:00:86:9e:4b:2a:00:01" }),
			`Address pool public 134.158.75.0/24: pair 2: the MAC address "0a:00:86:9e:4b:2a:00:01" is not six bytes such as 02:00:0a:01:00:05.`},
		{"multicast mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].MAC = "01:00:5e:00:00:01" }),
			`Address pool public 134.158.75.0/24: pair 2: the MAC address 01:00:5e:00:00:01 is a multicast address; use a unicast one (even first byte, such as 02).`},
		{"zero mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].MAC = "00:00:00:00:00:00" }),
			`Address pool public 134.158.75.0/24: pair 2: the MAC address 00:00:00:00:00:00 is all zeros, which no network card has.`},
		{"duplicate ip", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].IP = "134.158.75.42" }),
			`Address pool public 134.158.75.0/24: the address 134.158.75.42 appears twice.`},
		{"duplicate mac", edit(lal(), func(p *addresses.Pool) { p.Pairs[1].MAC = "0A:00:86:9E:4B:2A" }),
			`Address pool public 134.158.75.0/24: the MAC address 0a:00:86:9e:4b:2a is given to both 134.158.75.42 and 134.158.75.43.`},
		{"bad range", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.10..10.1.0.12" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.10..10.1.0.12" is not two IPv4 addresses joined by '-', such as 10.1.0.10-10.1.0.250.`},
		{"backwards range", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.12-10.1.0.10" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.12-10.1.0.10" ends before it starts.`},
		{"range outside", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.200-10.1.1.10" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.200-10.1.1.10" is not inside the subnet.`},
		{"range from network address", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.0-10.1.0.12"; p.Gateway = "" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.0-10.1.0.12" starts at the subnet's network address; start it one higher.`},
		{"range to broadcast", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.10-10.1.0.255" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.10-10.1.0.255" ends at the subnet's broadcast address; end it one lower.`},
		{"range over gateway", edit(ranged(), func(p *addresses.Pool) { p.Range = "10.1.0.1-10.1.0.254" }),
			`Address pool local 10.1.0.0/24: the range "10.1.0.1-10.1.0.254" includes the gateway 10.1.0.1; leave the gateway out of it.`},
		{"huge range", addresses.Pool{Network: addresses.Private, Subnet: "10.0.0.0/8", Range: "10.0.0.1-10.1.0.1"},
			`Address pool private 10.0.0.0/8: the range "10.0.0.1-10.1.0.1" holds 65537 addresses, more than the 65536 a pool may hold; split or narrow it.`},
		{"bad mac prefix", edit(ranged(), func(p *addresses.Pool) { p.MACPrefix = "0a" }),
			`Address pool local 10.1.0.0/24: the MAC prefix "0a" is not two bytes such as 02:00; each MAC address is the prefix followed by the four bytes of the IP address.`},
		{"multicast mac prefix", edit(ranged(), func(p *addresses.Pool) { p.MACPrefix = "03:00" }),
			`Address pool local 10.1.0.0/24: the MAC prefix "03:00" makes multicast MAC addresses; its first byte must be even, such as 02.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.pool.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid pool refused: %v", err)
				}
				return
			}
			if errs.CodeOf(err) != errs.Invalid || errs.MessageOf(err) != tc.want {
				t.Fatalf("got %s %q,\nwant invalid %q", errs.CodeOf(err), errs.MessageOf(err), tc.want)
			}
			if err := addresses.ValidatePools([]addresses.Pool{ranged(), tc.pool}); errs.MessageOf(err) != tc.want {
				t.Fatalf("ValidatePools: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestValidatePools refuses pools that overlap.
func TestValidatePools(t *testing.T) {
	t.Parallel()
	private := addresses.Pool{Network: addresses.Private, Subnet: "10.1.0.0/24", Range: "10.1.0.100-10.1.0.110"}
	for _, tc := range []struct {
		name  string
		pools []addresses.Pool
		want  string
	}{
		{"none", nil, ""},
		{"disjoint", []addresses.Pool{lal(), ranged(), private}, ""},
		{"same address", []addresses.Pool{ranged(), {Network: addresses.Private, Subnet: "10.1.0.0/16", Range: "10.1.0.12-10.1.0.20"}},
			"Address pools local 10.1.0.0/24 and private 10.1.0.0/16 both hold 10.1.0.12; an address belongs to one pool."},
		{"same mac", []addresses.Pool{lal(), {Network: addresses.Private, Subnet: "10.1.0.0/24", Pairs: []addresses.Pair{{IP: "10.1.0.5", MAC: "0a:00:86:9e:4b:2b"}}}},
			"Address pools public 134.158.75.0/24 and private 10.1.0.0/24 both use the MAC address 0a:00:86:9e:4b:2b; set another mac-prefix on one of them."},
		{"derived mac", []addresses.Pool{
			{Network: addresses.Public, Subnet: "10.1.0.0/24", Range: "10.1.0.2-10.1.0.5"},
			{Network: addresses.Private, Subnet: "172.16.0.0/24", Pairs: []addresses.Pair{{IP: "172.16.0.5", MAC: "02:00:0a:01:00:03"}}},
		}, "Address pools public 10.1.0.0/24 and private 172.16.0.0/24 both use the MAC address 02:00:0a:01:00:03; set another mac-prefix on one of them."},
		{"same name", []addresses.Pool{
			{Network: addresses.Local, Subnet: "10.1.0.0/24", Hostname: "vm-{last}", Range: "10.1.0.2-10.1.0.5"},
			{Network: addresses.Private, Subnet: "10.2.0.0/24", Hostname: "vm-{last}", Range: "10.2.0.5-10.2.0.9", MACPrefix: "0a:00"},
		}, "Address pools local 10.1.0.0/24 and private 10.2.0.0/24 both name a machine vm-5; give them different domains or host name templates."},
		{"same name, other domains", []addresses.Pool{
			{Network: addresses.Local, Subnet: "10.1.0.0/24", Hostname: "vm-{last}", Domain: "local.example.org", Range: "10.1.0.2-10.1.0.5"},
			{Network: addresses.Private, Subnet: "10.2.0.0/24", Hostname: "vm-{last}", Domain: "private.example.org", Range: "10.2.0.5-10.2.0.9"},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := addresses.ValidatePools(tc.pools)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid pools refused: %v", err)
				}
				return
			}
			if errs.CodeOf(err) != errs.Invalid || errs.MessageOf(err) != tc.want {
				t.Fatalf("got %s %q,\nwant invalid %q", errs.CodeOf(err), errs.MessageOf(err), tc.want)
			}
		})
	}
}

// TestHostnames fills host name templates, seen in the dnsmasq entries.
func TestHostnames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tmpl, ip, domain string
		want             string // "host fqdn"
	}{
		{"", "134.158.75.42", "", "vm-134-158-75-42 vm-134-158-75-42"},
		{"vm-{last}", "134.158.75.42", "lal.stratuslab.eu", "vm-42 vm-42.lal.stratuslab.eu"},
		{"vm-{ip}", "10.1.0.5", "Cloud.Example.org.", "vm-10-1-0-5 vm-10-1-0-5.cloud.example.org"},
		{"Node{last}-{ip}", "10.1.0.5", "", "node5-10-1-0-5 node5-10-1-0-5"},
		{"{last}", "10.1.0.5", "", "5 5"},
		{"host", "10.1.0.5", "example.org", "host host.example.org"},
	} {
		subnet := tc.ip[:strings.LastIndexByte(tc.ip, '.')] + ".0/24"
		p := addresses.Pool{Network: addresses.Public, Subnet: subnet, Hostname: tc.tmpl, Domain: tc.domain, Pairs: []addresses.Pair{{IP: tc.ip, MAC: "02:00:00:00:00:01"}}}
		out, err := addresses.ISCDHCPD([]addresses.Pool{p})
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		host, fqdn, _ := strings.Cut(tc.want, " ")
		if want := "  host " + fqdn + " { hardware ethernet 02:00:00:00:00:01; fixed-address " + tc.ip + "; option host-name \"" + host + "\"; }\n"; !strings.Contains(out, want) {
			t.Errorf("template %q for %s in %q: got\n%s\nwant the line\n%s", tc.tmpl, tc.ip, tc.domain, out, want)
		}
	}
}

// TestDecodeOverDefaults decodes pools over the default ones, as live
// settings are: a pool takes nothing from the default it replaces.
func TestDecodeOverDefaults(t *testing.T) {
	pools := []addresses.Pool{{
		Network: addresses.Public, Subnet: "192.168.122.0/24", Gateway: "192.168.122.1", Domain: "stratuslab.local",
		Hostname: "vm-{last}", Range: "192.168.122.10-192.168.122.250", MACPrefix: "02:01",
	}}
	if err := json.Unmarshal([]byte(`[{"network": "public", "subnet": "10.20.0.0/21", "range": "10.20.0.10-10.20.3.241"}]`), &pools); err != nil {
		t.Fatal(err)
	}
	want := addresses.Pool{Network: addresses.Public, Subnet: "10.20.0.0/21", Range: "10.20.0.10-10.20.3.241"}
	if len(pools) != 1 || !reflect.DeepEqual(pools[0], want) {
		t.Errorf("decoded over the defaults: %+v, want %+v", pools, want)
	}
	if err := addresses.ValidatePools(pools); err != nil {
		t.Errorf("a /21 with the default host names: %v", err)
	}
	var bad addresses.Pool
	if err := json.Unmarshal([]byte(`{"network": 5}`), &bad); err == nil {
		t.Error("a pool whose network is a number decodes")
	}
}
