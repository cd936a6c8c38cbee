package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/x509auth/x509test"
)

// TestCertificateLogin runs the gateway on HTTPS with its self-signed
// certificate and a client CA, as a site would: the administrator enables
// certificate logins in ServiceConfiguration/authn and records a user's DN;
// the user then authenticates with an RFC 3820 proxy of their certificate,
// and a certificate from another CA is refused.
func TestCertificateLogin(t *testing.T) {
	dir := t.TempDir()
	ca := x509test.NewCA(t, "StratusLab Test CA")
	caFile := filepath.Join(dir, "ca.pem")
	x509test.WriteCertPEM(t, caFile, ca.Cert)
	userCert, userKey := ca.Issue(t, "Carol Grid")
	proxyCert, proxyKey := x509test.NewProxy(t, userCert, userKey, true, nil)
	proxyFile := filepath.Join(dir, "x509up")
	if err := os.WriteFile(proxyFile, x509test.ProxyFile(t, proxyKey, proxyCert, userCert), 0o600); err != nil {
		t.Fatal(err)
	}
	other := x509test.NewCA(t, "Some Other CA")
	strangerCert, strangerKey := other.Issue(t, "Carol Grid")
	strangerFile := filepath.Join(dir, "stranger.pem")
	x509test.WriteCertPEM(t, strangerFile, strangerCert)
	x509test.WriteKeyPEM(t, filepath.Join(dir, "stranger.key"), strangerKey)

	c := newCloud(t)
	c.start(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "--tls", "on", "--client-cas", caFile) })
	if !strings.HasPrefix(c.endpoint, "https://") {
		t.Fatalf("--tls on serves %s", c.endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	serverCert := filepath.Join(c.dataDir, "cimi", "tls", "cert.pem")
	trust := sdk.WithCAFile(serverCert)

	// Without trusting the self-signed certificate, the client refuses it.
	if _, err := sdk.New(base).CloudEntryPoint(ctx); err == nil {
		t.Fatal("a client trusted the self-signed certificate without being told to")
	}
	admin := sdk.New(base, trust, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	dn := userCert.Subject.String()
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{
		"service": "authn",
		"localdb": map[string]any{"password-enabled": true, "cert-enabled": true},
	})
	create(ctx, t, admin, "User", map[string]any{
		"username": "carol", "first-name": "Carol", "last-name": "Grid", "enabled": true,
		"altnames": map[string]any{"x500dn": dn},
	})

	carol := sdk.New(base, trust, sdk.WithCertificate(proxyFile, proxyFile))
	eventually(ctx, t, "carol known by her proxy certificate", func() bool {
		a, err := carol.Authn(ctx)
		return err == nil && a.Identity == "carol"
	})
	var me map[string]any
	if err := carol.Get(ctx, "User/carol", &me); err != nil {
		t.Errorf("carol reads her record with her proxy: %v", err)
	}
	stranger := sdk.New(base, trust, sdk.WithCertificate(strangerFile, filepath.Join(dir, "stranger.key")))
	if a, err := stranger.Authn(ctx); err == nil && a.Identity != "" {
		t.Errorf("a certificate of an unknown CA with carol's name logs in as %q", a.Identity)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}
