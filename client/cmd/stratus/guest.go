package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
)

// What stratus create-image asks of the guest, through cloud-init user
// data rather than SSH (the original tool logged in with ssh, but an
// appliance need not run an SSH server, nor the user's network reach it):
// a shell script installs the packages with the distribution's tool and
// runs the author's script, and a cloud-config asks cloud-init to power
// the machine off afterwards, but only if the script left its success
// mark. The cloud sees the guest stop by itself (the machine shows
// Unknown), and create-image then shuts the machine down to capture its
// disk. A guest whose script failed keeps running, with its log, for the
// author to inspect.

// maxUserData is the most user data the cloud takes, gzipped
// (CLOUD_INIT_USER_DATA of the original, and vmctl's limit).
const maxUserData = 16 << 10

// guestPaths are the files the guest script writes. The tests run the
// script on this machine and move them into a temporary directory.
type guestPaths struct {
	log  string // the script's output, for the author to read
	mark string // exists once packages and script succeeded
}

// guestDefaults are the paths in the guest. The mark is in /run, a tmpfs,
// so that the captured image does not carry it.
func guestDefaults() guestPaths {
	return guestPaths{log: "/var/log/stratus-create-image.log", mark: "/run/stratus-create-image.done"}
}

// validPackage accepts the package names (and version pins) apt, dnf,
// yum, zypper, apk and pacman take: letters, digits and . + _ : = ~ / -,
// starting with a letter or digit. Nothing the shell would read
// (spaces, quotes, $, globs) can get in.
func validPackage(p string) bool {
	if p == "" || len(p) > 200 || !isAlnum(p[0]) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !isAlnum(p[i]) && !strings.ContainsRune(".+_:=~/-", rune(p[i])) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// parsePackages reads -a: package names separated by commas (or spaces).
func parsePackages(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, p := range strings.FieldsFunc(item, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !validPackage(p) {
				return nil, usageError{fmt.Errorf("-a: %q is not a package name (letters, digits and . + _ : = ~ / -)", p)}
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// randomWord is a word that appears nowhere in text, to delimit text.
func randomWord(prefix string, text []byte) string {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand does not fail
		w := prefix + hex.EncodeToString(b[:])
		if !bytes.Contains(text, []byte(w)) {
			return w
		}
	}
}

// guestScript is the shell script that installs packages and runs
// script (which may be empty), for any POSIX sh.
func guestScript(packages []string, script []byte, p guestPaths) []byte {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Written by stratus create-image. It installs the packages with the
# distribution's tool and runs the author's script; only when both succeed
# does it leave the mark that lets cloud-init power the machine off, so that
# the cloud saves its disk as the new image. On failure the machine keeps
# running: read the log, then kill it (or shut it down to save it anyway).
`)
	fmt.Fprintf(&b, "log=%s\nmark=%s\npackages=%s\n", shellQuote(p.log), shellQuote(p.mark), shellQuote(strings.Join(packages, " ")))
	b.WriteString(`rm -f "$mark"
exec >>"$log" 2>&1
fail() {
	echo "stratus create-image: $*; the machine is not powered off, so nothing is saved"
	exit 1
}
if [ -n "$packages" ]; then
	echo " :: Installing user packages: $packages"
	if command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update && apt-get install -y $packages || fail "apt-get could not install $packages"
	elif command -v dnf >/dev/null 2>&1; then
		dnf install -y $packages || fail "dnf could not install $packages"
	elif command -v yum >/dev/null 2>&1; then
		yum install -y $packages || fail "yum could not install $packages"
	elif command -v zypper >/dev/null 2>&1; then
		zypper --non-interactive install $packages || fail "zypper could not install $packages"
	elif command -v apk >/dev/null 2>&1; then
		apk update && apk add $packages || fail "apk could not install $packages"
	elif command -v pacman >/dev/null 2>&1; then
		pacman -Sy --noconfirm $packages || fail "pacman could not install $packages"
	else
		fail "no package tool stratus knows (apt-get, dnf, yum, zypper, apk, pacman) to install $packages"
	fi
fi
`)
	if len(script) > 0 {
		if !bytes.HasSuffix(script, []byte("\n")) {
			script = append(append([]byte{}, script...), '\n')
		}
		end := randomWord("STRATUS_SCRIPT_", script)
		b.WriteString(`echo " :: Executing user script"
script=$(mktemp) || fail "cannot write the script to a temporary file"
cat >"$script" <<'` + end + "'\n")
		b.Write(script)
		b.WriteString(end + `
chmod 700 "$script"
case "$(head -n 1 "$script")" in
'#!'*) "$script" ;;
*) sh "$script" ;;
esac || fail "the script failed (exit status $?)"
rm -f "$script"
`)
	}
	b.WriteString(`touch "$mark" || fail "cannot write $mark"
echo " :: Done: cloud-init now powers the machine off"
`)
	return []byte(b.String())
}

// shellQuote quotes s for sh: between single quotes, each single quote
// of s closing the quotes, escaped, and reopening them.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// powerOffConfig is the cloud-config that powers the guest off once
// cloud-init has run the script, if the script left its mark.
func powerOffConfig(p guestPaths) []byte {
	return []byte(`#cloud-config
# Written by stratus create-image: once cloud-init has run the script, power
# the machine off if the script succeeded, so that the cloud saves its disk.
power_state:
  mode: poweroff
  message: stratus create-image is done; powering off to save the image
  condition: ` + strconv.Quote("test -f "+shellQuote(p.mark)) + `
`)
}

// createImageUserData is the cloud-init user data of create-image: a
// multipart/mixed message holding the cloud-config and the script. It
// fails when the cloud would refuse it as too large.
func createImageUserData(packages []string, script []byte, p guestPaths) ([]byte, error) {
	cfg, sh := powerOffConfig(p), guestScript(packages, script, p)
	var b bytes.Buffer
	// Base64 has no '-': no line of a part starts like the boundary.
	boundary := "==stratus-create-image-part=="
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\nMIME-Version: 1.0\r\n\r\n", boundary)
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, err
	}
	for _, part := range []struct {
		mime, name string
		body       []byte
	}{
		{"text/cloud-config", "stratus-power-off.cfg", cfg},
		{"text/x-shellscript", "stratus-create-image.sh", sh},
	} {
		// Base64, so that every byte of the script reaches the guest as
		// it is: cloud-init re-encodes 8-bit text parts.
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", part.mime+`; charset="utf-8"`)
		h.Set("Content-Transfer-Encoding", "base64")
		h.Set("Content-Disposition", `attachment; filename="`+part.name+`"`)
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(part.body)
		for len(enc) > 76 {
			fmt.Fprintf(pw, "%s\r\n", enc[:76])
			enc = enc[76:]
		}
		fmt.Fprintf(pw, "%s\r\n", enc)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if n := gzipSize(b.Bytes()); n > maxUserData {
		return nil, fmt.Errorf("the packages and the script take %d bytes once compressed, and the cloud takes at most %d of user data: make the script smaller, or have it download the rest", n, maxUserData)
	}
	return b.Bytes(), nil
}

// gzipSize is the size of data once gzipped, as the cloud measures it.
func gzipSize(data []byte) int {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = w.Write(data) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return out.Len()
}
