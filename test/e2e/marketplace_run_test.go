package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/client/sdk"
)

// mrEndorserEmail is the e-mail of the endorser of the test's entries.
const mrEndorserEmail = "images@example.org"

// mrSigner is an endorser's key and certificate, made in the test.
type mrSigner struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// mrNewSigner makes a 2048-bit RSA key and a self-signed certificate for
// email (subjectAltName), as an endorser's grid certificate.
func mrNewSigner(t *testing.T, email string) mrSigner {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "Run Test Images", Organization: []string{"StratusLab Test"}, Country: []string{"EU"}},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		EmailAddresses: []string{email}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return mrSigner{key: key, cert: cert}
}

// mrImages serves image files over HTTP.
type mrImages struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func mrServe(t *testing.T) *mrImages {
	t.Helper()
	s := &mrImages{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(s.Close)
	return s
}

// add serves content at path and returns its URL.
func (s *mrImages) add(path string, content []byte) string {
	s.mu.Lock()
	s.files[path] = content
	s.mu.Unlock()
	return s.URL + path
}

// mrDisk is a raw disk of 2 MiB whose first 64 KiB are random.
func mrDisk(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 2<<20)
	if _, err := rand.Read(b[:64<<10]); err != nil {
		t.Fatal(err)
	}
	return b
}

// mrEntry builds the entry of content served at location (as stratus
// build-metadata does), endorses it now and signs it (sign-metadata).
func mrEntry(t *testing.T, s mrSigner, content []byte, tag, location string, created time.Time, validity time.Duration) (*metadata.Entry, string) {
	t.Helper()
	e, err := metadata.Build(metadata.BuildOptions{OS: "debian", OSVersion: "12", OSArch: "x86_64", Tag: tag, Title: "Run test " + tag,
		Creator: "Run Tester", Email: mrEndorserEmail, Version: "1.0", Format: "raw", Locations: []string{location},
		Now: created, Validity: validity}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.Endorse(e, s.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := xmlsig.Sign(doc, s.key, []*x509.Certificate{s.cert}, xmlsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e, string(signed)
}

// mrMachine is what the test reads of a machine.
type mrMachine struct {
	DetailedState   string `json:"detailedState"`
	StateMessage    string `json:"stateMessage"`
	SavedVolume     string `json:"savedVolume"`
	SavedIdentifier string `json:"savedIdentifier"`
	Image           struct {
		Marketplace, Identifier, Status, FromVolume string
	} `json:"image"`
	Disks []struct {
		Role, Volume string
	} `json:"disks"`
}

// mrRun creates a machine of body as c and waits until it is in state
// want (or ends otherwise: a failure of the test).
func mrRun(ctx context.Context, t *testing.T, c *sdk.Client, body map[string]any, want string) (string, mrMachine) {
	t.Helper()
	res, err := c.Create(ctx, "Machine", body)
	if err != nil {
		t.Fatalf("run %v: %v", body, err)
	}
	var m mrMachine
	eventually(ctx, t, "machine "+res.ID+" to be "+want, func() bool {
		if err := c.Get(ctx, res.ID, &m); err != nil {
			t.Fatalf("read %s: %v", res.ID, err)
		}
		if m.DetailedState != want && (m.DetailedState == "Failed" || m.DetailedState == "Done") {
			t.Fatalf("machine %s from %v is %s (%s), want %s", res.ID, body, m.DetailedState, m.StateMessage, want)
		}
		return m.DetailedState == want
	})
	return res.ID, m
}

// mrRefused checks that running body as c is refused with status and a
// message holding every part.
func mrRefused(ctx context.Context, t *testing.T, c *sdk.Client, body map[string]any, status int, parts ...string) {
	t.Helper()
	_, err := c.Create(ctx, "Machine", body)
	var e *sdk.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Errorf("run %v: %v, want a %d", body, err, status)
		return
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("run %v: %q does not say %q", body, e.Message, p)
		}
	}
}

// TestRunFromMarketplace runs machines from Marketplace entries against
// the all-in-one (libvirt's test driver, the real marketplace, pdisk and
// image cache): an entry built and signed in the test for an image served
// over HTTP runs by identifier, by tag and by endorser's tag (also as a
// read-only disk); a machine started with save and shut down becomes a
// draft entry its owner alone sees and runs; an entry signed for other
// bytes fails its machine naming the SHA-1, leaving nothing held; a
// deprecated entry is refused with its reason; an expired one too, until
// the site allows expired images.
func TestRunFromMarketplace(t *testing.T) {
	c := newCloud(t)
	c.start()
	defer func() {
		if err := c.stop(); err != nil {
			t.Errorf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	for _, u := range []string{"alice", "bob"} {
		create(ctx, t, admin, "User", map[string]any{"username": u, "password": u + "-secret-pw", "enabled": true,
			"first-name": u, "last-name": "Tester", "email": u + "@example.org"})
	}
	alice := sdk.New(base, sdk.WithBasicAuth("alice", "alice-secret-pw"))
	bob := sdk.New(base, sdk.WithBasicAuth("bob", "bob-secret-pw"))
	signer := mrNewSigner(t, mrEndorserEmail)
	images := mrServe(t)
	upload := func(xml string) string {
		t.Helper()
		return create(ctx, t, alice, "MachineImage", map[string]any{"metadata": xml})
	}

	// An image served over HTTP, its entry signed and uploaded.
	disk := mrDisk(t)
	entry, xml := mrEntry(t, signer, disk, "mr-debian", images.add("/debian.img", disk), time.Now().Add(-time.Hour), 0)
	entryID := upload(xml)

	// By identifier, by tag, by the endorser's tag with a read-only copy.
	_, m := mrRun(ctx, t, alice, map[string]any{"image": entry.Identifier}, "Running")
	if m.Image.Identifier != entry.Identifier || m.Image.Marketplace != entry.Identifier || m.Image.Status != "valid" {
		t.Errorf("the machine's image: %+v", m.Image)
	}
	_, m = mrRun(ctx, t, alice, map[string]any{"image": "mr-debian"}, "Running")
	if m.Image.Identifier != entry.Identifier || m.Image.Marketplace != "mr-debian" {
		t.Errorf("the machine's image by tag: %+v", m.Image)
	}
	_, m = mrRun(ctx, t, alice, map[string]any{"image": mrEndorserEmail + "/mr-debian", "readonlyDisks": []string{entry.Identifier}}, "Running")
	if m.Image.Identifier != entry.Identifier || len(m.Disks) < 3 || m.Disks[len(m.Disks)-1].Role != "readonly" || m.Disks[len(m.Disks)-1].Volume == "" {
		t.Errorf("the machine by endorser's tag with a read-only disk: %+v", m)
	}

	// Saved at shutdown: a draft entry of the captured volume, alice's.
	saveID, _ := mrRun(ctx, t, alice, map[string]any{"image": entry.Identifier, "save": map[string]any{"title": "mr web server",
		"comment": "saved by the run test", "author": "Alice", "authorEmail": "alice@example.org", "imageVersion": "2.0"}}, "Running")
	if _, err := alice.Action(ctx, saveID, "shutdown", nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	eventually(ctx, t, "the saved machine to be Done", func() bool {
		return alice.Get(ctx, saveID, &m) == nil && m.DetailedState == "Done"
	})
	if m.SavedVolume == "" || len(m.SavedIdentifier) != 27 || m.StateMessage != "shut down" {
		t.Fatalf("the saved machine: %+v", m)
	}
	draftFilter := sdk.Query{Filter: "identifier='" + m.SavedIdentifier + "'"}
	n, docs, err := alice.Query(ctx, "MachineImage", draftFilter)
	var draft struct {
		Draft     bool   `json:"draft"`
		Status    string `json:"status"`
		Volume    string `json:"volume"`
		Name      string `json:"name"`
		SHA1      string `json:"sha1"`
		Locations []string
		OS        string `json:"os"`
	}
	if err != nil || n != 1 || json.Unmarshal(docs[0], &draft) != nil || !draft.Draft || draft.Status != "draft" ||
		draft.Volume != m.SavedVolume || draft.Name != "mr web server" || draft.OS != "debian" {
		t.Fatalf("alice's draft: %d %+v %v", n, draft, err)
	}
	if n, _, err := bob.Query(ctx, "MachineImage", draftFilter); err != nil || n != 0 {
		t.Errorf("bob sees %d drafts of alice (%v)", n, err)
	}
	var vol struct {
		Identifier, SHA1 string
		Bytes            int64
	}
	if err := alice.Get(ctx, m.SavedVolume, &vol); err != nil || vol.Identifier != m.SavedIdentifier || vol.SHA1 != draft.SHA1 || vol.Bytes <= 0 {
		t.Errorf("the saved volume: %+v %v; draft SHA-1 %s", vol, err, draft.SHA1)
	}
	savedUUID := strings.TrimPrefix(m.SavedVolume, "Volume/")
	if out := newCLI(t, base, "alice", "alice-secret-pw").run(0, "stratus-describe-volumes", savedUUID); !strings.Contains(out, "identifier: "+m.SavedIdentifier) {
		t.Errorf("describe-volumes of the saved volume:\n%s", out)
	}

	// The draft runs for alice, from its volume; bob is told it does not
	// exist.
	_, m = mrRun(ctx, t, alice, map[string]any{"image": m.SavedIdentifier}, "Running")
	if m.Image.FromVolume != savedUUID || m.Image.Status != "draft" {
		t.Errorf("the machine of the draft: %+v", m.Image)
	}
	mrRefused(ctx, t, bob, map[string]any{"image": m.Image.Identifier}, http.StatusBadRequest, "No Marketplace entry has identifier "+m.Image.Identifier)

	// Signed for other bytes than those served: the machine fails naming
	// both SHA-1s, and holds nothing.
	other := append([]byte(nil), disk...)
	other[0] ^= 0xff
	wrong, xml := mrEntry(t, signer, other, "", images.URL+"/debian.img", time.Now().Add(-time.Hour), 0)
	upload(xml)
	wrongID, m := mrRun(ctx, t, alice, map[string]any{"image": wrong.Identifier}, "Failed")
	if !strings.Contains(m.StateMessage, "expected SHA-1 "+wrong.Checksum(metadata.AlgorithmSHA1)+", got "+entry.Checksum(metadata.AlgorithmSHA1)) {
		t.Errorf("the machine of a wrong SHA-1 says %q", m.StateMessage)
	}
	if n, _, err := admin.Query(ctx, "Volume", sdk.Query{Filter: "machine='" + wrongID + "'"}); err != nil || n != 0 {
		t.Errorf("the failed machine holds %d volumes (%v)", n, err)
	}

	// Deprecated: refused with the reason.
	if _, err := alice.Action(ctx, entryID, "deprecate", map[string]any{"reason": "mr-debian 2 fixes the login"}); err != nil {
		t.Fatalf("deprecate: %v", err)
	}
	mrRefused(ctx, t, alice, map[string]any{"image": entry.Identifier}, http.StatusBadRequest, "is deprecated: mr-debian 2 fixes the login")

	// Expired: an entry valid for a few seconds is uploaded while valid,
	// refused once it has expired, and runs once the site allows
	// expired images.
	short := mrDisk(t)
	expiring, xml := mrEntry(t, signer, short, "", images.add("/short.img", short), time.Now().Add(-2*time.Second), 12*time.Second)
	upload(xml)
	valid, err := metadata.ParseTime(expiring.Valid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(valid.Add(time.Second)))
	mrRefused(ctx, t, alice, map[string]any{"image": expiring.Identifier}, http.StatusBadRequest, "expired on")
	if _, err := admin.Create(ctx, "ServiceConfiguration", map[string]any{"service": "vmctl", "allow-expired-images": true}); err != nil {
		t.Fatalf("allow expired images: %v", err)
	}
	var expiredID string
	eventually(ctx, t, "the expired image to run where the site allows it", func() bool {
		res, err := alice.Create(ctx, "Machine", map[string]any{"image": expiring.Identifier})
		expiredID = res.ID
		return err == nil
	})
	eventually(ctx, t, "the machine of the expired image to be Running", func() bool {
		return alice.Get(ctx, expiredID, &m) == nil && m.DetailedState == "Running"
	})
	if m.Image.Status != "expired" {
		t.Errorf("the machine of an expired image records status %q", m.Image.Status)
	}
}
