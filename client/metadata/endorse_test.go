package metadata

import (
	"crypto/x509/pkix"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// splitDN splits an RFC 2253 string at the commas that are not escaped.
func splitDN(s string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ',':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func opensslSubject(t *testing.T, path, nameopt string) string {
	t.Helper()
	out, err := exec.Command("openssl", "x509", "-in", path, "-noout", "-subject", "-nameopt", nameopt).Output()
	if err != nil {
		t.Fatalf("openssl x509 -subject -nameopt %s: %v", nameopt, err)
	}
	s := strings.TrimSuffix(string(out), "\n")
	s, ok := strings.CutPrefix(s, "subject=")
	if !ok {
		t.Fatalf("openssl printed %q", out)
	}
	return s
}

// TestDNAgainstOpenSSL compares DN with openssl's RFC 2253 rendering of
// certificate subjects: attribute by attribute with -nameopt RFC2253 for
// the types RFC 2253 names, and with the hexadecimal DER openssl dumps
// (-nameopt RFC2253,dump_all,oid) for the others.
func TestDNAgainstOpenSSL(t *testing.T) {
	t.Parallel()
	ca := newCA(t, caName())
	for _, tc := range []struct {
		name    string
		subject pkix.Name
		want    string // DN, checked too
	}{
		{"jane", janeName(), "CN=Jane Tester,OU=Testing Department,O=StratusLab Project,C=EU"},
		{"order kept", rawName(atv(oidDC, "org"), atv(oidDC, "example"), atv(oidUID, "jane"), atv(oidCN, "Jane")),
			"CN=Jane,UID=jane,DC=example,DC=org"},
		{"specials", rawName(atv(oidCN, `Tester, Jane "JT" <jt>; a+b \ c`)),
			`CN=Tester\, Jane \"JT\" \<jt\>\; a\+b \\ c`},
		{"leading hash and spaces", rawName(atv(oidCN, "#1 "), atv(oidCN, " lead")),
			`CN=\ lead,CN=\#1\ `},
		{"email and serial number", rawName(atv(oidCN, "Jane"), ia5(oidEmail, "jane@example.org"), atv(oidSerial, "1234")),
			"2.5.4.5=#130431323334,1.2.840.113549.1.9.1=#16106a616e65406578616d706c652e6f7267,CN=Jane"},
		// Go encodes this address as a UTF8String; DN writes it as the
		// IA5String that PKCS #9 requires (it sees only the parsed value),
		// so only the openssl comparison is skipped.
		{"email as UTF8String", rawName(atv(oidCN, "Jane"), atv(oidEmail, "jane@example.org")),
			"1.2.840.113549.1.9.1=#16106a616e65406578616d706c652e6f7267,CN=Jane"},
		{"utf-8", rawName(atv(oidCN, "Zoë Ünïcode")), "CN=Zoë Ünïcode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := ca.issue(t, tc.subject, "jane@example.org")
			got := DN(cert.Subject)
			if got != tc.want {
				t.Errorf("DN = %q, want %q", got, tc.want)
			}
			if tc.name == "email as UTF8String" {
				return
			}
			if built := DN(tc.subject); built != got {
				t.Errorf("DN of the name built in code = %q, of the parsed name %q", built, got)
			}
			path := writePEM(t, cert)
			named := splitDN(opensslSubject(t, path, "RFC2253,-esc_msb"))
			dumped := splitDN(opensslSubject(t, path, "RFC2253,dump_all,oid"))
			ours := splitDN(got)
			if len(named) != len(ours) || len(dumped) != len(ours) {
				t.Fatalf("DN %q has %d attributes, openssl %q and %q", got, len(ours), named, dumped)
			}
			for i, a := range ours {
				if strings.Contains(a, "=#") {
					if !strings.EqualFold(a, dumped[i]) {
						t.Errorf("attribute %d: %q, openssl dumps %q", i, a, dumped[i])
					}
				} else if a != named[i] {
					t.Errorf("attribute %d: %q, openssl writes %q", i, a, named[i])
				}
			}
		})
	}
}

func TestEndorse(t *testing.T) {
	t.Parallel()
	ca := newCA(t, caName())
	now := time.Date(2026, 3, 1, 12, 30, 45, 999, time.FixedZone("CET", 3600))

	jane := ca.issue(t, janeName(), "jane.tester@example.org", "jt@example.org")
	var e Entry
	if err := Endorse(&e, jane, now); err != nil {
		t.Fatal(err)
	}
	want := Endorsement{
		Created: "2026-03-01T11:30:45Z",
		Endorser: Endorser{
			Email:   "jane.tester@example.org",
			Subject: "CN=Jane Tester,OU=Testing Department,O=StratusLab Project,C=EU",
			Issuer:  "CN=StratusLab Test CA,O=StratusLab Project,C=EU",
		},
	}
	if e.Endorsement != want {
		t.Fatalf("endorsement %+v, want %+v", e.Endorsement, want)
	}
	if err := CheckEndorser(&e, jane); err != nil {
		t.Fatalf("CheckEndorser after Endorse: %v", err)
	}
	// The second address is certified too, in any case.
	e.Endorsement.Endorser.Email = "JT@example.org"
	if err := CheckEndorser(&e, jane); err != nil {
		t.Errorf("CheckEndorser with the second address: %v", err)
	}

	// An old-style certificate with the address only in its subject.
	old := ca.issue(t, rawName(atv(oidCN, "Old Timer"), atv(oidEmail, "old@example.org")))
	var o Entry
	if err := Endorse(&o, old, now); err != nil {
		t.Fatal(err)
	}
	if o.Endorsement.Endorser.Email != "old@example.org" {
		t.Errorf("email from the subject: %q", o.Endorsement.Endorser.Email)
	}

	// No address at all.
	none := ca.issue(t, rawName(atv(oidCN, "Nobody")))
	var n Entry
	if err := Endorse(&n, none, now); err == nil || !strings.Contains(err.Error(), "no e-mail address") {
		t.Errorf("Endorse without an address: %v", err)
	}
}

func TestCheckEndorserNamesWhatDiffers(t *testing.T) {
	t.Parallel()
	ca := newCA(t, caName())
	other := newCA(t, pkix.Name{CommonName: "Other CA"})
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	jane := ca.issue(t, janeName(), "jane@example.org")

	for _, tc := range []struct {
		name   string
		claim  func(*Entry) // how the entry's block was made
		fields []string
	}{
		{"same", func(e *Entry) {}, nil},
		{"other e-mail", func(e *Entry) { e.Endorsement.Endorser.Email = "mallory@example.org" }, []string{"endorsement.endorser.email"}},
		{"other subject", func(e *Entry) {
			mallory := ca.issue(t, pkix.Name{CommonName: "Mallory"}, "jane@example.org")
			Endorse(e, mallory, now)
		}, []string{"endorsement.endorser.subject"}},
		{"other issuer", func(e *Entry) {
			Endorse(e, other.issue(t, janeName(), "jane@example.org"), now)
		}, []string{"endorsement.endorser.issuer"}},
		{"someone else", func(e *Entry) {
			Endorse(e, other.issue(t, pkix.Name{CommonName: "Mallory"}, "mallory@example.org"), now)
		}, []string{"endorsement.endorser.email", "endorsement.endorser.subject", "endorsement.endorser.issuer"}},
		{"empty block", func(e *Entry) { e.Endorsement = Endorsement{} },
			[]string{"endorsement.endorser.email", "endorsement.endorser.subject", "endorsement.endorser.issuer"}},
	} {
		var e Entry
		if err := Endorse(&e, jane, now); err != nil {
			t.Fatal(err)
		}
		tc.claim(&e)
		err := CheckEndorser(&e, jane)
		var ps Problems
		if tc.fields == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.As(err, &ps) {
			t.Fatalf("%s: error %v is not Problems", tc.name, err)
		}
		var fields []string
		for _, p := range ps {
			if p.Rule != RuleEndorserMatchesCertificate {
				t.Errorf("%s: rule %s", tc.name, p.Rule)
			}
			fields = append(fields, p.Field)
		}
		if strings.Join(fields, " ") != strings.Join(tc.fields, " ") {
			t.Errorf("%s: fields %v, want %v (%v)", tc.name, fields, tc.fields, err)
		}
	}
}
