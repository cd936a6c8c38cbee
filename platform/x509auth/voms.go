package x509auth

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"time"
)

// Object identifiers of VOMS (the VOMS project's arc 1.3.6.1.4.1.8005).
var (
	// OIDVOMSExtension is the proxy certificate extension that holds the
	// VOMS attribute certificates.
	OIDVOMSExtension = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 5}
	// OIDVOMSAttribute is the attribute of an attribute certificate that
	// holds the policy authority and the FQANs.
	OIDVOMSAttribute = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 4}
	// OIDVOMSCerts is the attribute certificate extension in which a VOMS
	// server embeds its own certificate.
	OIDVOMSCerts = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 10}

	oidNoRevAvail = asn1.ObjectIdentifier{2, 5, 29, 56}
	oidAuthKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
)

// attributeCertificate is RFC 3281's AttributeCertificate.
type attributeCertificate struct {
	Info               asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	SignatureValue     asn1.BitString
}

// acInfo is RFC 3281's AttributeCertificateInfo.
type acInfo struct {
	Version        int
	Holder         acHolder
	Issuer         asn1.RawValue // v1Form GeneralNames or v2Form [0] V2Form
	Signature      pkix.AlgorithmIdentifier
	SerialNumber   *big.Int
	Validity       acValidity
	Attributes     []acAttribute
	IssuerUniqueID asn1.BitString   `asn1:"optional"`
	Extensions     []pkix.Extension `asn1:"optional"`
}

// acHolder is RFC 3281's Holder (implicit tags).
type acHolder struct {
	BaseCertificateID issuerSerial  `asn1:"optional,tag:0"`
	EntityName        asn1.RawValue `asn1:"optional,tag:1"`
	ObjectDigestInfo  asn1.RawValue `asn1:"optional,tag:2"`
}

// issuerSerial is RFC 3281's IssuerSerial.
type issuerSerial struct {
	Issuer    []asn1.RawValue // GeneralNames
	Serial    *big.Int
	IssuerUID asn1.BitString `asn1:"optional"`
}

type acValidity struct {
	NotBefore, NotAfter time.Time
}

type acAttribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// ietfAttrSyntax is RFC 3281's IetfAttrSyntax, the value of the VOMS
// attribute.
type ietfAttrSyntax struct {
	PolicyAuthority asn1.RawValue `asn1:"optional,tag:0"`
	Values          []asn1.RawValue
}

// signatureAlgorithms maps the signature algorithms VOMS servers use to
// crypto/x509's, which does not export its own table.
var signatureAlgorithms = []struct {
	oid  asn1.ObjectIdentifier
	algo x509.SignatureAlgorithm
}{
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, x509.SHA1WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, x509.SHA256WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, x509.SHA384WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, x509.SHA512WithRSA},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, x509.ECDSAWithSHA1},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, x509.ECDSAWithSHA256},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, x509.ECDSAWithSHA384},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}, x509.ECDSAWithSHA512},
	{asn1.ObjectIdentifier{1, 3, 101, 112}, x509.PureEd25519},
}

func signatureAlgorithm(id asn1.ObjectIdentifier) x509.SignatureAlgorithm {
	for _, a := range signatureAlgorithms {
		if a.oid.Equal(id) {
			return a.algo
		}
	}
	return x509.UnknownSignatureAlgorithm
}

// vomsFromChain reads the VOMS attributes of the first proxy below the
// end-entity certificate chain[ee] that carries the VOMS extension. Only
// that proxy is read: a later one cannot override what the first says.
func vomsFromChain(chain []*x509.Certificate, ee int, o Options, now time.Time) (string, []string) {
	for i := 0; i < ee; i++ {
		for _, e := range chain[i].Extensions {
			if e.Id.Equal(OIDVOMSExtension) {
				return vomsFromExtension(e.Value, chain[i+1:ee+1], o, now)
			}
		}
	}
	return "", nil
}

// vomsFromExtension returns the VO and FQANs of the first trusted attribute
// certificate of a VOMS extension. holders are the certificates an
// attribute certificate may name as its holder. Anything malformed or
// untrusted is ignored: VOMS attributes add to an identity that the chain
// already proved.
func vomsFromExtension(value []byte, holders []*x509.Certificate, o Options, now time.Time) (string, []string) {
	for _, raw := range splitACs(value) {
		if vo, fqans, ok := checkAC(raw, holders, o, now); ok {
			return vo, fqans
		}
	}
	return "", nil
}

// splitACs returns the DER attribute certificates of a VOMS extension.
// voms-proxy-init writes a SEQUENCE of SEQUENCE OF AttributeCertificate;
// some Java tools write a single SEQUENCE OF AttributeCertificate. Both are
// read, since an AttributeCertificate never parses as a SEQUENCE OF them.
func splitACs(value []byte) [][]byte {
	var outer []asn1.RawValue
	if rest, err := asn1.Unmarshal(value, &outer); err != nil || len(rest) > 0 {
		return nil
	}
	var acs [][]byte
	for _, e := range outer {
		var ac attributeCertificate
		if rest, err := asn1.Unmarshal(e.FullBytes, &ac); err == nil && len(rest) == 0 {
			acs = append(acs, e.FullBytes)
			continue
		}
		var inner []asn1.RawValue
		if rest, err := asn1.Unmarshal(e.FullBytes, &inner); err != nil || len(rest) > 0 {
			continue
		}
		for _, a := range inner {
			acs = append(acs, a.FullBytes)
		}
	}
	return acs
}

// checkAC parses one attribute certificate and returns its VO and FQANs
// when a trusted VOMS server signed it for one of holders and it is valid
// now.
func checkAC(raw []byte, holders []*x509.Certificate, o Options, now time.Time) (string, []string, bool) {
	var ac attributeCertificate
	if rest, err := asn1.Unmarshal(raw, &ac); err != nil || len(rest) > 0 {
		return "", nil, false
	}
	var info acInfo
	if rest, err := asn1.Unmarshal(ac.Info.FullBytes, &info); err != nil || len(rest) > 0 {
		return "", nil, false
	}
	if info.Version != 1 || !info.Signature.Algorithm.Equal(ac.SignatureAlgorithm.Algorithm) {
		return "", nil, false
	}
	if now.Before(info.Validity.NotBefore) || now.After(info.Validity.NotAfter) {
		return "", nil, false
	}
	if !holderMatches(info.Holder, holders) {
		return "", nil, false
	}
	var embedded []*x509.Certificate
	for _, e := range info.Extensions {
		switch {
		case e.Id.Equal(OIDVOMSCerts):
			embedded = embeddedCerts(e.Value)
		case e.Id.Equal(oidNoRevAvail), e.Id.Equal(oidAuthKeyID):
		case e.Critical:
			// An extension we do not understand may restrict the AC, for
			// instance to other targets: it cannot be believed here.
			return "", nil, false
		}
	}
	if !signedByTrusted(ac, info, embedded, o, now) {
		return "", nil, false
	}
	fqans := fqansOf(info.Attributes)
	if len(fqans) == 0 {
		return "", nil, false
	}
	vo, _, _ := strings.Cut(strings.TrimPrefix(fqans[0], "/"), "/")
	if vo == "" {
		return "", nil, false
	}
	return vo, fqans, true
}

// holderMatches reports whether the AC's holder is one of certs: by issuer
// and serial number (the issuer written either as the certificate's issuer,
// as RFC 3281 says, or as its subject, as some Java generators do), or by
// subject name.
func holderMatches(h acHolder, certs []*x509.Certificate) bool {
	if h.BaseCertificateID.Serial != nil {
		for _, c := range certs {
			if c.SerialNumber.Cmp(h.BaseCertificateID.Serial) != 0 {
				continue
			}
			for _, n := range directoryNames(h.BaseCertificateID.Issuer) {
				if bytes.Equal(n, c.RawIssuer) || bytes.Equal(n, c.RawSubject) {
					return true
				}
			}
		}
		return false
	}
	if len(h.EntityName.Bytes) > 0 {
		// [1] IMPLICIT GeneralNames: the contents are the names.
		names := generalNamesIn(h.EntityName.Bytes)
		for _, c := range certs {
			for _, n := range directoryNames(names) {
				if bytes.Equal(n, c.RawSubject) {
					return true
				}
			}
		}
	}
	return false
}

// generalNamesIn splits the contents of an implicitly tagged GeneralNames.
func generalNamesIn(contents []byte) []asn1.RawValue {
	var names []asn1.RawValue
	for len(contents) > 0 {
		var n asn1.RawValue
		rest, err := asn1.Unmarshal(contents, &n)
		if err != nil {
			return names
		}
		names = append(names, n)
		contents = rest
	}
	return names
}

// directoryNames returns the DER Names of the directoryName entries of
// GeneralNames ([4] EXPLICIT Name).
func directoryNames(names []asn1.RawValue) [][]byte {
	var out [][]byte
	for _, n := range names {
		if n.Class == asn1.ClassContextSpecific && n.Tag == 4 && n.IsCompound {
			out = append(out, n.Bytes)
		}
	}
	return out
}

// issuerNames returns the DER names of an AttCertIssuer.
func issuerNames(issuer asn1.RawValue) [][]byte {
	switch {
	case issuer.Class == asn1.ClassUniversal && issuer.Tag == asn1.TagSequence:
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(issuer.FullBytes, &names); err != nil || len(rest) > 0 {
			return nil
		}
		return directoryNames(names)
	case issuer.Class == asn1.ClassContextSpecific && issuer.Tag == 0 && issuer.IsCompound:
		// v2Form: issuerName GeneralNames OPTIONAL comes first.
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(issuer.Bytes, &names); err != nil {
			return nil
		}
		return directoryNames(names)
	}
	return nil
}

// embeddedCerts parses the VOMS certs extension: a SEQUENCE holding a
// SEQUENCE OF Certificate.
func embeddedCerts(value []byte) []*x509.Certificate {
	var seqs [][]asn1.RawValue
	if rest, err := asn1.Unmarshal(value, &seqs); err != nil || len(rest) > 0 {
		return nil
	}
	var certs []*x509.Certificate
	for _, s := range seqs {
		for _, raw := range s {
			if c, err := x509.ParseCertificate(raw.FullBytes); err == nil {
				certs = append(certs, c)
			}
		}
	}
	return certs
}

// signedByTrusted reports whether the AC's signature verifies with the key
// of a certificate named as its issuer that itself verifies against
// o.VOMSRoots. Candidates are the certificates embedded in the AC and
// o.VOMSCerts.
func signedByTrusted(ac attributeCertificate, info acInfo, embedded []*x509.Certificate, o Options, now time.Time) bool {
	algo := signatureAlgorithm(ac.SignatureAlgorithm.Algorithm)
	if algo == x509.UnknownSignatureAlgorithm || ac.SignatureValue.BitLength%8 != 0 {
		return false
	}
	names := issuerNames(info.Issuer)
	inter := x509.NewCertPool()
	for _, c := range embedded {
		inter.AddCert(c)
	}
	candidates := append(append([]*x509.Certificate(nil), embedded...), o.VOMSCerts...)
	for _, c := range candidates {
		named := false
		for _, n := range names {
			named = named || bytes.Equal(n, c.RawSubject)
		}
		if !named {
			continue
		}
		if err := c.CheckSignature(algo, ac.Info.FullBytes, ac.SignatureValue.Bytes); err != nil {
			continue
		}
		_, err := c.Verify(x509.VerifyOptions{
			Roots:         o.VOMSRoots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			return true
		}
	}
	return false
}

// fqansOf returns the FQANs of the first VOMS attribute.
func fqansOf(attrs []acAttribute) []string {
	for _, a := range attrs {
		if !a.Type.Equal(OIDVOMSAttribute) || len(a.Values) == 0 {
			continue
		}
		var syn ietfAttrSyntax
		if rest, err := asn1.Unmarshal(a.Values[0].FullBytes, &syn); err != nil || len(rest) > 0 {
			return nil
		}
		var fqans []string
		for _, v := range syn.Values {
			if v.Class != asn1.ClassUniversal || (v.Tag != asn1.TagOctetString && v.Tag != asn1.TagUTF8String) {
				return nil
			}
			fqans = append(fqans, string(v.Bytes))
		}
		return fqans
	}
	return nil
}
