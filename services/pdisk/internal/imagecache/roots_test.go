package imagecache_test

import (
	"crypto/x509"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/imagecache"
)

// TestRoots: an image on an HTTPS server whose certificate no system
// trusts (a site's private CA, the gateway's self-signed certificate) is
// refused by the default client, leaving nothing behind, and downloaded
// once that certificate is among Config.Roots.
func TestRoots(t *testing.T) {
	t.Parallel()
	srv := newTLSServer(t)
	img := rawImage(t, 1<<20, 64<<10)
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	tests := []struct {
		name  string
		id    string
		roots *x509.CertPool
		ok    bool
	}{
		{name: "system roots only", id: "tls-system", roots: nil, ok: false},
		{name: "another CA", id: "tls-other", roots: x509.NewCertPool(), ok: false},
		{name: "the server's certificate", id: "tls-trusted", roots: trusted, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.replica("a", func(c *imagecache.Config) { c.Roots = tt.roots })
			// A file of its own: the subtests run at once on one server.
			path := "/" + tt.id + ".img"
			loc := srv.file(path, img)
			v, err := r.cache.Get(t.Context(), request(tt.id, img, loc), snap())
			if !tt.ok {
				if err == nil {
					t.Fatal("the image was downloaded from a server whose certificate is not trusted")
				}
				if errs.CodeOf(err) != errs.Unavailable || !strings.Contains(err.Error(), "certificate") {
					t.Errorf("error %v (%s), want an Unavailable one about the certificate", err, errs.CodeOf(err))
				}
				if srv.count(path) != 0 {
					t.Errorf("the server was asked for the image: the TLS handshake should have failed first")
				}
				e.assertNothingLeft(r)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameContent(t, v.Path, img.path)
		})
	}
}
