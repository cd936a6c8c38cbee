package x509auth

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"stratuslab.dev/platform/errs"
)

// ErrNotTrusted is wrapped by every error of Verify: the chain does not prove
// who the client is.
var ErrNotTrusted = errors.New("the client certificate is not trusted")

// Verified is what a client certificate chain proves.
type Verified struct {
	// DN is the subject of the end-entity certificate in RFC 2253 form
	// (pkix.Name.String() order and escaping).
	DN string
	// Proxy says the chain had at least one proxy certificate.
	Proxy bool
	// VO is the VOMS virtual organisation, "" when no trusted attribute
	// certificate was found.
	VO string
	// FQANs are the VOMS fully qualified attribute names, in the order the
	// VOMS server wrote them.
	FQANs []string
}

// Options are the trust anchors and the clock of Verify.
type Options struct {
	// Roots are the CAs end-entity certificates must chain to. Nil trusts
	// nothing (never the system roots).
	Roots *x509.CertPool
	// VOMSRoots are the VOMS servers (or their CAs) whose attribute
	// certificates are believed; nil ignores VOMS.
	VOMSRoots *x509.CertPool
	// VOMSCerts are VOMS server certificates looked up by name for attribute
	// certificates that do not embed their signer (LoadCerts reads them).
	// They are believed only when they verify against VOMSRoots.
	VOMSCerts []*x509.Certificate
	// Now is the time of the checks; zero means time.Now().
	Now time.Time
}

// Object identifiers of proxy certificates (RFC 3820 and Globus).
var (
	oidProxyCertInfo = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 14}
	oidInheritAll    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 1}
	oidIndependent   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 2}
	oidLimitedProxy  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3536, 1, 1, 1, 9}
	oidCommonName    = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// proxyCertInfo is the RFC 3820 ProxyCertInfo extension.
type proxyCertInfo struct {
	PathLen *big.Int `asn1:"optional"`
	Policy  struct {
		Language asn1.ObjectIdentifier
		Policy   []byte `asn1:"optional"`
	}
}

// Verify checks a client certificate chain as TLS presents it, leaf first
// (r.TLS.PeerCertificates): any proxies, each signed by the next
// certificate, then an end-entity certificate that chains to o.Roots and
// allows client authentication. Its errors wrap ErrNotTrusted and carry the
// code unauthorized.
func Verify(chain []*x509.Certificate, o Options) (Verified, error) {
	if len(chain) == 0 {
		return Verified{}, refuse("no client certificate was presented")
	}
	if o.Roots == nil {
		return Verified{}, refuse("the server trusts no certificate authority for client certificates")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ee := 0
	for ee < len(chain) {
		isProxy, err := checkProxy(chain, ee, now)
		if err != nil {
			return Verified{}, err
		}
		if !isProxy {
			break
		}
		ee++
	}
	if ee == len(chain) {
		return Verified{}, refuse("the chain holds only proxy certificates: send the user certificate that signed them too")
	}
	cert := chain[ee]
	inter := x509.NewCertPool()
	for _, c := range chain[ee+1:] {
		inter.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:         o.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Verified{}, refusef("the certificate %q was not issued by a trusted certificate authority, has expired or may not be used for client authentication: %v", cert.Subject.String(), err)
	}
	v := Verified{DN: cert.Subject.String(), Proxy: ee > 0}
	if ee > 0 && o.VOMSRoots != nil {
		v.VO, v.FQANs = vomsFromChain(chain, ee, o, now)
	}
	return v, nil
}

// checkProxy reports whether chain[i] is a proxy certificate and, when it
// is, whether the next certificate properly issued it.
func checkProxy(chain []*x509.Certificate, i int, now time.Time) (bool, error) {
	c := chain[i]
	info, rfc, err := proxyInfo(c)
	if err != nil {
		return false, err
	}
	var issuer *x509.Certificate
	if i+1 < len(chain) {
		issuer = chain[i+1]
	}
	if !rfc {
		// A legacy Globus proxy is only recognised by its name: the subject
		// of its issuer, itself no CA, plus one CN. A certificate a CA
		// issued is never one, whatever its name.
		if issuer == nil || issuer.IsCA || !bytes.Equal(c.RawIssuer, issuer.RawSubject) || !extendsByCN(c.RawSubject, c.RawIssuer) {
			return false, nil
		}
	}
	name := c.Subject.String()
	if issuer == nil {
		return true, refusef("the proxy certificate %q came without the certificate that signed it", name)
	}
	switch {
	case c.IsCA:
		return true, refusef("the proxy certificate %q claims to be a certificate authority", name)
	case issuer.BasicConstraintsValid && issuer.IsCA:
		return true, refusef("the proxy certificate %q is signed by a certificate authority instead of by a user certificate or proxy", name)
	case issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return true, refusef("the certificate %q may not sign proxies (no digitalSignature key usage)", issuer.Subject.String())
	case !bytes.Equal(c.RawIssuer, issuer.RawSubject):
		return true, refusef("the proxy certificate %q names %q as its issuer but the next certificate of the chain is %q", name, c.Issuer.String(), issuer.Subject.String())
	case !extendsByCN(c.RawSubject, issuer.RawSubject):
		return true, refusef("the subject of the proxy certificate %q must be that of its issuer %q plus one CN", name, issuer.Subject.String())
	case unknownCritical(c):
		return true, refusef("the proxy certificate %q has a critical extension this server does not understand", name)
	case now.Before(c.NotBefore):
		return true, refusef("the proxy certificate %q is not valid before %s", name, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return true, refusef("the proxy certificate %q expired on %s: create a new proxy (voms-proxy-init or grid-proxy-init)", name, c.NotAfter.UTC().Format(time.RFC3339))
	}
	// CheckSignatureFrom insists that the parent is a CA, so the signature is
	// checked with the issuer's key directly.
	if err := issuer.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return true, refusef("the proxy certificate %q is not signed by the key of %q: %v", name, issuer.Subject.String(), err)
	}
	if rfc {
		switch lang := info.Policy.Language; {
		case lang.Equal(oidInheritAll), lang.Equal(oidLimitedProxy):
		case lang.Equal(oidIndependent):
			return true, refusef("the proxy certificate %q is an independent proxy, which does not carry its issuer's identity", name)
		default:
			return true, refusef("the proxy certificate %q has a policy language (%s) this server does not understand", name, lang)
		}
		// The path length limits how many proxies may follow this one.
		if info.PathLen != nil && big.NewInt(int64(i)).Cmp(info.PathLen) > 0 {
			return true, refusef("the proxy certificate %q allows %s proxies below it but the chain has %d", name, info.PathLen, i)
		}
	}
	return true, nil
}

// unknownCritical reports whether c has a critical extension, other than
// ProxyCertInfo, that crypto/x509 did not handle: it may restrict the proxy
// in a way this package cannot enforce.
func unknownCritical(c *x509.Certificate) bool {
	for _, id := range c.UnhandledCriticalExtensions {
		if !id.Equal(oidProxyCertInfo) {
			return true
		}
	}
	return false
}

// proxyInfo returns the parsed ProxyCertInfo extension of c, and whether c
// has one.
func proxyInfo(c *x509.Certificate) (proxyCertInfo, bool, error) {
	var info proxyCertInfo
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidProxyCertInfo) {
			continue
		}
		rest, err := asn1.Unmarshal(e.Value, &info)
		if err != nil || len(rest) > 0 {
			return info, true, refusef("the proxy certificate %q has a malformed ProxyCertInfo extension", c.Subject.String())
		}
		return info, true, nil
	}
	return info, false, nil
}

// extendsByCN reports whether the DER name sub is the DER name base with
// one more RDN holding a single CN. RDNs are compared as encoded, which is
// how a proxy library copies its issuer's name.
func extendsByCN(sub, base []byte) bool {
	var s, b []asn1.RawValue
	if rest, err := asn1.Unmarshal(sub, &s); err != nil || len(rest) > 0 {
		return false
	}
	if rest, err := asn1.Unmarshal(base, &b); err != nil || len(rest) > 0 {
		return false
	}
	if len(s) != len(b)+1 {
		return false
	}
	for i := range b {
		if !bytes.Equal(s[i].FullBytes, b[i].FullBytes) {
			return false
		}
	}
	var last []pkix.AttributeTypeAndValue
	if rest, err := asn1.UnmarshalWithParams(s[len(s)-1].FullBytes, &last, "set"); err != nil || len(rest) > 0 {
		return false
	}
	return len(last) == 1 && last[0].Type.Equal(oidCommonName)
}

func refuse(reason string) error {
	return errs.Errorf(errs.Unauthorized, "%w: %s", ErrNotTrusted, reason)
}

func refusef(format string, args ...any) error {
	return refuse(fmt.Sprintf(format, args...))
}
