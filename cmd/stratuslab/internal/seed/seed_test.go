package seed

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed (scripts/deps.sh installs it)", tool)
	}
}

// TestKey: the first call makes a 3072-bit key and a self-signed
// certificate for the e-mail in a 0600 file that openssl reads; later
// calls, even racing ones, load that same key.
func TestKey(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	dir := filepath.Join(t.TempDir(), "marketplace")
	path := filepath.Join(dir, KeyFile)

	var wg sync.WaitGroup
	keys := make([]*Key, 2)
	errs := make([]error, 2)
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(dir, "images@site.example.org", time.Now()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if keys[0].Created == keys[1].Created {
		t.Errorf("of two racing first starts, exactly one makes the key: created %v and %v", keys[0].Created, keys[1].Created)
	}
	if !keys[0].Chain[0].Equal(keys[1].Chain[0]) {
		t.Errorf("two racing first starts use two certificates")
	}
	k := keys[0]
	if k.Email != "images@site.example.org" {
		t.Errorf("endorser %q", k.Email)
	}
	if pub, ok := k.Signer.Public().(*rsa.PublicKey); !ok || pub.N.BitLen() != KeyBits {
		t.Errorf("key %T, want RSA-%d", k.Signer.Public(), KeyBits)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".seed-key-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	out, err := exec.Command("openssl", "x509", "-in", path, "-noout", "-subject", "-issuer", "-ext", "subjectAltName", "-nameopt", "RFC2253").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"subject=CN=StratusLab site images,O=StratusLab", "issuer=CN=StratusLab site images,O=StratusLab", "email:images@site.example.org"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl x509 shows no %q:\n%s", want, out)
		}
	}
	out, err = exec.Command("openssl", "pkey", "-in", path, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3072 bit") {
		t.Errorf("openssl pkey: %v\n%.200s", err, out)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", path, path).CombinedOutput(); err != nil {
		t.Errorf("the certificate is not self-signed: %v\n%s", err, out)
	}

	// A later start: the same key, the file untouched, and the e-mail
	// asked for then ignored (the certificate says who endorses).
	before, _ := os.ReadFile(path)
	again, err := LoadOrCreateKey(dir, "other@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || !again.Chain[0].Equal(k.Chain[0]) || again.Email != k.Email {
		t.Errorf("a later start: created %v, email %s, same certificate %v", again.Created, again.Email, again.Chain[0].Equal(k.Chain[0]))
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("a later start rewrote the key file")
	}

	// Readable by others: refused, saying what to do.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir, "images@site.example.org", time.Now()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key file readable by others: %v", err)
	}
}

// TestPrepare: an entry for the appliance when its file is there, signed
// so that xmlsig and xmlsec1 verify it, its endorser the certificate's,
// its identifier the SHA-1 sha1sum computes, its location the gateway's
// URL of the file; nothing, not even a key, when it is not.
func TestPrepare(t *testing.T) {
	t.Parallel()
	need(t, "sha1sum")
	need(t, "xmlsec1")
	data := t.TempDir()
	images := filepath.Join(data, "images")
	keys := filepath.Join(data, "marketplace")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		ImagesDir: images, KeyDir: keys, BaseURL: "http://127.0.0.1:8080/", Email: "images@stratuslab.local",
		Images: []Image{Appliance("12")},
	}

	empty, err := Prepare(context.Background(), opts)
	if err != nil || len(empty.Entries) != 0 {
		t.Fatalf("no image: %+v %v", empty, err)
	}
	if _, err := os.Stat(keys); !os.IsNotExist(err) {
		t.Errorf("with no image to sign, a key was made: %v", err)
	}

	img := make([]byte, 1<<20+12345)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(images, ApplianceFile)
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cat, err := Prepare(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !cat.KeyCreated || cat.Endorser != "images@stratuslab.local" || len(cat.Entries) != 1 {
		t.Fatalf("catalogue %+v", cat)
	}
	e := cat.Entries[0]
	out, err := exec.Command("sha1sum", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Fields(string(out))[0]
	if e.SHA1 != sum || e.Bytes != int64(len(img)) {
		t.Errorf("entry sha1 %s bytes %d, sha1sum says %s of %d bytes", e.SHA1, e.Bytes, sum, len(img))
	}
	if want := "http://127.0.0.1:8080/images/appliance.img"; e.Location != want || e.Tag != "debian-test" {
		t.Errorf("location %q tag %q, want %q debian-test", e.Location, e.Tag, want)
	}

	res, err := xmlsig.Verify(e.XML, xmlsig.VerifyOptions{})
	if err != nil {
		t.Fatalf("the signed entry does not verify: %v", err)
	}
	got, err := metadata.Parse(res.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.CheckEndorser(got, res.Certificate); err != nil {
		t.Errorf("endorser and certificate differ: %v", err)
	}
	if err := got.Validate(time.Now()); err != nil {
		t.Errorf("the entry breaks rules: %v", err)
	}
	var raw [20]byte
	if n, err := hex.Decode(raw[:], []byte(sum)); err != nil || n != len(raw) {
		t.Fatalf("sha1sum printed %q", sum)
	}
	if got.Identifier != metadata.Identifier(raw) || got.Identifier != e.Identifier {
		t.Errorf("identifier %s (catalogue %s), want %s from sha1sum", got.Identifier, e.Identifier, metadata.Identifier(raw))
	}
	valid, err := metadata.ParseTime(got.Valid)
	if err != nil || valid.Sub(now) < Validity-time.Minute || valid.Sub(now) > Validity+time.Minute {
		t.Errorf("valid until %s, want %s after signing", got.Valid, Validity)
	}
	if got.OS != "debian" || got.OSVersion != "12" || got.OSArch != "x86_64" || got.Format != "raw" || !slices.Equal(got.Locations, []string{e.Location}) {
		t.Errorf("entry %+v", got)
	}

	// xmlsec1 (libxml2 and OpenSSL) verifies it, trusting the key file's
	// certificate.
	signed := filepath.Join(t.TempDir(), "entry.xml")
	if err := os.WriteFile(signed, e.XML, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", filepath.Join(keys, KeyFile), signed).CombinedOutput(); err != nil {
		t.Errorf("xmlsec1 --verify: %v\n%s", err, out)
	}

	// A later start signs with the same key; a changed image gets another
	// identifier.
	img[0] ^= 1
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Prepare(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyCreated || again.Entries[0].Identifier == e.Identifier {
		t.Errorf("a later start: key created %v, identifier %s (was %s)", again.KeyCreated, again.Entries[0].Identifier, e.Identifier)
	}
	res2, err := xmlsig.Verify(again.Entries[0].XML, xmlsig.VerifyOptions{})
	if err != nil || !res2.Certificate.Equal(res.Certificate) {
		t.Errorf("a later start signs with another certificate: %v", err)
	}

	for _, bad := range []string{"", ".hidden", "a/b", `a\b`} {
		o := opts
		o.Images = []Image{{File: bad}}
		if _, err := Prepare(context.Background(), o); err == nil {
			t.Errorf("image name %q accepted", bad)
		}
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	const here = "http://127.0.0.1:8080/images/appliance.img"
	for _, tc := range []struct {
		name   string
		newest *stored
		upload bool
	}{
		{"none", nil, true},
		{"valid here", &stored{Status: "valid", Locations: []string{here}}, false},
		{"valid here among others", &stored{Status: "valid", Locations: []string{"https://mirror.example.org/a.img", here}}, false},
		{"valid elsewhere", &stored{Status: "valid", Locations: []string{"http://127.0.0.1:9090/images/appliance.img"}}, true},
		{"expired", &stored{Status: "expired", Locations: []string{here}}, true},
		{"deprecated", &stored{Status: "deprecated", Deprecated: "broken", Locations: []string{here}}, false},
	} {
		if got, why := decide(tc.newest, here); got != tc.upload || why == "" {
			t.Errorf("%s: upload %v (%q), want %v", tc.name, got, why, tc.upload)
		}
	}
}
