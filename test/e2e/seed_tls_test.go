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
)

// TestSeedCatalogueTLS: with the gateway on HTTPS and its self-signed
// certificate, pdisk trusts that certificate for the seed catalogue's
// location (on the gateway), so that a user's machine of the test
// appliance, run by its tag, starts.
func TestSeedCatalogueTLS(t *testing.T) {
	c := newCloud(t)
	seedAppliance(t, c)
	c.start(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "--tls", "on") })
	if !strings.HasPrefix(c.endpoint, "https://") {
		t.Fatalf("--tls on serves %s", c.endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	serverCert := filepath.Join(c.dataDir, "cimi", "tls", "cert.pem")

	admin := sdk.New(base, sdk.WithCAFile(serverCert), sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	eventually(ctx, t, "the log to say the image was published", func() bool {
		return strings.Contains(c.stderr.String(), "seed catalogue: image published")
	})
	create(ctx, t, admin, "User", map[string]any{
		"username": "alice", "password": "alice-secret-pw", "enabled": true,
		"first-name": "alice", "last-name": "Tester", "email": "alice@example.org",
	})

	// Alice trusts the gateway's certificate as a user of a test cloud
	// would: ca_file in her configuration.
	alice := newCLI(t, base, "alice", "alice-secret-pw")
	conf := filepath.Join(alice.home, ".stratuslab", "stratuslab-user.cfg")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("ca_file = " + serverCert + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out := alice.run(0, "stratus-run-instance", "debian-test")
	m := vmLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("stratus-run-instance debian-test printed:\n%s", out)
	}
	eventually(ctx, t, "the machine of debian-test to be Running", func() bool {
		// pdisk retries a download it could not make (the machine stays
		// Pending meanwhile): its log tells at once.
		if strings.Contains(c.stderr.String(), "imagecache: download failed") {
			t.Fatalf("pdisk could not download the seeded image:\n%s", logTail(c.stderr))
		}
		out := alice.run(0, "stratus-describe-instance", m[1])
		if strings.Contains(out, "Failed") {
			t.Fatalf("the machine of debian-test failed:\n%s\n%s", alice.run(0, "stratus-describe-instance", "--verbose", m[1]), logTail(c.stderr))
		}
		return strings.Contains(out, "Running")
	})
	alice.run(0, "stratus-kill-instance", m[1])
	if err := c.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\nstderr:\n%s", err, logTail(c.stderr))
	}
}
