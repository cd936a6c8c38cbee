package addresses

import (
	"fmt"
	"strings"

	"stratuslab.dev/platform/errs"
)

// header opens every generated file, so that nobody edits it by hand.
const header = "# Address pools of ServiceConfiguration/vmctl, written by vmctl: edit the configuration, not this file.\n"

// DNSMasq returns the dnsmasq configuration that gives every address of
// pools to its MAC address: per pool, the options of its network under a tag
// (the network's name, then "public-2" and so on for further pools of the
// same network) and one "dhcp-host=<mac>,set:<tag>,<ip>,<hostname>" line per
// address. The site still declares where dnsmasq serves, e.g.
// "dhcp-range=10.1.0.0,static". Invalid pools are an errs.Invalid error.
func DNSMasq(pools []Pool) (string, error) {
	lays, err := layouts(pools)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(header)
	seen := map[Network]int{}
	for _, l := range lays {
		seen[l.network]++
		tag := string(l.network)
		if n := seen[l.network]; n > 1 {
			tag = fmt.Sprintf("%s-%d", l.network, n)
		}
		fmt.Fprintf(&b, "\n# %s\n", l.label)
		fmt.Fprintf(&b, "dhcp-option=tag:%s,option:netmask,%s\n", tag, l.netmask)
		if l.gateway != "" {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:router,%s\n", tag, l.gateway)
		}
		if len(l.dns) > 0 {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, strings.Join(l.dns, ","))
		}
		if l.domain != "" {
			fmt.Fprintf(&b, "dhcp-option=tag:%s,option:domain-name,%s\n", tag, l.domain)
		}
		for _, e := range l.entries {
			fmt.Fprintf(&b, "dhcp-host=%s,set:%s,%s,%s\n", e.mac, tag, e.ip, e.host)
		}
	}
	return b.String(), nil
}

// ISCDHCPD returns the ISC dhcpd configuration that gives every address of
// pools to its MAC address: one group per pool carrying its network's
// options, holding one host declaration per address, named by its FQDN.
// The site still declares the subnets dhcpd serves. Invalid pools are an
// errs.Invalid error.
func ISCDHCPD(pools []Pool) (string, error) {
	lays, err := layouts(pools)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(header)
	for _, l := range lays {
		fmt.Fprintf(&b, "\n# %s\ngroup {\n", l.label)
		fmt.Fprintf(&b, "  option subnet-mask %s;\n", l.netmask)
		if l.gateway != "" {
			fmt.Fprintf(&b, "  option routers %s;\n", l.gateway)
		}
		if len(l.dns) > 0 {
			fmt.Fprintf(&b, "  option domain-name-servers %s;\n", strings.Join(l.dns, ", "))
		}
		if l.domain != "" {
			fmt.Fprintf(&b, "  option domain-name %q;\n", l.domain)
		}
		for _, e := range l.entries {
			fmt.Fprintf(&b, "  host %s { hardware ethernet %s; fixed-address %s; option host-name %q; }\n", l.fqdn(e.host), e.mac, e.ip, e.host)
		}
		b.WriteString("}\n")
	}
	return b.String(), nil
}

// Formats of HostEntries: the DHCP servers vmctl writes host entries for.
const (
	FormatDNSMasq = "dnsmasq"
	FormatDHCPD   = "dhcpd"
)

// HostEntries returns the host entries of pools for the DHCP server that
// format names: DNSMasq for FormatDNSMasq, ISCDHCPD for FormatDHCPD. Any
// other format is an errs.Invalid error naming the known ones.
func HostEntries(format string, pools []Pool) (string, error) {
	switch format {
	case FormatDNSMasq:
		return DNSMasq(pools)
	case FormatDHCPD:
		return ISCDHCPD(pools)
	}
	if len(format) > 40 {
		format = format[:40] + "…" // it comes from a URL: keep the answer short
	}
	return "", errs.Errorf(errs.Invalid, "There are no DHCP host entries in the format %q: ask for %q or %q.", format, FormatDNSMasq, FormatDHCPD)
}
