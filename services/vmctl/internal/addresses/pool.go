package addresses

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"stratuslab.dev/platform/errs"
)

// Network names one of the networks a machine may join.
type Network string

// The networks of a cloud: public addresses reach the machine from
// anywhere, local ones from the site, private ones only from other
// machines of the cloud.
const (
	Public  Network = "public"
	Local   Network = "local"
	Private Network = "private"
)

// Limits and defaults of a pool.
const (
	// MaxPoolSize bounds the addresses of one pool (a /16): allocation
	// looks at every address of the network's pools.
	MaxPoolSize = 1 << 16
	// DefaultHostname is the host name template of a pool that sets none:
	// the IP address with dashes, unique in any subnet.
	DefaultHostname = "vm-{ip}"
	// DefaultMACPrefix starts the MAC addresses of a range that sets no
	// prefix: 02 is a locally administered unicast first byte, so the
	// addresses cannot clash with a real network card's.
	DefaultMACPrefix = "02:00"
)

// Pair is one address of a pool given explicitly: the IP address and the
// MAC address DHCP gives it to.
type Pair struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
}

// Pool is a set of IPv4 addresses of one network, as
// ServiceConfiguration/vmctl declares it. The addresses are given either as
// Pairs, or as a Range whose MAC addresses are derived from the IP
// addresses: MACPrefix (two bytes) followed by the four bytes of the IP
// address, so 10.1.0.5 with prefix 02:00 is 02:00:0a:01:00:05.
//
// Hostname is a template for the host name of each address: {ip} stands for
// the address with dashes (10-1-0-5) and {last} for its last byte (5), so
// "vm-{last}" names 134.158.75.42 vm-42 as StratusLab sites did; {last} is
// unique only within a /24. The FQDN is the host name followed by Domain.
type Pool struct {
	Network Network `json:"network"`
	// Subnet is the network in CIDR notation, e.g. "10.1.0.0/24".
	Subnet string `json:"subnet"`
	// Gateway is the default route given to machines; empty for none (a
	// private network often has none).
	Gateway string `json:"gateway,omitempty"`
	// DNS lists the name servers given to machines.
	DNS []string `json:"dns,omitempty"`
	// Domain is the DNS domain of the machines, e.g. "lal.stratuslab.eu".
	Domain string `json:"domain,omitempty"`
	// Hostname is the host name template; DefaultHostname when empty.
	Hostname string `json:"hostname,omitempty"`
	// Pairs lists the addresses explicitly; exclusive with Range.
	Pairs []Pair `json:"pairs,omitempty"`
	// Range is "first-last", inclusive, e.g. "10.1.0.10-10.1.0.250".
	Range string `json:"range,omitempty"`
	// MACPrefix is the first two bytes of the MAC addresses of a Range;
	// DefaultMACPrefix when empty.
	MACPrefix string `json:"mac-prefix,omitempty"`
}

// UnmarshalJSON decodes a pool from nothing but data. encoding/json
// decodes the elements of an array into the slice's existing elements,
// keeping the fields data leaves out, so that settings decoded over the
// defaults would give an administrator's pool the default pool's host
// name template and MAC prefix.
func (p *Pool) UnmarshalJSON(data []byte) error {
	type plain Pool // without this method
	var q plain
	if err := json.Unmarshal(data, &q); err != nil {
		return err
	}
	*p = Pool(q)
	return nil
}

// entry is one address of a pool with what DHCP gives with it.
type entry struct {
	ip   netip.Addr
	mac  string // lower case, colon-separated
	host string // lower case
}

// layout is a valid pool, expanded.
type layout struct {
	label   string // names the pool in messages: "public 10.1.0.0/24"
	network Network
	subnet  netip.Prefix
	gateway string // "" for none
	netmask string
	dns     []string
	domain  string // lower case, no trailing dot
	entries []entry
}

// fqdn returns the fully qualified name of host in the pool.
func (l *layout) fqdn(host string) string {
	if l.domain == "" {
		return host
	}
	return host + "." + l.domain
}

// Validate reports what is wrong with the pool, as an errs.Invalid error
// naming the pool and the value to fix; nil for a valid pool.
func (p Pool) Validate() error {
	_, err := p.layout()
	return err
}

// ValidatePools validates each pool and refuses pools that share an IP
// address, a MAC address or a host name: DHCP could not tell them apart.
func ValidatePools(pools []Pool) error {
	_, err := layouts(pools)
	return err
}

// layouts expands pools, checking them one by one and together.
func layouts(pools []Pool) ([]*layout, error) {
	out := make([]*layout, 0, len(pools))
	ips := map[netip.Addr]*layout{}
	macs := map[string]*layout{}
	names := map[string]*layout{}
	for _, p := range pools {
		l, err := p.layout()
		if err != nil {
			return nil, err
		}
		for _, e := range l.entries {
			if o := ips[e.ip]; o != nil {
				return nil, errs.Errorf(errs.Invalid, "Address pools %s and %s both hold %s; an address belongs to one pool.", o.label, l.label, e.ip)
			}
			if o := macs[e.mac]; o != nil {
				return nil, errs.Errorf(errs.Invalid, "Address pools %s and %s both use the MAC address %s; set another mac-prefix on one of them.", o.label, l.label, e.mac)
			}
			if o := names[l.fqdn(e.host)]; o != nil {
				return nil, errs.Errorf(errs.Invalid, "Address pools %s and %s both name a machine %s; give them different domains or host name templates.", o.label, l.label, l.fqdn(e.host))
			}
			ips[e.ip], macs[e.mac], names[l.fqdn(e.host)] = l, l, l
		}
		out = append(out, l)
	}
	return out, nil
}

// layout checks the pool and expands its addresses.
func (p Pool) layout() (*layout, error) {
	l := &layout{network: p.Network, label: string(p.Network)}
	if strings.TrimSpace(p.Subnet) != "" {
		l.label += " " + strings.TrimSpace(p.Subnet)
	}
	fail := func(format string, args ...any) error {
		return errs.Errorf(errs.Invalid, "Address pool %s: %s", l.label, fmt.Sprintf(format, args...))
	}
	switch p.Network {
	case Public, Local, Private:
	default:
		return nil, fail("the network must be %s, %s or %s, not %q.", Public, Local, Private, p.Network)
	}
	subnet, err := netip.ParsePrefix(strings.TrimSpace(p.Subnet))
	if err != nil || !subnet.Addr().Is4() {
		return nil, fail("the subnet %q is not an IPv4 network in CIDR notation such as 10.1.0.0/24.", p.Subnet)
	}
	if subnet != subnet.Masked() {
		return nil, fail("the subnet %s has bits set after the prefix; write %s.", subnet, subnet.Masked())
	}
	if subnet.Bits() > 30 {
		return nil, fail("the subnet %s has no room for machines; use a /30 or larger.", subnet)
	}
	l.subnet = subnet
	l.netmask = net.IP(net.CIDRMask(subnet.Bits(), 32)).String()
	first := u32(subnet.Addr())
	last := first | (1<<(32-subnet.Bits()) - 1)

	var gateway netip.Addr
	if p.Gateway != "" {
		if gateway, err = parse4(p.Gateway); err != nil {
			return nil, fail("the gateway %q is not an IPv4 address.", p.Gateway)
		}
		if !subnet.Contains(gateway) {
			return nil, fail("the gateway %s is outside the subnet.", gateway)
		}
		if g := u32(gateway); g == first || g == last {
			return nil, fail("the gateway %s is the subnet's network or broadcast address.", gateway)
		}
		l.gateway = gateway.String()
	}
	for _, s := range p.DNS {
		a, err := parse4(s)
		if err != nil {
			return nil, fail("the DNS server %q is not an IPv4 address.", s)
		}
		l.dns = append(l.dns, a.String())
	}
	if p.Domain != "" {
		l.domain = strings.ToLower(strings.TrimSuffix(p.Domain, "."))
		if !validDomain(l.domain) {
			return nil, fail("the domain %q is not a DNS name such as cloud.example.org.", p.Domain)
		}
	}
	tmpl := p.Hostname
	if tmpl == "" {
		tmpl = DefaultHostname
	}
	if rest := strings.NewReplacer("{ip}", "", "{last}", "").Replace(tmpl); strings.ContainsAny(rest, "{}") {
		return nil, fail("the host name template %q may use only the placeholders {ip} and {last}.", tmpl)
	}

	// host checks one address of the pool.
	host := func(a netip.Addr) error {
		switch v := u32(a); {
		case !subnet.Contains(a):
			return fail("the address %s is outside the subnet.", a)
		case v == first:
			return fail("the address %s is the subnet's network address.", a)
		case v == last:
			return fail("the address %s is the subnet's broadcast address.", a)
		case a == gateway:
			return fail("the address %s is the gateway.", a)
		}
		return nil
	}
	switch {
	case len(p.Pairs) > 0 && p.Range != "":
		return nil, fail("give the addresses either as pairs or as a range, not both.")
	case len(p.Pairs) > MaxPoolSize:
		return nil, fail("%d pairs are more than the %d addresses a pool may hold; split them.", len(p.Pairs), MaxPoolSize)
	case len(p.Pairs) > 0:
		if p.MACPrefix != "" {
			return nil, fail("the MAC prefix applies to a range only; pairs carry their own MAC addresses.")
		}
		for i, pr := range p.Pairs {
			a, err := parse4(pr.IP)
			if err != nil {
				return nil, fail("pair %d: %q is not an IPv4 address.", i+1, pr.IP)
			}
			if err := host(a); err != nil {
				return nil, err
			}
			mac, err := net.ParseMAC(strings.TrimSpace(pr.MAC))
			if err != nil || len(mac) != 6 {
				return nil, fail("pair %d: the MAC address %q is not six bytes such as 02:00:0a:01:00:05.", i+1, pr.MAC)
			}
			if mac[0]&1 != 0 {
				return nil, fail("pair %d: the MAC address %s is a multicast address; use a unicast one (even first byte, such as 02).", i+1, mac)
			}
			if string(mac) == "\x00\x00\x00\x00\x00\x00" {
				return nil, fail("pair %d: the MAC address %s is all zeros, which no network card has.", i+1, mac)
			}
			l.entries = append(l.entries, entry{ip: a, mac: mac.String()})
		}
	case p.Range != "":
		start, end, ok := parseRange(p.Range)
		if !ok {
			return nil, fail("the range %q is not two IPv4 addresses joined by '-', such as 10.1.0.10-10.1.0.250.", p.Range)
		}
		s, e := u32(start), u32(end)
		switch {
		case s > e:
			return nil, fail("the range %q ends before it starts.", p.Range)
		case e-s >= MaxPoolSize:
			return nil, fail("the range %q holds %d addresses, more than the %d a pool may hold; split or narrow it.", p.Range, uint64(e-s)+1, MaxPoolSize)
		case !subnet.Contains(start) || !subnet.Contains(end):
			return nil, fail("the range %q is not inside the subnet.", p.Range)
		case s == first:
			return nil, fail("the range %q starts at the subnet's network address; start it one higher.", p.Range)
		case e == last:
			return nil, fail("the range %q ends at the subnet's broadcast address; end it one lower.", p.Range)
		case gateway.IsValid() && s <= u32(gateway) && u32(gateway) <= e:
			return nil, fail("the range %q includes the gateway %s; leave the gateway out of it.", p.Range, gateway)
		}
		prefix := p.MACPrefix
		if prefix == "" {
			prefix = DefaultMACPrefix
		}
		pb, ok := parseMACPrefix(prefix)
		if !ok {
			return nil, fail("the MAC prefix %q is not two bytes such as 02:00; each MAC address is the prefix followed by the four bytes of the IP address.", prefix)
		}
		if pb[0]&1 != 0 {
			return nil, fail("the MAC prefix %q makes multicast MAC addresses; its first byte must be even, such as 02.", prefix)
		}
		l.entries = make([]entry, 0, e-s+1)
		for v := uint64(s); v <= uint64(e); v++ {
			a := from32(uint32(v))
			ab := a.As4()
			mac := net.HardwareAddr{pb[0], pb[1], ab[0], ab[1], ab[2], ab[3]}
			l.entries = append(l.entries, entry{ip: a, mac: mac.String()})
		}
	default:
		return nil, fail("give the addresses as pairs of ip and mac, or as a range such as 10.1.0.10-10.1.0.250.")
	}

	seenIP := make(map[netip.Addr]bool, len(l.entries))
	seenMAC := make(map[string]netip.Addr, len(l.entries))
	seenHost := make(map[string]netip.Addr, len(l.entries))
	for i := range l.entries {
		e := &l.entries[i]
		if seenIP[e.ip] {
			return nil, fail("the address %s appears twice.", e.ip)
		}
		if o, dup := seenMAC[e.mac]; dup {
			return nil, fail("the MAC address %s is given to both %s and %s.", e.mac, o, e.ip)
		}
		e.host = hostname(tmpl, e.ip)
		if !validLabel(e.host) {
			return nil, fail("the host name template %q names %s %q, which is not a host name (letters, digits and '-', at most 63).", tmpl, e.ip, e.host)
		}
		if o, dup := seenHost[e.host]; dup {
			return nil, fail("the host name template %q names both %s and %s %q; use {ip} in it, as {last} is unique only within a /24.", tmpl, o, e.ip, e.host)
		}
		seenIP[e.ip], seenMAC[e.mac], seenHost[e.host] = true, e.ip, e.ip
	}
	return l, nil
}

// hostname fills the template tmpl for address a.
func hostname(tmpl string, a netip.Addr) string {
	b := a.As4()
	h := strings.ReplaceAll(tmpl, "{last}", strconv.Itoa(int(b[3])))
	h = strings.ReplaceAll(h, "{ip}", strings.ReplaceAll(a.String(), ".", "-"))
	return strings.ToLower(h)
}

// parse4 parses an IPv4 address.
func parse4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%s is not an IPv4 address", a)
	}
	return a, nil
}

// parseRange parses "first-last".
func parseRange(s string) (netip.Addr, netip.Addr, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, false
	}
	start, err1 := parse4(a)
	end, err2 := parse4(b)
	return start, end, err1 == nil && err2 == nil
}

// parseMACPrefix parses two hexadecimal bytes separated by ':' or '-'.
func parseMACPrefix(s string) ([2]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 5 || (s[2] != ':' && s[2] != '-') {
		return [2]byte{}, false
	}
	hi, err1 := strconv.ParseUint(s[:2], 16, 8)
	lo, err2 := strconv.ParseUint(s[3:], 16, 8)
	return [2]byte{byte(hi), byte(lo)}, err1 == nil && err2 == nil
}

// validLabel reports whether s is one DNS label usable as a host name.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validDomain reports whether s is a DNS name of one or more labels.
func validDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func from32(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
