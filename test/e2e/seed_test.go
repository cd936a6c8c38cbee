package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/client/sdk"
)

// seeded is what the test reads of a Marketplace entry.
type seeded struct {
	ID         string   `json:"id"`
	Identifier string   `json:"identifier"`
	Tag        string   `json:"tag"`
	Status     string   `json:"status"`
	SHA1       string   `json:"sha1"`
	Bytes      int64    `json:"bytes"`
	Locations  []string `json:"locations"`
	XML        string   `json:"xml"`
	Deprecated string   `json:"deprecated"`
	Endorser   struct {
		Email string `json:"email"`
	} `json:"endorser"`
}

// seedAppliance puts the test appliance in c's images directory, as
// scripts/seed-images.sh does for make run, and returns its bytes.
func seedAppliance(t *testing.T, c *cloud) []byte {
	t.Helper()
	image, err := os.ReadFile(appliance(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.dataDir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dataDir, "images", "appliance.img"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	return image
}

// TestSeedCatalogue replays the user tutorial against the all-in-one as
// `make run` starts it: the test appliance in the data directory is in
// the Marketplace from the start, signed by a key the first start made
// (mode 0600), served by the gateway byte for byte, and a user finds it
// by the endorser and runs it by identifier and by tag. A restart adds no
// entry and makes no new key; a rebuilt image replaces the old entry.
func TestSeedCatalogue(t *testing.T) {
	c := newCloud(t)
	image := seedAppliance(t, c)
	sum := sha1.Sum(image)
	id := metadata.Identifier(sum)

	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")

	// The endorser's key: made at the first start, for the owner only.
	keyFile := filepath.Join(c.dataDir, "marketplace", "seed-key.pem")
	cert := endorserCert(t, keyFile)
	emails := metadata.CertificateEmails(cert)
	if len(emails) != 1 || !strings.HasPrefix(emails[0], "images@") || cert.Subject.CommonName != "StratusLab site images" {
		t.Fatalf("endorser certificate %s for %v", cert.Subject, emails)
	}
	email := emails[0]
	keyBefore, _ := os.ReadFile(keyFile)

	// Anyone finds it by the endorser's e-mail.
	anon := sdk.New(base)
	var e seeded
	eventually(ctx, t, "the seeded entry in the catalogue", func() bool {
		n, found, err := sdk.QueryAs[seeded](ctx, anon, "MachineImage", sdk.Query{Filter: "endorser/email='" + email + "'"})
		if err != nil || n == 0 {
			return false
		}
		if n != 1 {
			t.Fatalf("%d entries of %s, want 1", n, email)
		}
		e = found[0]
		return true
	})
	if e.Identifier != id || e.Tag != "debian-test" || e.Status != "valid" || e.SHA1 != hex.EncodeToString(sum[:]) || e.Bytes != int64(len(image)) {
		t.Errorf("entry %s tag %s status %s sha1 %s bytes %d; want %s debian-test valid %x %d",
			e.Identifier, e.Tag, e.Status, e.SHA1, e.Bytes, id, sum, len(image))
	}
	if want := base + "/images/appliance.img"; len(e.Locations) != 1 || e.Locations[0] != want {
		t.Errorf("locations %v, want %s", e.Locations, want)
	}
	// (Logged before the banner, after it in the test's copy of stderr.)
	if !strings.Contains(c.stderr.String(), "seed catalogue: image endorser key made") {
		t.Errorf("the first start does not say it made the endorser key")
	}
	eventually(ctx, t, "the log to say the image was published", func() bool {
		return strings.Contains(c.stderr.String(), "seed catalogue: image published")
	})

	// Signed by the key file's certificate, which the endorser block names.
	res, err := xmlsig.Verify([]byte(e.XML), xmlsig.VerifyOptions{})
	if err != nil {
		t.Fatalf("the entry's signature: %v", err)
	}
	if !res.Certificate.Equal(cert) {
		t.Errorf("signed by %s, not by the certificate in %s", res.Certificate.Subject, keyFile)
	}
	entry, err := metadata.Parse(res.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.CheckEndorser(entry, cert); err != nil || entry.Identifier != id {
		t.Errorf("signed entry %s: %v", entry.Identifier, err)
	}

	// The location serves the exact bytes, to anyone.
	resp, err := http.Get(e.Locations[0])
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != e.Bytes || hex.EncodeToString(h.Sum(nil)) != e.SHA1 {
		t.Errorf("GET %s: %d, %d bytes of SHA-1 %x (%v); the entry says %d bytes of %s", e.Locations[0], resp.StatusCode, n, h.Sum(nil), err, e.Bytes, e.SHA1)
	}

	// A user finds it too, through the Marketplace's REST search, and runs
	// it by identifier and by tag (pdisk downloads it from the gateway).
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "User", map[string]any{
		"username": "alice", "password": "alice-secret-pw", "enabled": true,
		"first-name": "alice", "last-name": "Tester", "email": "alice@example.org",
	})
	if status, body := get(ctx, t, base+"/marketplace/metadata?email="+email); status != 200 || !strings.Contains(body, id) {
		t.Errorf("GET /marketplace/metadata?email=%s: %d %.300s", email, status, body)
	}
	asAlice := sdk.New(base, sdk.WithBasicAuth("alice", "alice-secret-pw"))
	if n, found, err := sdk.QueryAs[seeded](ctx, asAlice, "MachineImage", sdk.Query{Filter: "endorser/email='" + email + "' and tag='debian-test'"}); err != nil || n != 1 || found[0].Identifier != id {
		t.Errorf("alice searches the endorser's debian-test: %d %v %v", n, found, err)
	}
	alice := newCLI(t, base, "alice", "alice-secret-pw")
	for _, ref := range []string{id, "debian-test"} {
		out := alice.run(0, "stratus-run-instance", ref)
		m := vmLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("stratus-run-instance %s printed:\n%s", ref, out)
		}
		eventually(ctx, t, "the machine of "+ref+" to be Running", func() bool {
			out := alice.run(0, "stratus-describe-instance", m[1])
			if strings.Contains(out, "Failed") {
				t.Fatalf("the machine of %s failed:\n%s\n%s", ref, alice.run(0, "stratus-describe-instance", "--verbose", m[1]), logTail(c.stderr))
			}
			return strings.Contains(out, "Running")
		})
		alice.run(0, "stratus-kill-instance", m[1])
	}
	// Both machines name the entry, and pdisk's cache holds the image it
	// downloaded from the gateway, checked against the entry.
	type machineImage struct {
		Image struct {
			Marketplace string   `json:"marketplace"`
			Identifier  string   `json:"identifier"`
			Entry       string   `json:"entry"`
			Locations   []string `json:"locations"`
		} `json:"image"`
	}
	_, ms, err := sdk.QueryAs[machineImage](ctx, asAlice, "Machine", sdk.Query{})
	if err != nil || len(ms) != 2 {
		t.Fatalf("alice's machines: %v %v", ms, err)
	}
	for _, m := range ms {
		if m.Image.Identifier != id || m.Image.Entry != e.ID || len(m.Image.Locations) != 1 || m.Image.Locations[0] != e.Locations[0] {
			t.Errorf("a machine of %q was made from %+v, want entry %s (%s)", m.Image.Marketplace, m.Image, e.ID, id)
		}
	}
	type cached struct {
		Identifier string `json:"identifier"`
		State      string `json:"state"`
		SHA1       string `json:"sha1"`
		Bytes      int64  `json:"bytes"`
	}
	_, vols, err := sdk.QueryAs[cached](ctx, admin, "Volume", sdk.Query{Filter: "identifier='" + id + "'"})
	if err != nil || len(vols) == 0 || vols[0].SHA1 != e.SHA1 || vols[0].Bytes != e.Bytes {
		t.Errorf("pdisk's cache of %s: %+v %v; want %d bytes of SHA-1 %s", id, vols, err, e.Bytes, e.SHA1)
	}

	// A restart: the same key, no second entry, the banner names it.
	if err := c.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
	}
	banner, stderr, stop := restart(t, c)
	if want := "Marketplace     " + id + " (tag debian-test)"; !strings.Contains(banner, want) {
		t.Errorf("the banner does not show %q:\n%s", want, banner)
	}
	eventually(ctx, t, "the restarted cloud to look at the catalogue", func() bool {
		return strings.Contains(stderr.String(), "seed catalogue: image")
	})
	if log := stderr.String(); !strings.Contains(log, "seed catalogue: image already published") || strings.Contains(log, "seed catalogue: image published") {
		t.Errorf("a restart published the image again:\n%s", logTail(stderr))
	}
	n2, _, err := anon.Query(ctx, "MachineImage", sdk.Query{Filter: "identifier='" + id + "'"})
	if err != nil || n2 != 1 {
		t.Errorf("after a restart, %d entries of %s (%v), want 1", n2, id, err)
	}
	if keyAfter, _ := os.ReadFile(keyFile); !bytes.Equal(keyBefore, keyAfter) {
		t.Errorf("a restart changed the endorser key")
	}
	if strings.Contains(stderr.String(), "image endorser key made") {
		t.Errorf("a restart made a new endorser key")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A rebuilt image: a new entry under the same tag, the old one
	// deprecated, since its bytes are gone.
	rebuilt := append(image, make([]byte, 512)...)
	if err := os.WriteFile(filepath.Join(c.dataDir, "images", "appliance.img"), rebuilt, 0o644); err != nil {
		t.Fatal(err)
	}
	newID := metadata.Identifier(sha1.Sum(rebuilt))
	c.start()
	eventually(ctx, t, "the rebuilt image to replace the old one", func() bool {
		return strings.Contains(c.stderr.String(), "seed catalogue: replaced image deprecated")
	})
	var old, current []seeded
	if _, old, err = sdk.QueryAs[seeded](ctx, anon, "MachineImage", sdk.Query{Filter: "identifier='" + id + "'"}); err != nil {
		t.Fatal(err)
	}
	if _, current, err = sdk.QueryAs[seeded](ctx, anon, "MachineImage", sdk.Query{Filter: "tag='debian-test' and status='valid'"}); err != nil {
		t.Fatal(err)
	}
	if len(old) != 1 || old[0].Status != "deprecated" || !strings.Contains(old[0].Deprecated, newID) {
		t.Errorf("the replaced entry: %+v", old)
	}
	if len(current) != 1 || current[0].Identifier != newID {
		t.Errorf("valid entries tagged debian-test: %+v, want only %s", current, newID)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSeedCatalogueOff: with --seed-catalogue=false the all-in-one
// publishes nothing, and makes no key (which it would make before its
// banner), though an image is there.
func TestSeedCatalogueOff(t *testing.T) {
	c := newCloud(t)
	if err := os.MkdirAll(filepath.Join(c.dataDir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dataDir, "images", "appliance.img"), bytes.Repeat([]byte("not really a disk "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "--seed-catalogue=false") })
	if _, err := os.Stat(filepath.Join(c.dataDir, "marketplace", "seed-key.pem")); !os.IsNotExist(err) {
		t.Errorf("with the seed catalogue off, the endorser key: %v", err)
	}
	if strings.Contains(c.stderr.String(), "seed catalogue") {
		t.Errorf("with the seed catalogue off, the log speaks of it:\n%s", logTail(c.stderr))
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

// endorserCert checks the key file's mode and returns its certificate.
func endorserCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no endorser key after the first start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			t.Fatalf("no certificate in %s", path)
		}
		if b.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return cert
		}
	}
}

// restart starts c's cloud again on its data directory and returns its
// banner, its log, which goes on filling, and a function that stops it
// (at the latest when the test ends).
func restart(t *testing.T, c *cloud) (string, *lockedBuffer, func() error) {
	t.Helper()
	cmd := exec.Command(binary, "--data-dir", c.dataDir, "--listen", c.listen,
		"--nats-listen", c.natsAddr, "--admin-listen", "127.0.0.1:0", "--config", os.DevNull)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	banner := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if sc.Text() == "" && strings.Contains(b.String(), "health") {
				break
			}
		}
		banner <- b.String()
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					stopErr = fmt.Errorf("the restarted cloud stopped with %v\n%s", err, logTail(stderr))
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				stopErr = fmt.Errorf("the restarted cloud was still running 60s after SIGTERM")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	select {
	case b := <-banner:
		if !strings.HasSuffix(b, "\n\n") {
			t.Fatalf("the restarted cloud ended before its banner:\n%s\n%s", b, logTail(stderr))
		}
		return b, stderr, stop
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner within 60s:\n%s", logTail(stderr))
	}
	return "", nil, nil
}

// logTail is the end of a process's log, for failure messages.
func logTail(b *lockedBuffer) string {
	s := b.String()
	if len(s) > 3000 {
		s = "…" + s[len(s)-3000:]
	}
	return s
}
