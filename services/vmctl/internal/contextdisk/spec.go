package contextdisk

import (
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"stratuslab.dev/platform/errs"
)

// The contextualisation methods, as run-instance's --context-method names
// them.
const (
	MethodOne       = "one"
	MethodCloudInit = "cloud-init"
)

// The default volume labels of each method's disk (see the package
// documentation for why they differ).
const (
	LabelOne       = "_STRATUSLAB"
	LabelCloudInit = "cidata"
)

// The pseudo MIME types of --cloud-init parts.
const (
	// PartSSH marks a public key file: its lines join the authorized keys.
	PartSSH = "ssh"
	// PartNone marks a file that is the whole user data, sent as it is
	// rather than as a MIME part.
	PartNone = "none"
)

// MaxUserData is the most user data a disk carries, in bytes after gzip:
// the limit the original StratusLab set for CLOUD_INIT_USER_DATA, which is
// also what most clouds allow.
const MaxUserData = 16 << 10

// Limits on context pairs, which are parsed by running bash in the guest
// and so are kept to a size a shell handles in a blink.
const (
	maxKeyLen    = 128
	maxPairBytes = 64 << 10
)

// Network is the static address of the machine's first interface (eth0).
// The zero Network means the guest configures itself (DHCP).
type Network struct {
	IP      string   // IPv4 address, required with any other field
	MAC     string   // the interface's MAC address, optional
	Gateway string   // IPv4 default gateway, optional
	Netmask string   // dotted IPv4 netmask such as 255.255.255.0, required with IP
	DNS     []string // name servers, optional
}

// Spec is everything a context disk says.
type Spec struct {
	// Method is MethodOne (the default when empty) or MethodCloudInit.
	Method string
	// Label overrides the method's volume label: "CONTEXT" lets stock
	// cloud-init images find a method "one" disk. 1 to 32 of A-Z a-z 0-9 _.
	Label string
	// MachineID is the cloud-init instance-id; required by MethodCloudInit.
	MachineID string
	// Hostname is the guest's host name, optional.
	Hostname string
	// SSHKey is the user's public key (one or more lines), may be empty.
	SSHKey string
	// Pairs are the user's --context pairs, written in order after the keys
	// the disk sets itself, none of which they may repeat.
	Pairs []Pair
	// CloudInit are the --cloud-init parts, as ParseCloudInit returns them.
	CloudInit []Part
	// UserData is raw user data, an alternative to CloudInit parts.
	UserData []byte
	// Network is eth0's static address.
	Network Network
}

// Pair is one --context KEY=VALUE pair.
type Pair struct{ Key, Value string }

// Part is one --cloud-init file: a MIME type (or PartSSH, PartNone), the
// file's base name and its content.
type Part struct {
	MIME    string
	Name    string
	Content []byte
}

// Validate reports whether Build would accept s, with an errs.Invalid
// error saying what to change; the API calls it before allocating anything.
func Validate(s Spec) error {
	_, _, err := layout(s)
	return err
}

// checkKey reports whether k may name a context variable: a shell name that
// bash gives no meaning of its own. Assigning a read-only bash variable such
// as UID aborts cloud-init's parser, and a few others (RANDOM, LINENO, _)
// are dropped by it, so both kinds are refused up front.
func checkKey(k string) error {
	if k == "" {
		return errs.Errorf(errs.Invalid, "A context pair has an empty key: write KEY=VALUE.")
	}
	if len(k) > maxKeyLen {
		return errs.Errorf(errs.Invalid, "The context key %.20q... is longer than %d characters.", k, maxKeyLen)
	}
	for i, r := range k {
		ok := r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return errs.Errorf(errs.Invalid, "The context key %q is not a shell variable name: use letters, digits and _, not starting with a digit.", k)
		}
	}
	if bashReserved(k) {
		return errs.Errorf(errs.Invalid, "The context key %q is a variable the guest's shell reserves: choose another name.", k)
	}
	return nil
}

// bashReserved reports whether bash gives the variable k a meaning: the
// shell variables of bash(1), the environment every process inherits, and
// the names cloud-init's parser uses itself.
func bashReserved(k string) bool {
	if strings.HasPrefix(k, "BASH") || strings.HasPrefix(k, "COMP_") || strings.HasPrefix(k, "__") ||
		strings.HasPrefix(k, "LC_") || strings.HasPrefix(k, "READLINE_") || strings.HasPrefix(k, "HIST") {
		return true
	}
	switch k {
	case "_", "CDPATH", "CHILD_MAX", "COLUMNS", "COMPREPLY", "COPROC", "DIRSTACK", "EMACS", "ENV",
		"EPOCHREALTIME", "EPOCHSECONDS", "EUID", "EXECIGNORE", "FCEDIT", "FIGNORE", "FUNCNAME",
		"FUNCNEST", "GLOBIGNORE", "GROUPS", "HOME", "HOSTFILE", "HOSTNAME", "HOSTTYPE", "IFS",
		"IGNOREEOF", "INPUTRC", "INSIDE_EMACS", "LANG", "LINENO", "LINES", "LOGNAME", "MACHTYPE", "MAIL",
		"MAILCHECK", "MAILPATH", "MAPFILE", "OLDPWD", "OPTARG", "OPTERR", "OPTIND", "OSTYPE", "PATH",
		"PIPESTATUS", "POSIXLY_CORRECT", "PPID", "PROMPT_COMMAND", "PROMPT_DIRTRIM", "PS0", "PS1",
		"PS2", "PS3", "PS4", "PWD", "RANDOM", "REPLY", "SECONDS", "SHELL", "SHELLOPTS", "SHLVL",
		"SRANDOM", "SUDO_COMMAND", "SUDO_GID", "SUDO_UID", "SUDO_USER", "TERM", "TIMEFORMAT",
		"TMOUT", "TMPDIR", "UID", "USER", "histchars":
		return true
	}
	return false
}

// checkValue reports whether v can travel in context.sh: bash variables
// cannot hold NUL, and cloud-init decodes what bash prints as UTF-8.
func checkValue(what, v string) error {
	if !utf8.ValidString(v) {
		return errs.Errorf(errs.Invalid, "The value of %s is not valid UTF-8 text.", what)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return errs.Errorf(errs.Invalid, "The value of %s contains a NUL character, which a context disk cannot carry.", what)
	}
	return nil
}

// checkLine reports whether s is printable text of at most max bytes, with
// newlines only if multiline.
func checkLine(what, s string, max int, multiline bool) error {
	if len(s) > max {
		return errs.Errorf(errs.Invalid, "The %s is longer than %d bytes.", what, max)
	}
	if !utf8.ValidString(s) {
		return errs.Errorf(errs.Invalid, "The %s is not valid UTF-8 text.", what)
	}
	for _, r := range s {
		if (r < 0x20 && !(multiline && (r == '\n' || r == '\r' || r == '\t'))) || r == 0x7f {
			return errs.Errorf(errs.Invalid, "The %s contains a control character: use printable text.", what)
		}
	}
	return nil
}

// checkHostname reports whether h is an RFC 1123 host name.
func checkHostname(h string) error {
	bad := errs.Errorf(errs.Invalid, "The host name %q is not valid: use dot-separated labels of letters, digits and hyphens, each at most 63 characters.", h)
	if len(h) > 253 {
		return bad
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
				return bad
			}
		}
	}
	return nil
}

// checkLabel reports whether l is a volume label every reader agrees on.
func checkLabel(l string) error {
	if l == "" || len(l) > 32 {
		return errs.Errorf(errs.Invalid, "The volume label %q must have 1 to 32 characters.", l)
	}
	for _, r := range l {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return errs.Errorf(errs.Invalid, "The volume label %q may hold only letters, digits and _.", l)
		}
	}
	return nil
}

// eth0 is a checked Network in the forms the disk writes.
type eth0 struct {
	ip, mac, gateway, mask string
	prefix                 int
	dns                    []string
}

// checkNetwork validates n; ok is false for the zero Network.
func checkNetwork(n Network) (e eth0, ok bool, err error) {
	if n.IP == "" {
		if n.MAC != "" || n.Gateway != "" || n.Netmask != "" || len(n.DNS) > 0 {
			return e, false, errs.Errorf(errs.Invalid, "The network settings have no IP address: give one, or leave them all empty for DHCP.")
		}
		return e, false, nil
	}
	ip, err := netip.ParseAddr(n.IP)
	if err != nil || !ip.Is4() {
		return e, false, errs.Errorf(errs.Invalid, "The IP address %q is not an IPv4 address.", n.IP)
	}
	e.ip = ip.String()
	mask, err := netip.ParseAddr(n.Netmask)
	if err != nil || !mask.Is4() {
		return e, false, errs.Errorf(errs.Invalid, "The netmask %q is not a dotted IPv4 netmask such as 255.255.255.0.", n.Netmask)
	}
	m := mask.As4()
	ones, bits := net.IPv4Mask(m[0], m[1], m[2], m[3]).Size()
	if bits == 0 || ones == 0 {
		return e, false, errs.Errorf(errs.Invalid, "The netmask %q is not a contiguous, non-zero netmask.", n.Netmask)
	}
	e.mask, e.prefix = mask.String(), ones
	if n.MAC != "" {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return e, false, errs.Errorf(errs.Invalid, "The MAC address %q is not a 6-byte address such as 02:00:0a:00:00:05.", n.MAC)
		}
		e.mac = hw.String() // lower case, as cloud-init compares it
	}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil || !gw.Is4() {
			return e, false, errs.Errorf(errs.Invalid, "The gateway %q is not an IPv4 address.", n.Gateway)
		}
		e.gateway = gw.String()
	}
	for _, d := range n.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || a.Zone() != "" {
			return e, false, errs.Errorf(errs.Invalid, "The name server %q is not an IP address.", d)
		}
		e.dns = append(e.dns, a.String())
	}
	return e, true, nil
}
