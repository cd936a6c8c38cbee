package contextdisk

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"

	"stratuslab.dev/platform/errs"
)

// Build returns the ISO 9660 image of the context disk s describes. The
// same Spec always gives the same bytes. Bad input is errs.Invalid, with
// the message Validate would give.
func Build(s Spec) ([]byte, error) {
	label, files, err := layout(s)
	if err != nil {
		return nil, err
	}
	img, err := writeISO(label, files)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "write context disk")
	}
	return img, nil
}

// layout checks s and returns the disk's label and files.
func layout(s Spec) (string, []isoFile, error) {
	method := s.Method
	if method == "" {
		method = MethodOne
	}
	label := s.Label
	switch method {
	case MethodOne:
		if label == "" {
			label = LabelOne
		}
	case MethodCloudInit:
		if label == "" {
			label = LabelCloudInit
		}
		if s.MachineID == "" {
			return "", nil, errs.Errorf(errs.Invalid, "The cloud-init method needs a machine id for the instance-id.")
		}
	default:
		return "", nil, errs.Errorf(errs.Invalid, "The context method %q is unknown: use %q or %q.", s.Method, MethodOne, MethodCloudInit)
	}
	if err := checkLabel(label); err != nil {
		return "", nil, err
	}
	if err := checkLine("machine id", s.MachineID, 255, false); err != nil {
		return "", nil, err
	}
	if s.Hostname != "" {
		if err := checkHostname(s.Hostname); err != nil {
			return "", nil, err
		}
	}
	keys, err := keyLines("SSH public key", s.SSHKey)
	if err != nil {
		return "", nil, err
	}
	ud, gz, partKeys, err := userData(s.CloudInit, s.UserData)
	if err != nil {
		return "", nil, err
	}
	keys = append(keys, partKeys...)
	nw, hasNet, err := checkNetwork(s.Network)
	if err != nil {
		return "", nil, err
	}

	var sys []Pair
	add := func(k, v string) { sys = append(sys, Pair{k, v}) }
	var files []isoFile
	if method == MethodOne {
		if len(keys) > 0 {
			add("SSH_PUBLIC_KEY", strings.Join(keys, "\n"))
		}
		if s.Hostname != "" {
			add("SET_HOSTNAME", s.Hostname)
		}
		if hasNet {
			add("ETH0_IP", nw.ip)
			add("ETH0_MASK", nw.mask)
			if nw.mac != "" {
				add("ETH0_MAC", nw.mac)
			}
			if nw.gateway != "" {
				add("ETH0_GATEWAY", nw.gateway)
			}
			if len(nw.dns) > 0 {
				add("ETH0_DNS", strings.Join(nw.dns, " "))
			}
		}
		if ud != nil {
			add("USER_DATA", base64.StdEncoding.EncodeToString(ud))
			add("USERDATA_ENCODING", "base64")
		}
		files = append(files, isoFile{name: "init.sh", mode: 0o555, data: []byte(initScript)})
	} else {
		add("CONTEXT_METHOD", MethodCloudInit)
		if len(keys) > 0 {
			add("CLOUD_INIT_AUTHORIZED_KEYS", base64.StdEncoding.EncodeToString([]byte(strings.Join(keys, "\n")+"\n")))
		}
		if gz != nil {
			add("CLOUD_INIT_USER_DATA", base64.StdEncoding.EncodeToString(gz))
		}
		files = append(files,
			isoFile{name: "meta-data", mode: 0o444, data: metaData(s.MachineID, s.Hostname, keys)},
			isoFile{name: "user-data", mode: 0o444, data: ud})
		if hasNet {
			files = append(files, isoFile{name: "network-config", mode: 0o444, data: networkConfig(nw)})
		}
	}
	if err := checkPairs(s.Pairs, sys); err != nil {
		return "", nil, err
	}
	files = append(files, isoFile{name: "context.sh", mode: 0o444, data: contextScript(append(sys, s.Pairs...))})
	return label, files, nil
}

// checkPairs validates the user's pairs against each other and against the
// keys the disk sets itself.
func checkPairs(pairs, sys []Pair) error {
	seen := map[string]bool{}
	for _, p := range sys {
		seen[p.Key] = true
	}
	size := 0
	for _, p := range pairs {
		if err := checkKey(p.Key); err != nil {
			return err
		}
		if seen[p.Key] {
			return errs.Errorf(errs.Invalid, "The context key %q is given twice or is one the machine's context sets itself: choose another name.", p.Key)
		}
		seen[p.Key] = true
		if err := checkValue("the context key "+p.Key, p.Value); err != nil {
			return err
		}
		size += len(p.Key) + len(p.Value)
	}
	if size > maxPairBytes {
		return errs.Errorf(errs.Invalid, "The context pairs take %d bytes, more than the %d allowed: pass large data as cloud-init user data.", size, maxPairBytes)
	}
	return nil
}

// keyLines splits public keys into lines, dropping blank and comment lines
// as cloud-init does.
func keyLines(what, s string) ([]string, error) {
	if err := checkLine(what, s, 64<<10, true); err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}

// checkPartType reports whether t is a pseudo type or a MIME type without
// parameters.
func checkPartType(t string) error {
	if t == PartSSH || t == PartNone {
		return nil
	}
	if !strings.Contains(t, "/") {
		return errs.Errorf(errs.Invalid, "The cloud-init type %q is unknown: use a MIME type such as text/cloud-config or text/x-shellscript, or %q for a public key, or %q for one file sent as it is.", t, PartSSH, PartNone)
	}
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || len(params) > 0 || mt != strings.ToLower(t) {
		return errs.Errorf(errs.Invalid, "The cloud-init type %q is not a MIME type such as text/cloud-config.", t)
	}
	return nil
}

// userData returns the user data of parts or raw (nil when there is none),
// its gzip form and the public keys of ssh parts.
func userData(parts []Part, raw []byte) (ud, gz []byte, keys []string, err error) {
	var mimeParts []Part
	var literal *Part
	for i, p := range parts {
		if err := checkPartType(p.MIME); err != nil {
			return nil, nil, nil, err
		}
		if err := checkLine("cloud-init file name", p.Name, 255, false); err != nil {
			return nil, nil, nil, err
		}
		switch p.MIME {
		case PartSSH:
			k, err := keyLines("public key file "+strconv.Quote(p.Name), string(p.Content))
			if err != nil {
				return nil, nil, nil, err
			}
			keys = append(keys, k...)
		case PartNone:
			if literal != nil {
				return nil, nil, nil, errs.Errorf(errs.Invalid, "Only one cloud-init file may have the type %q.", PartNone)
			}
			literal = &parts[i]
		default:
			mimeParts = append(mimeParts, p)
		}
	}
	switch {
	case literal != nil && len(mimeParts) > 0:
		return nil, nil, nil, errs.Errorf(errs.Invalid, "The cloud-init file %q of type %q is the whole user data: it cannot be combined with MIME parts.", literal.Name, PartNone)
	case len(raw) > 0 && (literal != nil || len(mimeParts) > 0):
		return nil, nil, nil, errs.Errorf(errs.Invalid, "Give user data either raw or as cloud-init files, not both.")
	case literal != nil:
		ud = literal.Content
	case len(mimeParts) > 0:
		ud = multipartMIME(mimeParts)
	default:
		ud = raw
	}
	if len(ud) == 0 {
		return nil, nil, keys, nil
	}
	gz = gzipped(ud)
	if len(gz) > MaxUserData {
		return nil, nil, nil, errs.Errorf(errs.Invalid, "The cloud-init user data takes %d bytes compressed, more than the %d allowed: make the files smaller, or have a script fetch the rest.", len(gz), MaxUserData)
	}
	return ud, gz, keys, nil
}

// mimeBoundary separates the parts. Parts are base64 encoded, whose
// alphabet has no '-', so no part can contain a line that starts with it.
const mimeBoundary = "==StratusLab-context-part=="

// multipartMIME returns parts as the multipart/mixed message cloud-init
// reads, each part base64 encoded so that any bytes survive.
func multipartMIME(parts []Part) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\nMIME-Version: 1.0\r\n\r\n", mimeBoundary)
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(mimeBoundary); err != nil {
		panic(err) // a constant boundary that Go refuses is a programming error
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.MIME)
		h.Set("Content-Transfer-Encoding", "base64")
		if d := mime.FormatMediaType("attachment", map[string]string{"filename": p.Name}); p.Name != "" && d != "" {
			h.Set("Content-Disposition", d)
		}
		pw, _ := w.CreatePart(h) // writes to a bytes.Buffer do not fail
		enc := base64.StdEncoding.EncodeToString(p.Content)
		for len(enc) > 76 {
			fmt.Fprintf(pw, "%s\r\n", enc[:76])
			enc = enc[76:]
		}
		fmt.Fprintf(pw, "%s\r\n", enc)
	}
	_ = w.Close()
	return b.Bytes()
}

// gzipped compresses b with a header that holds no time or name, so the
// result depends only on b.
func gzipped(b []byte) []byte {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = w.Write(b) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return out.Bytes()
}

// contextScript returns context.sh: one KEY="value" line per pair.
func contextScript(pairs []Pair) []byte {
	var b strings.Builder
	b.WriteString("# Machine context written by StratusLab: KEY=\"value\" lines for sh and bash.\n")
	for _, p := range pairs {
		b.WriteString(p.Key)
		b.WriteByte('=')
		b.WriteString(shellQuote(p.Value))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// shellQuote double-quotes s for sh and bash: inside double quotes only
// the backslash, the double quote, '$' and '`' are special, and a
// backslash before each makes it literal. Newlines stay as they are.
func shellQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// initScript installs the context's keys for root. It reads context.sh
// beside itself and never writes a key twice, so running it at every boot
// is safe. STRATUSLAB_ROOT_HOME lets tests point it at a scratch directory.
const initScript = `#!/bin/sh
# Installs the machine's SSH public keys (SSH_PUBLIC_KEY in context.sh) for root.
set -e
. "$(dirname "$0")/context.sh"
[ -n "$SSH_PUBLIC_KEY" ] || exit 0
home=${STRATUSLAB_ROOT_HOME:-/root}
umask 077
mkdir -p "$home/.ssh"
chmod 700 "$home/.ssh"
keys=$home/.ssh/authorized_keys
touch "$keys"
printf '%s\n' "$SSH_PUBLIC_KEY" | while IFS= read -r k; do
	[ -n "$k" ] || continue
	grep -qxF -- "$k" "$keys" || printf '%s\n' "$k" >>"$keys"
done
chmod 600 "$keys"
`

// metaData returns NoCloud's meta-data file.
func metaData(id, hostname string, keys []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "instance-id: %s\n", yamlQuote(id))
	if hostname != "" {
		fmt.Fprintf(&b, "local-hostname: %s\n", yamlQuote(hostname))
	}
	if len(keys) > 0 {
		b.WriteString("public-keys:\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "  - %s\n", yamlQuote(k))
		}
	}
	return []byte(b.String())
}

// networkConfig returns NoCloud's network-config, version 2, for eth0; with
// a MAC address it matches the interface by that address, whatever the
// guest's kernel names it.
func networkConfig(n eth0) []byte {
	var b strings.Builder
	b.WriteString("version: 2\nethernets:\n  eth0:\n")
	if n.mac != "" {
		fmt.Fprintf(&b, "    match:\n      macaddress: %s\n", yamlQuote(n.mac))
	}
	fmt.Fprintf(&b, "    addresses:\n      - %s\n", yamlQuote(n.ip+"/"+strconv.Itoa(n.prefix)))
	if n.gateway != "" {
		fmt.Fprintf(&b, "    routes:\n      - to: %s\n        via: %s\n", yamlQuote("0.0.0.0/0"), yamlQuote(n.gateway))
	}
	if len(n.dns) > 0 {
		b.WriteString("    nameservers:\n      addresses:\n")
		for _, d := range n.dns {
			fmt.Fprintf(&b, "        - %s\n", yamlQuote(d))
		}
	}
	return []byte(b.String())
}

// yamlQuote returns s as a YAML double-quoted scalar in plain ASCII: every
// other character is escaped, which sidesteps YAML's rules on line breaks
// (U+0085, U+2028) and non-printable characters.
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
