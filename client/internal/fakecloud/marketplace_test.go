package fakecloud

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

func TestPowersOff(t *testing.T) {
	t.Parallel()
	cfg := "#cloud-config\npower_state:\n  mode: poweroff\n"
	multipart := func(cte, body string) string {
		return "Content-Type: multipart/mixed; boundary=\"B\"\r\nMIME-Version: 1.0\r\n\r\n--B\r\nContent-Type: text/x-shellscript\r\n\r\necho power_state:\r\n" +
			"--B\r\nContent-Type: text/cloud-config\r\n" + cte + "\r\n" + body + "\r\n--B--\r\n"
	}
	for _, tc := range []struct {
		name, userData string
		want           bool
	}{
		{"none", "", false},
		{"plain cloud-config", cfg, true},
		{"base64 part", multipart("Content-Transfer-Encoding: base64\r\n", base64.StdEncoding.EncodeToString([]byte(cfg))), true},
		{"8-bit part", multipart("", cfg), true},
		{"only in a script", multipart("", "#cloud-config\nruncmd: [ls]\n"), false},
	} {
		m := map[string]any{"context": map[string]any{"userData": tc.userData}}
		if got := powersOff(m); got != tc.want {
			t.Errorf("%s: powersOff = %v", tc.name, got)
		}
	}
}

// signer is a self-signed certificate for jane@example.org and its key.
type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newSigner(t *testing.T) signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Jane"}, EmailAddresses: []string{"jane@example.org"},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key, cert}
}

// render writes the unsigned entry of a 1000-byte image, endorsed at
// endorsed and changed by edit.
func (s signer) render(t *testing.T, endorsed time.Time, edit func(*metadata.Entry)) []byte {
	t.Helper()
	e, err := metadata.Build(metadata.BuildOptions{Email: "jane@example.org", OS: "debian", OSVersion: "12", OSArch: "x86_64",
		Locations: []string{"https://example.org/i.img"}, Now: endorsed.Add(-time.Hour)}, bytes.NewReader(bytes.Repeat([]byte{'x'}, 1000)))
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.Endorse(e, s.cert, endorsed); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(e)
	}
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// sign is render, signed by s.
func (s signer) sign(t *testing.T, endorsed time.Time, edit func(*metadata.Entry)) []byte {
	t.Helper()
	signed, err := xmlsig.Sign(s.render(t, endorsed, edit), s.key, []*x509.Certificate{s.cert}, xmlsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestUploadRefusals: the fake refuses uploads as the Marketplace does,
// with its status, code and "Entry refused (rule): reason." message. The
// steps run in order on one cloud: the later ones need stored entries.
func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New())
	t.Cleanup(srv.Close)
	jane := newSigner(t)
	now := time.Now().UTC().Truncate(time.Second)
	first := jane.sign(t, now.Add(-time.Hour), nil)
	tampered := bytes.Replace(first, []byte("debian"), []byte("ubuntu"), 1)
	for _, tc := range []struct {
		name        string
		user        string // "": anonymous
		contentType string // "": application/xml
		doc         []byte
		status      int
		code        string // "": none, the entry is stored
		prefix      string // the message starts with it
		detail      string // and holds it
	}{
		{name: "anonymous", doc: first, status: 401, code: "unauthorized", prefix: "Log in to upload Marketplace entries."},
		{name: "not XML", user: "user", contentType: "application/json", doc: []byte("{}"), status: 415, code: "unsupported_media_type"},
		{name: "too large", user: "user", doc: bytes.Repeat([]byte(" "), metadata.MaxDocumentSize+1), status: 413, code: "too_large",
			prefix: "Entry refused (document-size): an entry may have at most 1048576 bytes (1 MiB)."},
		{name: "empty", user: "user", doc: []byte(" \n"), status: 400, code: "invalid", prefix: "The upload holds no entry"},
		{name: "not UTF-8", user: "user", doc: []byte("<rdf:RDF>\xff</rdf:RDF>"), status: 400, code: "invalid",
			prefix: "Entry refused (well-formed): the document is not UTF-8 text."},
		{name: "malformed", user: "user", doc: []byte("<rdf:RDF"), status: 400, code: "invalid", prefix: "Entry refused (well-formed): "},
		{name: "unsigned", user: "user", doc: jane.render(t, now, nil), status: 400, code: "invalid",
			prefix: "Entry refused (signature-present): ", detail: "; sign it with stratus sign-metadata before uploading it."},
		{name: "tampered", user: "user", doc: tampered, status: 400, code: "invalid",
			prefix: "Entry refused (signature-digest): ", detail: "; sign the entry again after changing it."},
		{name: "endorser not the certificate's", user: "user",
			doc:    jane.sign(t, now, func(e *metadata.Entry) { e.Endorsement.Endorser.Email = "mallory@example.org" }),
			status: 400, code: "invalid", prefix: "Entry refused (endorser-matches-certificate): "},
		{name: "bad location", user: "user", doc: jane.sign(t, now, func(e *metadata.Entry) { e.Locations = []string{"ftp://example.org/i.img"} }),
			status: 400, code: "invalid", prefix: "Entry refused (location-url): "},
		{name: "stored", user: "user", doc: first, status: 201},
		{name: "the same entry again", user: "other", doc: first, status: 409, code: "conflict",
			prefix: "Entry refused (already-uploaded): this entry (", detail: " is stored already as MachineImage/"},
		{name: "older", user: "user", doc: jane.sign(t, now.Add(-2*time.Hour), nil), status: 400, code: "invalid",
			prefix: "Entry refused (newer-than-stored): ", detail: "an entry must be newer than the stored ones of its identifier and endorser."},
		{name: "as old, other content", user: "user", doc: jane.sign(t, now.Add(-time.Hour), func(e *metadata.Entry) { e.Title = "changed" }),
			status: 400, code: "invalid", prefix: "Entry refused (newer-than-stored): "},
		{name: "newer, kept in a pdisk volume", user: "user",
			doc:    jane.sign(t, now, func(e *metadata.Entry) { e.Locations = []string{"pdisk:0b6f7a3e-2f1c-4d5e-9a8b-7c6d5e4f3a2b"} }),
			status: 201},
	} {
		req, err := http.NewRequest("POST", srv.URL+"/marketplace/metadata", bytes.NewReader(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", cmp.Or(tc.contentType, "application/xml"))
		if tc.user != "" {
			req.SetBasicAuth(tc.user, map[string]string{"user": UserPassword, "other": OtherPassword}[tc.user])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status  int    `json:"status"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || body.Status != tc.status || body.Code != tc.code ||
			!strings.HasPrefix(body.Message, tc.prefix) || !strings.Contains(body.Message, tc.detail) {
			t.Errorf("%s: %d %+v %v; want %d %q %q...%q", tc.name, resp.StatusCode, body, err, tc.status, tc.code, tc.prefix, tc.detail)
		}
	}
}
