package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/client/sdk"
)

// mpEndorser makes an RSA key and a self-signed certificate whose
// subject holds emailAddress, as the grid certificates of the original
// endorsers did.
func mpEndorser(t *testing.T, email string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	subject := pkix.Name{CommonName: "Web Test Images", Organization: []string{"StratusLab Test"}, Country: []string{"EU"},
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: email}}}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// mpSignedEntry builds, endorses and signs the entry of a made-up image as
// stratus build-metadata and sign-metadata do.
func mpSignedEntry(t *testing.T, key *rsa.PrivateKey, cert *x509.Certificate, tag, title string) (*metadata.Entry, []byte) {
	t.Helper()
	content := make([]byte, 4096)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	e, err := metadata.Build(metadata.BuildOptions{OS: "debian", OSVersion: "12", OSArch: "x86_64", Tag: tag, Title: title,
		Creator: "Web Tester", Email: "tester@example.org", Version: "1.0", Format: "raw",
		Locations: []string{"https://appliances.example.org/images/" + tag + ".img"}, Now: time.Now().Add(-time.Hour)},
		bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.Endorse(e, cert, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := xmlsig.Sign(doc, key, []*x509.Certificate{cert}, xmlsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e, signed
}

// mpRows counts the elements matching sel on the page.
func mpRows(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	var nodes []*chromedp.Node
	run(t, ctx, "look for "+sel, into(chromedp.Nodes(chromedp.CSS(sel), chromedp.AtLeast(0)), &nodes))
	return len(nodes)
}

// mpText reads the trimmed text of the element matching sel.
func mpText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	run(t, ctx, "read "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), into(chromedp.Text(chromedp.CSS(sel)), &s))
	return strings.TrimSpace(s)
}

// TestMarketplaceWeb follows an endorser through the Marketplace's web
// pages in a real browser against the all-in-one: a tampered upload is
// refused naming the rule, a signed one is stored; the catalogue finds it
// by endorser and by tag; its page links to its XML, which is the signed
// document byte for byte; deprecated with a reason, it is listed under
// deprecated and no more under valid.
func TestMarketplaceWeb(t *testing.T) {
	b := browser(t)
	c := newCloud(t)
	c.start()
	defer func() {
		if err := c.stop(); err != nil {
			t.Errorf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
		}
	}()
	u, err := url.Parse(c.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	base := u.Scheme + "://" + u.Host
	password := adminPassword(t, c)
	waitReady(t, c, "cimi", "authn", "marketplace")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := sdk.New(base, sdk.WithBasicAuth("admin", password))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "User", map[string]any{"username": "alice", "password": "alice-secret-pw", "enabled": true,
		"first-name": "Alice", "last-name": "Tester", "email": "alice@example.org"})

	const email = "images@example.org"
	key, cert := mpEndorser(t, email)
	entry, signed := mpSignedEntry(t, key, cert, "web-debian", "Debian for the web test")
	dir := t.TempDir()
	signedPath, tamperedPath := filepath.Join(dir, "debian.xml"), filepath.Join(dir, "tampered.xml")
	tampered := bytes.Replace(signed, []byte("Debian for the web test"), []byte("Debian for the web tests"), 1)
	if bytes.Equal(tampered, signed) {
		t.Fatal("the title is not in the signed entry")
	}
	for path, data := range map[string][]byte{signedPath: signed, tamperedPath: tampered} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	tb := tab(t, b)
	webLogin(t, tb, base, "alice", "alice-secret-pw")

	// A tampered entry: the form comes back with the marketplace's
	// refusal, which names the rule.
	run(t, tb, "open the upload form",
		chromedp.Navigate(base+"/webui/MachineImage"),
		chromedp.WaitVisible(chromedp.CSS("#add")),
		chromedp.Click(chromedp.CSS("#add")),
		chromedp.WaitVisible(chromedp.CSS("#create-form")),
		chromedp.SetUploadFiles(chromedp.CSS("#create-file"), []string{tamperedPath}),
	)
	leave(t, tb, "upload the tampered entry", chromedp.Click(chromedp.CSS("#create-submit")))
	if msg := pageError(t, tb); !strings.Contains(msg, "signature-digest") {
		t.Fatalf("the tampered upload shows %q, want the refusal naming signature-digest\n%s", msg, mainText(t, tb))
	}

	// The signed entry, from the form the refusal left on the page.
	run(t, tb, "choose the signed entry", chromedp.SetUploadFiles(chromedp.CSS("#create-file"), []string{signedPath}))
	leave(t, tb, "upload the signed entry", chromedp.Click(chromedp.CSS("#create-submit")))
	var page string
	run(t, tb, "where the upload led", into(chromedp.Location(), &page))
	uuid, ok := strings.CutPrefix(page, base+"/webui/MachineImage/")
	if !ok || len(uuid) != 36 {
		t.Fatalf("the upload led to %s, not to the entry's page\n%s", page, mainText(t, tb))
	}
	if got := mpText(t, tb, "#attr-identifier"); got != entry.Identifier {
		t.Errorf("the entry's page shows the identifier %q, want %q", got, entry.Identifier)
	}
	if got := mpText(t, tb, "#attr-status"); got != "valid" {
		t.Errorf("the new entry's status is %q", got)
	}
	row := "#row-" + uuid

	for _, search := range []struct{ box, value string }{{"#quick-email", email}, {"#quick-tag", "web-debian"}} {
		run(t, tb, "open the catalogue",
			chromedp.Navigate(base+"/webui/MachineImage"),
			chromedp.WaitVisible(chromedp.CSS(search.box)),
			chromedp.SendKeys(chromedp.CSS(search.box), search.value),
		)
		leave(t, tb, "search by "+search.box, chromedp.Click(chromedp.CSS("#search-submit")))
		if mpRows(t, tb, row) != 1 {
			t.Fatalf("searching %s for %q does not list the entry:\n%s", search.box, search.value, mainText(t, tb))
		}
		if text := mpText(t, tb, row); !strings.Contains(text, entry.Identifier) || !strings.Contains(text, "Debian for the web test") ||
			!strings.Contains(text, email) || !strings.Contains(text, "web-debian") || !strings.Contains(text, "valid") {
			t.Errorf("the entry's row shows %q", text)
		}
	}
	run(t, tb, "search for another tag",
		chromedp.Navigate(base+"/webui/MachineImage"),
		chromedp.WaitVisible(chromedp.CSS("#quick-tag")),
		chromedp.SendKeys(chromedp.CSS("#quick-tag"), "no-such-tag"),
	)
	leave(t, tb, "search another tag", chromedp.Click(chromedp.CSS("#search-submit")))
	if mpRows(t, tb, row) != 0 {
		t.Errorf("another tag lists the entry")
	}

	// Its page, from the catalogue, and its XML.
	run(t, tb, "open the catalogue", chromedp.Navigate(base+"/webui/MachineImage?email="+url.QueryEscape(email)),
		chromedp.WaitVisible(chromedp.CSS(row)))
	leave(t, tb, "open the entry", chromedp.Click(chromedp.CSS(row+" a")))
	var xmlHref chromedp.AttributeResult
	run(t, tb, "read the XML link", into(chromedp.AttributeValue(chromedp.CSS("#entry-xml"), "href"), &xmlHref))
	if !strings.HasPrefix(xmlHref.Value, "/marketplace/metadata/"+entry.Identifier+"/"+email+"/") {
		t.Errorf("the XML link is %q", xmlHref.Value)
	}
	var contentType, fetched, at string
	run(t, tb, "follow the XML link", chromedp.Click(chromedp.CSS("#entry-xml")))
	// An XML document has no element to mark as leave does: wait for the
	// browser to be at the link's address, then for the document.
	for deadline := time.Now().Add(20 * time.Second); at != base+xmlHref.Value; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the XML link led to %s, not %s", at, base+xmlHref.Value)
		}
		run(t, tb, "where the XML link led", into(chromedp.Location(), &at))
	}
	run(t, tb, "read the XML document",
		chromedp.Poll[chromedp.Void](`document.contentType === "application/xml" && document.readyState === "complete"`),
		// Chromium shows XML as a tree of its own making: only the type
		// of what it received tells.
		into(chromedp.Evaluate[string](`document.contentType`), &contentType),
		// The browser reads the link's bytes as they came.
		into(chromedp.Evaluate[string](`fetch(location.href).then(r => r.text())`, chromedp.EvalAwaitPromise), &fetched),
	)
	if contentType != "application/xml" || fetched != string(signed) {
		t.Errorf("the XML link shows a document of type %q; the same as the signed entry: %v", contentType, fetched == string(signed))
	}
	// The same address, to a program: the signed bytes exactly.
	resp, err := http.Get(base + xmlHref.Value)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, signed) {
		t.Errorf("GET %s: %d, %d bytes (%v); the signed entry has %d and they differ", xmlHref.Value, resp.StatusCode, len(got), err, len(signed))
	}

	// Deprecate it from its page.
	const reason = "replaced by a version with security fixes"
	run(t, tb, "open the entry's page", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#deprecate-reason")),
		chromedp.SendKeys(chromedp.CSS("#deprecate-reason"), reason))
	leave(t, tb, "deprecate", chromedp.Click(chromedp.CSS("#deprecate-submit")))
	if msg := pageError(t, tb); msg != "" {
		t.Fatalf("deprecating shows %q", msg)
	}
	if got := mpText(t, tb, "#attr-status"); got != "deprecated" {
		t.Errorf("after deprecation the status is %q\n%s", got, mainText(t, tb))
	}
	if got := mpText(t, tb, "#attr-deprecated"); !strings.Contains(got, reason) || !strings.Contains(got, "by alice") {
		t.Errorf("the deprecation shows %q", got)
	}
	if mpRows(t, tb, "#deprecate-form") != 0 {
		t.Errorf("a deprecated entry still offers to deprecate it")
	}

	for _, status := range []struct {
		value  string
		listed bool
	}{{"valid", false}, {"deprecated", true}} {
		run(t, tb, "open the catalogue",
			chromedp.Navigate(base+"/webui/MachineImage"),
			chromedp.WaitVisible(chromedp.CSS("#quick-email")),
			chromedp.SendKeys(chromedp.CSS("#quick-email"), email),
			chromedp.SetValue(chromedp.CSS("#quick-status"), status.value),
		)
		leave(t, tb, "search "+status.value+" entries", chromedp.Click(chromedp.CSS("#search-submit")))
		if n := mpRows(t, tb, row); (n == 1) != status.listed {
			t.Errorf("status %s lists the entry %d times, want listed %v:\n%s", status.value, n, status.listed, mainText(t, tb))
		}
	}
	// The REST search agrees.
	resp, err = http.Get(base + "/marketplace/metadata?status=deprecated&email=" + url.QueryEscape(email))
	if err != nil {
		t.Fatal(err)
	}
	var found struct {
		Count   int              `json:"count"`
		Entries []map[string]any `json:"machineImages"`
	}
	err = json.NewDecoder(resp.Body).Decode(&found)
	resp.Body.Close()
	if err != nil || found.Count != 1 || found.Entries[0]["deprecated"] != reason {
		t.Errorf("REST search of deprecated entries: %+v (%v)", found, err)
	}
	webLogout(t, tb)
}
