package addresses_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/vmctl/internal/addresses"
)

// sample holds a pool of each kind: pairs with every option, a range
// with a gateway only, a second public pool, a private pool with nothing
// but addresses.
func sample() []addresses.Pool {
	return []addresses.Pool{
		lal(),
		ranged(),
		{Network: addresses.Public, Subnet: "134.158.76.0/24", Domain: "lal.stratuslab.eu", Range: "134.158.76.10-134.158.76.11", MACPrefix: "0a:01"},
		{Network: addresses.Private, Subnet: "172.16.0.0/24", Range: "172.16.0.5-172.16.0.5"},
	}
}

const goldenDNSMasq = `# Address pools of ServiceConfiguration/vmctl, written by vmctl: edit the configuration, not this file.

# public 134.158.75.0/24
dhcp-option=tag:public,option:netmask,255.255.255.0
dhcp-option=tag:public,option:router,134.158.75.1
dhcp-option=tag:public,option:dns-server,134.158.88.149,134.158.88.147
dhcp-option=tag:public,option:domain-name,lal.stratuslab.eu
dhcp-host=0a:00:86:9e:4b:2a,set:public,134.158.75.42,vm-42
dhcp-host=0a:00:86:9e:4b:2b,set:public,134.158.75.43,vm-43

# local 10.1.0.0/24
dhcp-option=tag:local,option:netmask,255.255.255.0
dhcp-option=tag:local,option:router,10.1.0.1
dhcp-host=02:00:0a:01:00:0a,set:local,10.1.0.10,vm-10-1-0-10
dhcp-host=02:00:0a:01:00:0b,set:local,10.1.0.11,vm-10-1-0-11
dhcp-host=02:00:0a:01:00:0c,set:local,10.1.0.12,vm-10-1-0-12

# public 134.158.76.0/24
dhcp-option=tag:public-2,option:netmask,255.255.255.0
dhcp-option=tag:public-2,option:domain-name,lal.stratuslab.eu
dhcp-host=0a:01:86:9e:4c:0a,set:public-2,134.158.76.10,vm-134-158-76-10
dhcp-host=0a:01:86:9e:4c:0b,set:public-2,134.158.76.11,vm-134-158-76-11

# private 172.16.0.0/24
dhcp-option=tag:private,option:netmask,255.255.255.0
dhcp-host=02:00:ac:10:00:05,set:private,172.16.0.5,vm-172-16-0-5
`

const goldenISC = `# Address pools of ServiceConfiguration/vmctl, written by vmctl: edit the configuration, not this file.

# public 134.158.75.0/24
group {
  option subnet-mask 255.255.255.0;
  option routers 134.158.75.1;
  option domain-name-servers 134.158.88.149, 134.158.88.147;
  option domain-name "lal.stratuslab.eu";
  host vm-42.lal.stratuslab.eu { hardware ethernet 0a:00:86:9e:4b:2a; fixed-address 134.158.75.42; option host-name "vm-42"; }
  host vm-43.lal.stratuslab.eu { hardware ethernet 0a:00:86:9e:4b:2b; fixed-address 134.158.75.43; option host-name "vm-43"; }
}

# local 10.1.0.0/24
group {
  option subnet-mask 255.255.255.0;
  option routers 10.1.0.1;
  host vm-10-1-0-10 { hardware ethernet 02:00:0a:01:00:0a; fixed-address 10.1.0.10; option host-name "vm-10-1-0-10"; }
  host vm-10-1-0-11 { hardware ethernet 02:00:0a:01:00:0b; fixed-address 10.1.0.11; option host-name "vm-10-1-0-11"; }
  host vm-10-1-0-12 { hardware ethernet 02:00:0a:01:00:0c; fixed-address 10.1.0.12; option host-name "vm-10-1-0-12"; }
}

# public 134.158.76.0/24
group {
  option subnet-mask 255.255.255.0;
  option domain-name "lal.stratuslab.eu";
  host vm-134-158-76-10.lal.stratuslab.eu { hardware ethernet 0a:01:86:9e:4c:0a; fixed-address 134.158.76.10; option host-name "vm-134-158-76-10"; }
  host vm-134-158-76-11.lal.stratuslab.eu { hardware ethernet 0a:01:86:9e:4c:0b; fixed-address 134.158.76.11; option host-name "vm-134-158-76-11"; }
}

# private 172.16.0.0/24
group {
  option subnet-mask 255.255.255.0;
  host vm-172-16-0-5 { hardware ethernet 02:00:ac:10:00:05; fixed-address 172.16.0.5; option host-name "vm-172-16-0-5"; }
}
`

func TestDHCPGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gen  func([]addresses.Pool) (string, error)
		want string
	}{
		{"dnsmasq", addresses.DNSMasq, goldenDNSMasq},
		{"isc", addresses.ISCDHCPD, goldenISC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.gen(sample())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			// Pools that overlap give no configuration.
			_, err = tc.gen([]addresses.Pool{ranged(), ranged()})
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("overlapping pools: %v, want an invalid error", err)
			}
		})
	}
}

// TestDHCPServersAccept has the real servers check what we write: dnsmasq
// --test and dhcpd -t, on the sample and on a /22 and more, and on a
// broken copy, which they must refuse (or the check proves nothing).
func TestDHCPServersAccept(t *testing.T) {
	t.Parallel()
	many := append(sample(), big())
	for _, tc := range []struct {
		name  string
		tool  string
		gen   func([]addresses.Pool) (string, error)
		check func(file string) *exec.Cmd
		// breaks makes the configuration invalid for the server.
		breaks func(conf string) string
	}{
		{
			name: "dnsmasq", tool: "dnsmasq", gen: addresses.DNSMasq,
			check: func(file string) *exec.Cmd { return exec.Command("dnsmasq", "--test", "--conf-file="+file) },
			breaks: func(conf string) string {
				return conf + "dhcp-host=02:00:0a:01:00:ff,set:local,10.1.0.10,other\n" // an IP address twice
			},
		},
		{
			name: "isc", tool: "dhcpd", gen: addresses.ISCDHCPD,
			check: func(file string) *exec.Cmd { return exec.Command("dhcpd", "-t", "-cf", file) },
			breaks: func(conf string) string {
				return conf + "host vm-42.lal.stratuslab.eu { hardware ethernet 02:00:00:00:00:01; fixed-address 10.1.0.200; }\n" // a host twice
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s is not installed (scripts/deps.sh installs it)", tc.tool)
			}
			run := func(conf string) (string, error) {
				file := filepath.Join(t.TempDir(), "hosts.conf")
				if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := tc.check(file).CombinedOutput()
				return string(out), err
			}
			for _, pools := range [][]addresses.Pool{sample(), many} {
				conf, err := tc.gen(pools)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := run(conf); err != nil {
					t.Fatalf("%s refuses what we wrote: %v\n%s", tc.tool, err, out)
				}
				if n := strings.Count(conf, "\n"); len(pools) > 4 && n < 1021 {
					t.Fatalf("only %d lines for %d pools", n, len(pools))
				}
			}
			conf, _ := tc.gen(sample())
			if out, err := run(tc.breaks(conf)); err == nil {
				t.Fatalf("%s accepts a broken configuration, so its approval proves nothing:\n%s", tc.tool, out)
			}
		})
	}
}

func TestHostEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format string
		want   string // "" for an invalid error
		pools  []addresses.Pool
	}{
		{format: "dnsmasq", want: goldenDNSMasq, pools: sample()},
		{format: "dhcpd", want: goldenISC, pools: sample()},
		{format: "", pools: sample()},
		{format: "isc", pools: sample()},
		{format: "DNSMasq", pools: sample()},
		{format: "dnsmasq ", pools: sample()},
		{format: strings.Repeat("x", 5000), pools: sample()},
		// A known format of pools that cannot work is still refused.
		{format: "dnsmasq", pools: []addresses.Pool{ranged(), ranged()}},
	} {
		got, err := addresses.HostEntries(tc.format, tc.pools)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("HostEntries(%q) = %v\n%s\nwant\n%s", tc.format, err, got, tc.want)
			}
			continue
		}
		if errs.CodeOf(err) != errs.Invalid || got != "" {
			t.Errorf("HostEntries(%.20q) = %q, %v; want an invalid error", tc.format, got, err)
		}
		if len(tc.pools) == len(sample()) && (!strings.Contains(errs.MessageOf(err), `"dnsmasq" or "dhcpd"`) || len(errs.MessageOf(err)) > 200) {
			t.Errorf("HostEntries(%.20q): the message %.300q does not name the formats briefly", tc.format, errs.MessageOf(err))
		}
	}
}
