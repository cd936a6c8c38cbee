package auth

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"stratuslab.dev/platform/x509auth"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
)

// clientChain returns the certificate chain the TLS client presented, nil
// when there is none or certificate logins are disabled.
func (a *Auth) clientChain(r *http.Request) []*x509.Certificate {
	if a.opts.ClientRoots == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates
}

// certificateRequest verifies a client chain (RFC 3820 proxies and VOMS
// attributes included) and returns the login it allows: VOMS when a
// trusted attribute certificate names a VO, certificate otherwise.
func (a *Auth) certificateRequest(chain []*x509.Certificate) (*authnv1.LoginRequest, error) {
	v, err := x509auth.Verify(chain, x509auth.Options{
		Roots:     a.opts.ClientRoots,
		VOMSRoots: a.opts.VOMSRoots,
		VOMSCerts: a.opts.VOMSCerts,
		Now:       a.now(),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: client certificate: %w", err) // coded unauthorized, message for people
	}
	if v.VO != "" {
		return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_VOMS, Dn: v.DN, Vo: v.VO, Fqans: v.FQANs}, nil
	}
	return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_CERTIFICATE, Dn: v.DN}, nil
}

// chainExpiry returns when the first certificate of chain expires: a
// login cached for the chain must not outlive it.
func chainExpiry(chain []*x509.Certificate) time.Time {
	var end time.Time
	for _, c := range chain {
		if end.IsZero() || c.NotAfter.Before(end) {
			end = c.NotAfter
		}
	}
	return end
}
