package x509auth

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/x509auth/x509test"
)

// fixture is a small grid: a user CA, a user, a VOMS server under its own
// CA, and an unrelated CA.
type fixture struct {
	ca, vomsCA, otherCA *x509test.CA
	user                *x509.Certificate
	userKey             *ecdsa.PrivateKey
	voms                *x509.Certificate
	vomsKey             *ecdsa.PrivateKey
	rogue               *x509.Certificate // a VOMS server nobody trusts
	rogueKey            *ecdsa.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		ca:      x509test.NewCA(t, "Test CA"),
		vomsCA:  x509test.NewCA(t, "VOMS CA"),
		otherCA: x509test.NewCA(t, "Other CA"),
	}
	f.user, f.userKey = f.ca.Issue(t, "Alice")
	f.voms, f.vomsKey = f.vomsCA.Issue(t, "voms.lal.in2p3.fr", x509test.DNSNames("voms.lal.in2p3.fr"), x509test.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	f.rogue, f.rogueKey = f.otherCA.Issue(t, "voms.lal.in2p3.fr", x509test.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	return f
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	const vo = "vo.lal.in2p3.fr"
	fqans := []string{"/vo.lal.in2p3.fr/Role=NULL/Capability=NULL", "/vo.lal.in2p3.fr/cloud/Role=admin/Capability=NULL"}
	aliceDN := "CN=Alice,O=StratusLab Test"

	rfc, rfcKey := x509test.NewProxy(t, f.user, f.userKey, true, nil)
	legacy, _ := x509test.NewProxy(t, f.user, f.userKey, false, nil)
	proxyOfProxy, _ := x509test.NewProxy(t, rfc, rfcKey, true, nil)
	legacyOfRFC, _ := x509test.NewProxy(t, rfc, rfcKey, false, nil)
	_, wrongKey := f.ca.Issue(t, "Mallory")
	forged, _ := x509test.NewProxy(t, f.user, wrongKey, true, nil)
	expired, _ := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.Validity(now.Add(-2*time.Hour), now.Add(-time.Hour)))
	notYet, _ := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.Validity(now.Add(time.Hour), now.Add(2*time.Hour)))
	renamed, _ := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.Subject(pkix.Name{Organization: []string{"StratusLab Test"}, CommonName: "Bob"}))
	independent, _ := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.ProxyCertInfo(-1, x509test.OIDIndependent))
	criticalExt, _ := x509test.NewProxy(t, f.user, f.userKey, true, nil, func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: asn1.NullBytes})
	})
	pathLen0, pathLen0Key := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.ProxyCertInfo(0, x509test.OIDInheritAll))
	belowPathLen0, _ := x509test.NewProxy(t, pathLen0, pathLen0Key, true, nil)
	pathLen1, pathLen1Key := x509test.NewProxy(t, f.user, f.userKey, true, nil, x509test.ProxyCertInfo(1, x509test.OIDInheritAll))
	belowPathLen1, _ := x509test.NewProxy(t, pathLen1, pathLen1Key, true, nil)
	byCA, _ := x509test.NewProxy(t, f.ca.Cert, f.ca.Key, true, nil)
	stranger, strangerKey := f.otherCA.Issue(t, "Eve")
	strangerProxy, _ := x509test.NewProxy(t, stranger, strangerKey, true, nil)
	expiredUser, expiredUserKey := f.ca.Issue(t, "Old", x509test.Validity(now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	expiredUserProxy, _ := x509test.NewProxy(t, expiredUser, expiredUserKey, true, nil)
	server, _ := f.ca.Issue(t, "host.example.org", x509test.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	// A certificate named like a legacy proxy of Alice but issued by the CA
	// is an end-entity certificate of its own.
	lookalike, _ := f.ca.Issue(t, "", x509test.Subject(pkix.Name{Organization: []string{"StratusLab Test"}, CommonName: "Test CA"}))

	ac := func(holder *x509.Certificate, signer *x509.Certificate, key *ecdsa.PrivateKey, notAfter time.Time, opts ...x509test.ACOption) []byte {
		return x509test.NewVOMSAC(t, signer, key, holder, vo, fqans, notAfter, opts...)
	}
	later := now.Add(12 * time.Hour)
	vomsProxy, vomsProxyKey := x509test.NewProxy(t, f.user, f.userKey, true, ac(f.user, f.voms, f.vomsKey, later))
	legacyVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, false, ac(f.user, f.voms, f.vomsKey, later))
	belowVOMS, _ := x509test.NewProxy(t, vomsProxy, vomsProxyKey, true, nil)
	rogueVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, ac(f.user, f.rogue, f.rogueKey, later))
	expiredVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, ac(f.user, f.voms, f.vomsKey, now.Add(-time.Minute), x509test.ACNotBefore(now.Add(-time.Hour))))
	futureVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, ac(f.user, f.voms, f.vomsKey, later, x509test.ACNotBefore(now.Add(time.Hour))))
	otherHolder, _ := f.ca.Issue(t, "Bob")
	stolenVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, ac(otherHolder, f.voms, f.vomsKey, later))
	bareVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, ac(f.user, f.voms, f.vomsKey, later, x509test.WithoutSigner()))
	// The rogue server names itself like the trusted one but signs with
	// its own key while embedding the trusted certificate.
	impostorAC := x509test.NewVOMSAC(t, f.voms, f.rogueKey, f.user, vo, fqans, later)
	impostorVOMS, _ := x509test.NewProxy(t, f.user, f.userKey, true, impostorAC)

	roots := f.ca.Pool()
	vomsRoots := f.vomsCA.Pool()
	serverOnly := x509.NewCertPool()
	serverOnly.AddCert(f.voms)

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		opts    Options
		want    Verified
		wantErr bool
	}{
		{name: "user certificate", chain: []*x509.Certificate{f.user}, want: Verified{DN: aliceDN}},
		{name: "user certificate with its CA", chain: []*x509.Certificate{f.user, f.ca.Cert}, want: Verified{DN: aliceDN}},
		{name: "RFC 3820 proxy", chain: []*x509.Certificate{rfc, f.user}, want: Verified{DN: aliceDN, Proxy: true}},
		{name: "legacy proxy", chain: []*x509.Certificate{legacy, f.user}, want: Verified{DN: aliceDN, Proxy: true}},
		{name: "proxy of a proxy", chain: []*x509.Certificate{proxyOfProxy, rfc, f.user}, want: Verified{DN: aliceDN, Proxy: true}},
		{name: "legacy proxy of an RFC proxy", chain: []*x509.Certificate{legacyOfRFC, rfc, f.user, f.ca.Cert}, want: Verified{DN: aliceDN, Proxy: true}},
		{name: "path length 1 allows one proxy below", chain: []*x509.Certificate{belowPathLen1, pathLen1, f.user}, want: Verified{DN: aliceDN, Proxy: true}},
		{name: "look-alike of a legacy proxy issued by the CA", chain: []*x509.Certificate{lookalike, f.ca.Cert}, want: Verified{DN: "CN=Test CA,O=StratusLab Test"}},
		{name: "empty chain", wantErr: true},
		{name: "no roots configured", chain: []*x509.Certificate{f.user}, opts: Options{}, wantErr: true},
		{name: "proxy signed by the wrong key", chain: []*x509.Certificate{forged, f.user}, wantErr: true},
		{name: "expired proxy", chain: []*x509.Certificate{expired, f.user}, wantErr: true},
		{name: "proxy not yet valid", chain: []*x509.Certificate{notYet, f.user}, wantErr: true},
		{name: "end-entity from an unknown CA", chain: []*x509.Certificate{stranger}, wantErr: true},
		{name: "proxy of an end-entity from an unknown CA", chain: []*x509.Certificate{strangerProxy, stranger, f.otherCA.Cert}, wantErr: true},
		{name: "proxy whose subject does not extend its issuer", chain: []*x509.Certificate{renamed, f.user}, wantErr: true},
		{name: "independent proxy", chain: []*x509.Certificate{independent, f.user}, wantErr: true},
		{name: "proxy with an unknown critical extension", chain: []*x509.Certificate{criticalExt, f.user}, wantErr: true},
		{name: "path length 0 exceeded", chain: []*x509.Certificate{belowPathLen0, pathLen0, f.user}, wantErr: true},
		{name: "proxy without its issuer", chain: []*x509.Certificate{rfc}, wantErr: true},
		{name: "proxy out of order", chain: []*x509.Certificate{proxyOfProxy, f.user, rfc}, wantErr: true},
		{name: "proxy signed by a CA", chain: []*x509.Certificate{byCA, f.ca.Cert}, wantErr: true},
		{name: "expired user certificate", chain: []*x509.Certificate{expiredUserProxy, expiredUser}, wantErr: true},
		{name: "server certificate", chain: []*x509.Certificate{server}, wantErr: true},

		{name: "VOMS trusted", chain: []*x509.Certificate{vomsProxy, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true, VO: vo, FQANs: fqans}},
		{name: "VOMS in a legacy proxy", chain: []*x509.Certificate{legacyVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true, VO: vo, FQANs: fqans}},
		{name: "VOMS server trusted directly", chain: []*x509.Certificate{vomsProxy, f.user}, opts: Options{Roots: roots, VOMSRoots: serverOnly},
			want: Verified{DN: aliceDN, Proxy: true, VO: vo, FQANs: fqans}},
		{name: "VOMS in the proxy's issuer", chain: []*x509.Certificate{belowVOMS, vomsProxy, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true, VO: vo, FQANs: fqans}},
		{name: "VOMS ignored without VOMS roots", chain: []*x509.Certificate{vomsProxy, f.user},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS untrusted signer", chain: []*x509.Certificate{rogueVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS signer embedded but key differs", chain: []*x509.Certificate{impostorVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS expired", chain: []*x509.Certificate{expiredVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS not yet valid", chain: []*x509.Certificate{futureVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS issued to someone else", chain: []*x509.Certificate{stolenVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS signer not embedded nor known", chain: []*x509.Certificate{bareVOMS, f.user}, opts: Options{Roots: roots, VOMSRoots: vomsRoots},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "VOMS signer not embedded but known", chain: []*x509.Certificate{bareVOMS, f.user},
			opts: Options{Roots: roots, VOMSRoots: vomsRoots, VOMSCerts: []*x509.Certificate{f.rogue, f.voms}},
			want: Verified{DN: aliceDN, Proxy: true, VO: vo, FQANs: fqans}},
		{name: "VOMS known signer must still chain to VOMS roots", chain: []*x509.Certificate{bareVOMS, f.user},
			opts: Options{Roots: roots, VOMSRoots: f.otherCA.Pool(), VOMSCerts: []*x509.Certificate{f.voms}},
			want: Verified{DN: aliceDN, Proxy: true}},
		{name: "proxy not yet valid at an earlier clock", chain: []*x509.Certificate{vomsProxy, f.user},
			opts:    Options{Roots: roots, VOMSRoots: vomsRoots, Now: now.Add(-30 * time.Minute)},
			wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := tt.opts
			if o.Roots == nil && tt.name != "no roots configured" {
				o.Roots = roots
			}
			got, err := Verify(tt.chain, o)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Verify() = %+v, want an error", got)
				}
				if !errors.Is(err, ErrNotTrusted) || errs.CodeOf(err) != errs.Unauthorized {
					t.Errorf("Verify() error %v (code %s), want ErrNotTrusted with code unauthorized", err, errs.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify(): %v", err)
			}
			if got.DN != tt.want.DN || got.Proxy != tt.want.Proxy || got.VO != tt.want.VO || !slices.Equal(got.FQANs, tt.want.FQANs) {
				t.Errorf("Verify() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestVOMSExtensionFormats reads the layouts of the VOMS extension that
// tools write: voms-proxy-init's nested sequence and a flat sequence.
func TestVOMSExtensionFormats(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	later := time.Now().Add(time.Hour)
	ac := x509test.NewVOMSAC(t, f.voms, f.vomsKey, f.user, "atlas", nil, later)
	untrusted := x509test.NewVOMSAC(t, f.rogue, f.rogueKey, f.user, "cms", nil, later)
	o := Options{VOMSRoots: f.vomsCA.Pool(), Now: time.Now()}
	tests := []struct {
		name   string
		value  []byte
		wantVO string
	}{
		{"nested", x509test.VOMSExtension(t, ac), "atlas"},
		{"flat", flatSeq(ac), "atlas"},
		{"first trusted of several", x509test.VOMSExtension(t, untrusted, ac), "atlas"},
		{"only untrusted", x509test.VOMSExtension(t, untrusted), ""},
		{"garbage", []byte{0x30, 0x03, 0x02, 0x01, 0x00}, ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vo, fqans := vomsFromExtension(tt.value, []*x509.Certificate{f.user}, o, o.Now)
			if vo != tt.wantVO {
				t.Errorf("VO = %q, want %q", vo, tt.wantVO)
			}
			if tt.wantVO != "" && (len(fqans) != 1 || fqans[0] != "/"+tt.wantVO+"/Role=NULL/Capability=NULL") {
				t.Errorf("FQANs = %q", fqans)
			}
		})
	}
}

// flatSeq encodes a SEQUENCE holding der, with a long-form length.
func flatSeq(der []byte) []byte {
	n := len(der)
	return append([]byte{0x30, 0x82, byte(n >> 8), byte(n)}, der...)
}

// FuzzVOMSExtension feeds arbitrary bytes where Verify reads a VOMS
// extension: it must neither panic nor believe them.
func FuzzVOMSExtension(f *testing.F) {
	ca := x509test.NewCA(f, "Test CA")
	vomsCA := x509test.NewCA(f, "VOMS CA")
	user, _ := ca.Issue(f, "Alice")
	voms, vomsKey := vomsCA.Issue(f, "voms.example.org")
	ac := x509test.NewVOMSAC(f, voms, vomsKey, user, "vo.example.org", nil, time.Now().Add(time.Hour))
	f.Add(x509test.VOMSExtension(f, ac))
	f.Add(ac)
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x02, 0x30, 0x00})
	o := Options{VOMSRoots: vomsCA.Pool(), Now: time.Now()}
	holders := []*x509.Certificate{user}
	f.Fuzz(func(t *testing.T, data []byte) {
		vo, fqans := vomsFromExtension(data, holders, o, o.Now)
		if vo != "" && len(fqans) == 0 {
			t.Errorf("VO %q without FQANs", vo)
		}
	})
}

// BenchmarkVerify measures the work the gateway does per TLS connection
// that presents a VOMS proxy.
func BenchmarkVerify(b *testing.B) {
	ca, vomsCA := x509test.NewCA(b, "Test CA"), x509test.NewCA(b, "VOMS CA")
	user, userKey := ca.Issue(b, "Alice")
	voms, vomsKey := vomsCA.Issue(b, "voms.example.org")
	ac := x509test.NewVOMSAC(b, voms, vomsKey, user, "vo.example.org", nil, time.Now().Add(time.Hour))
	plainProxy, _ := x509test.NewProxy(b, user, userKey, true, nil)
	vomsProxy, _ := x509test.NewProxy(b, user, userKey, true, ac)
	o := Options{Roots: ca.Pool(), VOMSRoots: vomsCA.Pool()}
	for _, bc := range []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"user", []*x509.Certificate{user}},
		{"proxy", []*x509.Certificate{plainProxy, user}},
		{"voms-proxy", []*x509.Certificate{vomsProxy, user}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Verify(bc.chain, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
