package xmlsig

import (
	"crypto/x509"
	"testing"
)

// benchEntry is the test entry signed by the test endorser (RSA 2048),
// about the size of a real signed marketplace entry.
func benchEntry(b *testing.B, opts Options) []byte {
	b.Helper()
	p := pki()
	signed, err := Sign(readEntry(b), p.endorser.key, []*x509.Certificate{p.endorser.cert}, opts)
	if err != nil {
		b.Fatal(err)
	}
	return signed
}

// BenchmarkVerify measures signature validation of one entry: the
// marketplace must validate at least 500 entries/s. The signed test entry
// is about 4.5 KB (2.3 KB of metadata, a 2048-bit certificate).
//
//	cd client && go test -run XXX -bench Verify ./metadata/xmlsig/
//
// On the 2-core AMD EPYC build machine (Go 1.26, shared with other jobs,
// load 10-19): rsa-sha256 120-950 µs/op (1,050-8,000 entries/s), rsa-sha1
// alike, with chain verification 190-610 µs/op; 238 allocations per entry.
// About 100 µs of CPU per entry: a third RSA, a third parsing the
// certificate, a third XML.
func BenchmarkVerify(b *testing.B) {
	p := pki()
	cases := []struct {
		name string
		opts Options
		vopt VerifyOptions
	}{
		{"rsa-sha256", Options{}, VerifyOptions{}},
		{"rsa-sha1", Options{SignatureMethod: RSASHA1, DigestMethod: SHA1}, VerifyOptions{}},
		{"rsa-sha256+trust", Options{}, VerifyOptions{Roots: caPool(p.ca.cert)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			signed := benchEntry(b, c.opts)
			b.SetBytes(int64(len(signed)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := Verify(signed, c.vopt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkCanonicalize measures parsing and canonicalizing the signed
// entry without its signature, the XML part of Verify.
func BenchmarkCanonicalize(b *testing.B) {
	signed := benchEntry(b, Options{})
	b.SetBytes(int64(len(signed)))
	b.ReportAllocs()
	for range b.N {
		d, err := parse(signed)
		if err != nil {
			b.Fatal(err)
		}
		canonicalize(make([]byte, 0, len(signed)), d, d.root, c14nMode{}, d.root.children[len(d.root.children)-1])
	}
}

// BenchmarkSign measures signing one entry with an RSA 2048 key.
func BenchmarkSign(b *testing.B) {
	p := pki()
	entry := readEntry(b)
	chain := []*x509.Certificate{p.endorser.cert}
	b.ReportAllocs()
	for range b.N {
		if _, err := Sign(entry, p.endorser.key, chain, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
