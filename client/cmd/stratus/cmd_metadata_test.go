package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// buildArgs are build-metadata's options for a test image.
func buildArgs(out string, extra ...string) []string {
	return append([]string{"build-metadata", "-o", out, "--author", "Jane Tester", "--author-email", janeEmail,
		"--os", "debian", "--os-version", "12", "--os-arch", "x86_64", "--image-version", "1.0", "--title", "Debian 12 base",
		"--tag", "debian-12-base", "--comment", "A minimal Debian", "--hypervisor", "kvm",
		"--location", "https://appliances.example.org/a.img,https://mirror.example.org/a.img", "--location", "http://third.example.org/a.img"}, extra...)
}

// parseFile reads an entry file.
func parseFile(t *testing.T, path string) *metadata.Entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := metadata.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

func TestBuildSignValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		signer func(jane, john credentialFiles) (args []string, vars map[string]string, cfg string, tm tty)
		who    func(jane, john credentialFiles) credentialFiles
	}{
		{"PKCS#12 made by openssl", func(jane, _ credentialFiles) ([]string, map[string]string, string, tty) {
			return []string{"--p12-cert", jane.p12, "--p12-password", p12Pass}, nil, "", tty{}
		}, func(jane, _ credentialFiles) credentialFiles { return jane }},
		{"PEM made by crypto/x509", func(_, john credentialFiles) ([]string, map[string]string, string, tty) {
			return []string{"--pem-cert", john.certFile, "--pem-key", john.keyFile}, nil, "", tty{}
		}, func(_, john credentialFiles) credentialFiles { return john }},
		{"PEM certificate and key from openssl", func(jane, _ credentialFiles) ([]string, map[string]string, string, tty) {
			return []string{"--pem-cert", jane.certFile, "--pem-key", jane.keyFile}, nil, "", tty{}
		}, func(jane, _ credentialFiles) credentialFiles { return jane }},
		{"PKCS#12 from the environment", func(jane, _ credentialFiles) ([]string, map[string]string, string, tty) {
			return nil, map[string]string{"STRATUSLAB_P12_CERTIFICATE": jane.p12, "STRATUSLAB_P12_PASSWORD": p12Pass}, "", tty{}
		}, func(jane, _ credentialFiles) credentialFiles { return jane }},
		{"PEM on the command line beats PKCS#12 in the file", func(jane, john credentialFiles) ([]string, map[string]string, string, tty) {
			return []string{"--pem-cert", john.certFile, "--pem-key", john.keyFile}, nil,
				"[default]\np12_certificate = " + jane.p12 + "\np12_password = " + p12Pass + "\n", tty{}
		}, func(_, john credentialFiles) credentialFiles { return john }},
		{"PKCS#12 password asked on the terminal", func(jane, _ credentialFiles) ([]string, map[string]string, string, tty) {
			return []string{"--p12-cert", jane.p12}, nil, "", tty{terminal: true, passwords: []string{p12Pass}}
		}, func(jane, _ credentialFiles) credentialFiles { return jane }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			jane, john := endorsers(t, home)
			signArgs, vars, cfg, tm := tc.signer(jane, john)
			who := tc.who(jane, john)
			if cfg != "" {
				writeConfig(t, home, cfg)
			}
			img, id := imageFile(t, home, "debian", 100_000)
			entry := filepath.Join(home, "entry.xml")

			code, out, errOut := stratus(t, home, vars, tty{}, buildArgs(entry, "--validity", "12", img)...)
			if code != 0 || out != id+"\n" || !strings.Contains(errOut, "Wrote "+entry+" (unsigned)") {
				t.Fatalf("build-metadata: %d %q %q; want %s", code, out, errOut, id)
			}
			e := parseFile(t, entry)
			created, _ := metadata.ParseTime(e.Created)
			valid, _ := metadata.ParseTime(e.Valid)
			if e.Identifier != id || e.Signed || e.Creator != "Jane Tester" || e.Endorsement.Endorser.Email != janeEmail || e.Tag != "debian-12-base" ||
				e.Description != "A minimal Debian" || e.Format != "raw" || e.Compression != "none" || e.Bytes != 100_000 ||
				!slices.Equal(e.Locations, []string{"https://appliances.example.org/a.img", "https://mirror.example.org/a.img", "http://third.example.org/a.img"}) ||
				!valid.Equal(created.AddDate(1, 0, 0)) {
				t.Fatalf("built entry: %+v", e)
			}

			args := append(append([]string{"stratus-sign-metadata"}, signArgs...), entry)
			code, out, errOut = stratus(t, home, vars, tm, args...)
			if code != 0 || out != "SIGNED "+id+" "+who.email+"\n" {
				t.Fatalf("sign-metadata: %d %q %q", code, out, errOut)
			}
			if tm.terminal && !strings.Contains(errOut, "Password of "+jane.p12) {
				t.Errorf("no password prompt: %q", errOut)
			}
			signed := parseFile(t, entry)
			if !signed.Signed || signed.Endorsement.Endorser.Email != who.email || signed.Endorsement.Endorser.Subject != metadata.DN(who.cert.Subject) {
				t.Errorf("signed entry: %+v", signed)
			}
			if msg, err := xmlsecVerify(t, entry, who.ca); err != nil {
				t.Errorf("xmlsec1 refuses the signed entry: %v\n%s", err, msg)
			}
			code, out, errOut = stratus(t, home, vars, tty{}, "validate-metadata", "--trusted-cas", who.ca, entry)
			if code != 0 || out != "VALID "+id+" "+who.email+" valid\n" {
				t.Errorf("validate-metadata: %d %q %q", code, out, errOut)
			}
			// A signed file is signed again only when asked.
			code, _, errOut = stratus(t, home, vars, tm, args...)
			if code != 1 || !strings.Contains(errOut, entry+" is signed already: give --force") {
				t.Errorf("sign twice: %d %q", code, errOut)
			}
			tm.passwords = slices.Clone(tm.passwords)
			again := filepath.Join(home, "again.xml")
			args = append(append([]string{"sign-metadata", "--force", "-q", "-o", again}, signArgs...), entry)
			if code, out, errOut := stratus(t, home, vars, tm, args...); code != 0 || out != id+"\n" {
				t.Errorf("sign --force: %d %q %q", code, out, errOut)
			}
			if msg, err := xmlsecVerify(t, again, who.ca); err != nil {
				t.Errorf("xmlsec1 refuses the entry signed again: %v\n%s", err, msg)
			}
		})
	}
}

// signWith signs e with key and cert, as a foreign tool would: no check.
func signWith(t *testing.T, e *metadata.Entry, c credentialFiles) []byte {
	t.Helper()
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := xmlsig.Sign(doc, c.key.(crypto.Signer), []*x509.Certificate{c.cert}, xmlsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestValidateMetadataNamesTheRule(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	jane, john := endorsers(t, home)
	img, _ := imageFile(t, home, "base", 50_000)
	write := func(name string, data []byte) string {
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	build := func(now time.Time, validity time.Duration) *metadata.Entry {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		e, err := metadata.Build(metadata.BuildOptions{Email: janeEmail, OS: "debian", OSVersion: "12", OSArch: "x86_64", Locations: []string{"https://example.org/base.img"},
			Now: now, Validity: validity}, f)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	now := time.Now()

	good := build(now, 0)
	if err := metadata.Endorse(good, jane.cert, now); err != nil {
		t.Fatal(err)
	}
	goodFile := write("good.xml", signWith(t, good, jane))

	tampered := bytes.Replace(signWith(t, good, jane), []byte("https://example.org/base.img"), []byte("https://evil.example.org/base.img"), 1)
	tamperedFile := write("tampered.xml", tampered)
	if _, err := xmlsecVerify(t, tamperedFile, jane.ca); err == nil {
		t.Errorf("xmlsec1 accepts the tampered entry")
	}

	// Signed by John, claiming to be Jane's.
	impostorFile := write("impostor.xml", signWith(t, good, john))

	expired := build(now.AddDate(-1, 0, 0), 30*24*time.Hour)
	if err := metadata.Endorse(expired, jane.cert, now); err != nil {
		t.Fatal(err)
	}
	expiredFile := write("expired.xml", signWith(t, expired, jane))
	// An expired image deprecated by a new signed entry, endorsed after
	// its valid date: the Marketplace takes it, to withdraw the image.
	expired.Deprecated = "superseded"
	withdrawnFile := write("withdrawn.xml", signWith(t, expired, jane))
	deprecated := *good
	deprecated.Deprecated = "use 1.1"
	deprecatedFile := write("deprecated.xml", signWith(t, &deprecated, jane))

	unsigned, err := metadata.Render(good)
	if err != nil {
		t.Fatal(err)
	}
	unsignedFile := write("unsigned.xml", unsigned)
	doctypeFile := write("doctype.xml", []byte(`<?xml version="1.0"?><!DOCTYPE rdf:RDF [<!ENTITY x "y">]><rdf:RDF/>`))
	hugeFile := write("huge.xml", bytes.Repeat([]byte(" "), metadata.MaxDocumentSize+1))

	for _, tc := range []struct {
		name, file string
		extra      []string
		want       string // a line of the output
	}{
		{"good", goodFile, nil, "VALID " + good.Identifier + " " + janeEmail + " valid"},
		{"deprecating", deprecatedFile, nil, "VALID " + good.Identifier + " " + janeEmail + " deprecated"},
		{"deprecating an expired image", withdrawnFile, nil, "VALID " + expired.Identifier + " " + janeEmail + " deprecated"},
		{"tampered", tamperedFile, nil, "  signature-digest: document modified after signing (digest mismatch)"},
		{"impostor", impostorFile, nil, "  endorser-matches-certificate: "},
		{"expired", expiredFile, nil, "  not-expired: "},
		{"unsigned", unsignedFile, nil, "  signature-present: "},
		{"doctype", doctypeFile, nil, "  well-formed: "},
		{"missing", filepath.Join(home, "nope.xml"), nil, "  readable: "},
		{"huge", hugeFile, nil, "  document-size: "},
		{"untrusted issuer", goodFile, []string{"--trusted-cas", john.ca}, "  trusted-ca: "},
	} {
		args := append(append([]string{"validate-metadata"}, tc.extra...), tc.file)
		code, out, errOut := stratus(t, home, nil, tty{}, args...)
		wantCode := 1
		if strings.HasPrefix(tc.want, "VALID") {
			wantCode = 0
		} else if !strings.HasPrefix(out, "INVALID "+tc.file+"\n") {
			t.Errorf("%s: %q does not start with INVALID %s", tc.name, out, tc.file)
		}
		if code != wantCode || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %d %q %q; want %d and %q", tc.name, code, out, errOut, wantCode, tc.want)
		}
	}
	code, out, errOut := stratus(t, home, nil, tty{}, "validate-metadata", goodFile, tamperedFile, impostorFile)
	if code != 1 || strings.Count(out, "INVALID") != 2 || !strings.Contains(errOut, "2 of 3 entries are not valid") {
		t.Errorf("several files: %d %q %q", code, out, errOut)
	}
}

func TestBuildMetadata(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	jane, _ := endorsers(t, home)
	img, id := imageFile(t, home, "data", 4096)
	run := func(args ...string) (int, string, string) { return stratus(t, home, nil, tty{}, args...) }

	// To standard output: the entry there, the identifier on stderr.
	code, out, errOut := run("build-metadata", "--type", "disk", "--author-email", janeEmail, "--location", "https://example.org/data.img", "-o", "-", img)
	e, err := metadata.Parse([]byte(out))
	if code != 0 || err != nil || e.Identifier != id || e.OS != "none" || e.Type != "disk" || errOut != id+"\n" {
		t.Fatalf("-o -: %d %v %q %q", code, err, out, errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no location", []string{"--os", "debian", "--os-version", "12", "--os-arch", "x86_64"}, 1, "required-field: "},
		{"no e-mail", []string{"--author-email", "", "--type", "disk", "--location", "https://example.org/a"}, 2, "give --author-email"},
		{"bad tag", []string{"--tag", "no spaces", "--location", "https://example.org/a"}, 1, "tag-syntax: "},
		{"ftp location", []string{"--type", "disk", "--location", "ftp://example.org/a"}, 1, "location-url: "},
		{"format against the file", []string{"--type", "disk", "--location", "https://example.org/a", "--format", "qcow2"}, 1, "qcow2"},
		{"validity", []string{"--validity", "soon", "--location", "https://example.org/a"}, 2, `--validity "soon": give a number of months`},
		{"no file", []string{"--location", "https://example.org/a", "-o", "x.xml"}, 2, "accepts 1 arg(s)"},
	} {
		args := append([]string{"build-metadata", "--author-email", janeEmail, "-o", filepath.Join(home, "x.xml")}, tc.args...)
		if tc.name != "no file" {
			args = append(args, img)
		} else {
			args = append([]string{"build-metadata"}, tc.args...)
		}
		if code, out, errOut := run(args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: %d %q %q; want %d %q", tc.name, code, out, errOut, tc.code, tc.want)
		}
	}

	// An unsigned entry is replaced; a signed one only with --force.
	entry := filepath.Join(home, "e.xml")
	for range 2 {
		if code, _, errOut := run(buildArgs(entry, img)...); code != 0 {
			t.Fatalf("build twice: %d %q", code, errOut)
		}
	}
	if code, _, errOut := run("sign-metadata", "--p12-cert", jane.p12, "--p12-password", p12Pass, entry); code != 0 {
		t.Fatalf("sign: %q", errOut)
	}
	if code, _, errOut := run(buildArgs(entry, img)...); code != 1 || !strings.Contains(errOut, entry+" holds a signed entry") {
		t.Errorf("build over a signed entry: %d %q", code, errOut)
	}
	if code, _, errOut := run(buildArgs(entry, "--force", img)...); code != 0 || parseFile(t, entry).Signed {
		t.Errorf("build --force: %d %q", code, errOut)
	}
	if st, err := os.Stat(entry); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("entry file mode: %v %v", st.Mode(), err)
	}
}

func TestBuildMetadataDefaultFile(t *testing.T) {
	home := t.TempDir()
	t.Chdir(home)
	img, id := imageFile(t, home, "here", 1000)
	code, out, errOut := stratus(t, home, nil, tty{}, "build-metadata", "--type", "disk", "--author-email", janeEmail, "--location", "https://example.org/here.img", img)
	if code != 0 || out != id+"\n" {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	if e := parseFile(t, filepath.Join(home, id+".xml")); e.Identifier != id {
		t.Errorf("%s.xml holds %s", id, e.Identifier)
	}
}

func TestSignMetadataRefusals(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	jane, john := endorsers(t, home)
	img, _ := imageFile(t, home, "x", 1000)
	entry := filepath.Join(home, "e.xml")
	if code, _, errOut := stratus(t, home, nil, tty{}, buildArgs(entry, img)...); code != 0 {
		t.Fatal(errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no certificate", nil, 2, "no certificate to sign with: give --p12-cert FILE"},
		{"wrong PKCS#12 password", []string{"--p12-cert", jane.p12, "--p12-password", "wrong"}, 1, "cannot open the PKCS#12 certificate " + jane.p12 + " (wrong p12_password?)"},
		{"key of another certificate", []string{"--pem-cert", jane.certFile, "--pem-key", john.keyFile}, 1, "does not match the certificate"},
		{"not an entry", []string{"--pem-cert", john.certFile, "--pem-key", john.keyFile, img}, 1, "cannot sign " + img + ": document-structure: "},
	} {
		args := append([]string{"sign-metadata"}, tc.args...)
		if !slices.Contains(tc.args, img) {
			args = append(args, entry)
		}
		if code, _, errOut := stratus(t, home, nil, tty{}, args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: %d %q; want %d %q", tc.name, code, errOut, tc.code, tc.want)
		}
	}
	if parseFile(t, entry).Signed {
		t.Errorf("a refused signature changed the file")
	}
}

func TestParseValidity(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"6", now.AddDate(0, 6, 0).Sub(now), true},
		{"1", now.AddDate(0, 1, 0).Sub(now), true},
		{"30d", 30 * 24 * time.Hour, true},
		{"48h", 48 * time.Hour, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"0d", 0, false},
		{"-2h", 0, false},
		{"6 months", 0, false},
	} {
		got, err := parseValidity(tc.in, now)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseValidity(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
