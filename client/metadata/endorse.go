package metadata

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// isEmailAddress reports whether oid is PKCS #9 emailAddress
// (1.2.840.113549.1.9.1), the e-mail attribute of older certificate
// subjects.
func isEmailAddress(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1})
}

// CertificateEmails are the e-mail addresses a certificate vouches for:
// its subjectAltName rfc822Name entries, then the emailAddress attributes
// of its subject.
func CertificateEmails(cert *x509.Certificate) []string {
	emails := append([]string(nil), cert.EmailAddresses...)
	for _, atv := range cert.Subject.Names {
		if s, ok := atv.Value.(string); ok && isEmailAddress(atv.Type) {
			emails = append(emails, s)
		}
	}
	return emails
}

// Endorse fills e's endorsement from the signing certificate: created is
// now, the e-mail is the certificate's first (see CertificateEmails), the
// subject and issuer are DN of the certificate's. It fails when the
// certificate has no e-mail address, since an endorsement without one
// cannot be searched or validated.
func Endorse(e *Entry, cert *x509.Certificate, now time.Time) error {
	emails := CertificateEmails(cert)
	if len(emails) == 0 {
		return errors.New("metadata: the certificate has no e-mail address (neither a subjectAltName e-mail nor an emailAddress in its subject); an endorsement needs one")
	}
	e.Endorsement = Endorsement{
		Created: FormatTime(now),
		Endorser: Endorser{
			Email:   emails[0],
			Subject: DN(cert.Subject),
			Issuer:  DN(cert.Issuer),
		},
	}
	return nil
}

// CheckEndorser checks that the endorser block of e is the certificate's:
// the e-mail is one the certificate vouches for (compared without regard
// to case) and the subject and issuer are DN of the certificate's. The
// error is Problems, one per field that differs, under the rule
// RuleEndorserMatchesCertificate.
func CheckEndorser(e *Entry, cert *x509.Certificate) error {
	var ps Problems
	er := e.Endorsement.Endorser
	emails := CertificateEmails(cert)
	found := false
	for _, m := range emails {
		found = found || strings.EqualFold(m, er.Email)
	}
	if !found {
		ps.add(RuleEndorserMatchesCertificate, "endorsement.endorser.email", "the endorser e-mail is %q but the certificate is for %s", er.Email, quoteList(emails))
	}
	if s := DN(cert.Subject); s != er.Subject {
		ps.add(RuleEndorserMatchesCertificate, "endorsement.endorser.subject", "the endorser subject is %q but the certificate's subject is %q", er.Subject, s)
	}
	if s := DN(cert.Issuer); s != er.Issuer {
		ps.add(RuleEndorserMatchesCertificate, "endorsement.endorser.issuer", "the endorser issuer is %q but the certificate's issuer is %q", er.Issuer, s)
	}
	return ps.err()
}

func quoteList(ss []string) string {
	if len(ss) == 0 {
		return "no e-mail address"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, ", ")
}

// rfc2253Name is the name RFC 2253 gives an attribute type, or "" for the
// types it writes as a dotted OID and the hexadecimal DER of the value.
func rfc2253Name(oid asn1.ObjectIdentifier) string {
	if len(oid) == 4 && oid[0] == 2 && oid[1] == 5 && oid[2] == 4 {
		switch oid[3] {
		case 3:
			return "CN"
		case 6:
			return "C"
		case 7:
			return "L"
		case 8:
			return "ST"
		case 9:
			return "STREET"
		case 10:
			return "O"
		case 11:
			return "OU"
		}
	}
	if len(oid) == 7 && oid[0] == 0 && oid[1] == 9 && oid[2] == 2342 && oid[3] == 19200300 && oid[4] == 100 && oid[5] == 1 {
		switch oid[6] {
		case 1:
			return "UID"
		case 25:
			return "DC"
		}
	}
	return ""
}

// DN writes a distinguished name as RFC 2253 does, the form the endorser
// block holds: the most specific attribute first, attributes separated by
// ",", the types CN, C, L, ST, STREET, O, OU, UID and DC by name, any other
// type (emailAddress, serialNumber, ...) as "1.2.840.113549.1.9.1=#" and
// the hexadecimal DER of the value, and the characters , + " \ < > ; (and #
// or a space first, a space last) escaped with a backslash. This is the
// rendering of the original StratusLab tools (Java's X500Principal.getName)
// and of openssl -nameopt RFC2253 for names of the types above.
//
// For a name parsed from a certificate, DN keeps the certificate's order of
// attributes (from n.Names), but writes the attributes of a multi-valued
// RDN as separate RDNs, and the DER of a type it does not name is
// re-encoded: IA5String for emailAddress and DC, the asn1 package's choice
// for the rest. For a name built in code (no Names), DN writes what the
// name would marshal to.
func DN(n pkix.Name) string {
	var seq pkix.RDNSequence
	if len(n.Names) > 0 && n.ExtraNames == nil {
		for _, atv := range n.Names {
			seq = append(seq, pkix.RelativeDistinguishedNameSET{atv})
		}
	} else {
		seq = n.ToRDNSequence()
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i != len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			writeATV(&b, atv)
		}
	}
	return b.String()
}

func writeATV(b *strings.Builder, atv pkix.AttributeTypeAndValue) {
	s, isString := atv.Value.(string)
	if name := rfc2253Name(atv.Type); name != "" && isString {
		b.WriteString(name)
		b.WriteByte('=')
		escapeDNValue(b, s)
		return
	}
	b.WriteString(atv.Type.String())
	b.WriteString("=#")
	var der []byte
	var err error
	if isString && (isEmailAddress(atv.Type) || rfc2253Name(atv.Type) == "DC") {
		der, err = asn1.MarshalWithParams(s, "ia5")
	} else {
		der, err = asn1.Marshal(atv.Value)
	}
	if err != nil {
		// A value asn1 cannot encode cannot come from a parsed
		// certificate; write it as text rather than lose it.
		b.WriteString(hex.EncodeToString([]byte(s)))
		return
	}
	b.WriteString(hex.EncodeToString(der))
}

func escapeDNValue(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(",+\"\\<>;", c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(s)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
}
