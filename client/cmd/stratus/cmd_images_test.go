package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/internal/fakecloud"
	"stratuslab.dev/client/sdk"
)

// marketWorld is a fake cloud with its Marketplace, a home configured for
// it as "user", and both test endorsers' credentials.
type marketWorld struct {
	*machineWorld
	url        string
	jane, john credentialFiles
}

func newMarketWorld(t *testing.T) *marketWorld {
	t.Helper()
	fc := fakecloud.New()
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = user\npassword = "+fakecloud.UserPassword+"\n")
	w := &marketWorld{machineWorld: &machineWorld{t: t, fc: fc, home: home, vars: map[string]string{}}, url: srv.URL}
	w.jane, w.john = endorsers(t, home)
	return w
}

// as runs a command as another user of the fake cloud.
func (w *marketWorld) as(user, password string, args ...string) (int, string, string) {
	w.t.Helper()
	return stratus(w.t, w.home, map[string]string{"STRATUSLAB_USERNAME": user, "STRATUSLAB_PASSWORD": password}, tty{}, args...)
}

// entry builds and signs the entry of a new image with the stratus
// commands and returns its file and identifier.
func (w *marketWorld) entry(seed, tag, os, osVersion string, by credentialFiles) (string, string) {
	w.t.Helper()
	img, id := imageFile(w.t, w.home, seed, 10_000+len(seed))
	file := filepath.Join(w.home, seed+".xml")
	w.must("build-metadata", "-o", file, "--author-email", by.email, "--os", os, "--os-version", osVersion, "--os-arch", "x86_64",
		"--tag", tag, "--title", seed+" image", "--location", "https://example.org/"+seed+".img", img)
	sign := []string{"--pem-cert", by.certFile, "--pem-key", by.keyFile}
	if by.p12 != "" {
		sign = []string{"--p12-cert", by.p12, "--p12-password", p12Pass}
	}
	w.must(append(append([]string{"sign-metadata"}, sign...), file)...)
	return file, id
}

// tableRows reads describe-images' table: the identifier and fields of
// each line after the header.
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !slices.Equal(strings.Fields(lines[0]), []string{"identifier", "endorser", "os", "version", "arch", "tag", "created", "valid", "status"}) {
		t.Fatalf("header %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 9 {
			t.Fatalf("row %q has %d columns", l, len(f))
		}
		rows[f[0]] = f
	}
	return rows
}

func keys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestMarketplaceCommands(t *testing.T) {
	t.Parallel()
	w := newMarketWorld(t)
	alpha, idA := w.entry("alpha", "debian-test", "debian", "12", w.jane)
	gamma, idC := w.entry("gamma", "tools", "debian", "11", w.jane)
	beta, idB := w.entry("beta", "debian-test", "centos", "7", w.john)

	// Upload: jane's entries by "user", john's by "other".
	code, out, errOut := w.run("upload-metadata", alpha, gamma)
	loc := func(id, email string) string { return w.url + "/marketplace/metadata/" + id + "/" + email + "/" }
	lines := strings.Split(out, "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "UPLOADED "+idA+" "+loc(idA, janeEmail)) ||
		!strings.HasPrefix(lines[1], "UPLOADED "+idC+" "+loc(idC, janeEmail)) {
		t.Fatalf("upload-metadata: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := w.as("other", fakecloud.OtherPassword, "stratus-upload-metadata", "-q", beta); code != 0 || out != idB+"\n" {
		t.Fatalf("upload as other: %d %q %q", code, out, errOut)
	}

	// Refusals name the rule; the other files are still sent.
	signed, err := os.ReadFile(alpha)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(w.home, "tampered.xml")
	if err := os.WriteFile(tampered, []byte(strings.Replace(string(signed), "alpha image", "beta image", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = w.run("upload-metadata", alpha, tampered)
	if code != 1 || out != "" ||
		!strings.Contains(errOut, alpha+": the Marketplace refused it: Entry refused (already-uploaded): this entry ("+idA) || !strings.Contains(errOut, "(409 conflict)\n") ||
		!strings.Contains(errOut, tampered+": the Marketplace refused it: Entry refused (signature-digest): ") || !strings.Contains(errOut, "(400 invalid)\n") {
		t.Errorf("refused uploads: %d %q %q", code, out, errOut)
	}

	// Search.
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"all valid", nil, []string{idA, idB, idC}},
		{"endorser", []string{"--endorser", johnEmail}, []string{idB}},
		{"os", []string{"--os", "debian"}, []string{idA, idC}},
		{"os version", []string{"--os", "debian", "--os-version", "11"}, []string{idC}},
		{"tag argument", []string{"debian-test"}, []string{idA, idB}},
		{"endorser's tag", []string{janeEmail + "/debian-test"}, []string{idA}},
		{"identifier", []string{idC}, []string{idC}},
		{"tag option", []string{"--tag", "tools"}, []string{idC}},
		{"nothing", []string{"--arch", "ppc64"}, nil},
	} {
		code, out, errOut := w.run(append([]string{"describe-images"}, tc.args...)...)
		if rows := tableRows(t, out); code != 0 || !slices.Equal(keys(rows), sorted(tc.want...)) {
			t.Errorf("%s: %d %q %q; want %v", tc.name, code, out, errOut, tc.want)
		}
	}
	code, out, _ = w.run("describe-images", idA)
	if row := tableRows(t, out)[idA]; code != 0 || !slices.Equal(row[1:6], []string{janeEmail, "debian", "12", "x86_64", "debian-test"}) || row[8] != "valid" ||
		len(row[6]) != 10 || len(row[7]) != 10 {
		t.Errorf("describe-images row: %q", row)
	}
	code, out, errOut = w.run("describe-images", "--first", "2", "--last", "2")
	if code != 0 || len(tableRows(t, out)) != 1 || !strings.Contains(errOut, "Entries 2 to 2 of 3: see --first and --last.") {
		t.Errorf("page: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := w.run("describe-images", "--status", "gone"); code != 2 || !strings.Contains(errOut, "--status \"gone\": give valid, expired, deprecated, all") {
		t.Errorf("bad status: %d %q", code, errOut)
	}

	// Show.
	code, out, errOut = w.run("show-image", idA)
	if code != 0 || !strings.HasPrefix(out, ":: IMAGE "+idA+"\n        title: alpha image\n        status: valid\n        tag: debian-test\n        endorser: "+janeEmail+"\n") {
		t.Errorf("show-image: %d %q %q", code, out, errOut)
	}
	if code, out, _ := w.run("show-image", "--xml", janeEmail+"/debian-test"); code != 0 || out != string(signed) {
		t.Errorf("show-image --xml: %d, not the uploaded entry: %q", code, out)
	}
	var shown sdk.ImageEntry
	if code, out, _ := w.run("show-image", "--json", idB); code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Endorser.Email != johnEmail || shown.OS != "centos" {
		t.Errorf("show-image --json: %d %q", code, out)
	}
	for _, tc := range []struct{ arg, want string }{
		{"debian-test", "the tag debian-test is used by 2 endorsers"},
		{"missing", "no valid image has the tag missing"},
		{"Bxxxxxxxxxxxxxxxxxxxxxxxxxx", "the Marketplace has no entry of Bxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{"not a tag!", `"not a tag!" is neither a Marketplace identifier`},
	} {
		if code, _, errOut := w.run("show-image", tc.arg); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("show-image %s: %d %q; want %q", tc.arg, code, errOut, tc.want)
		}
	}

	// Run by tag.
	for _, tc := range []struct{ image, want, err string }{
		{janeEmail + "/debian-test", idA, ""},
		{"tools", idC, ""},
		{"debian-test", "", "The tag debian-test is used by several endorsers (" + janeEmail + ", " + johnEmail + "): give email/debian-test. (409 conflict)"},
		{"none-such", "", "No valid image has tag none-such. (400 invalid)"},
	} {
		before := len(w.fc.Requests())
		code, _, errOut := w.run("run-instance", "-q", tc.image)
		if tc.err != "" {
			if code != 1 || !strings.Contains(errOut, tc.err) {
				t.Errorf("run-instance %s: %d %q; want %q", tc.image, code, errOut, tc.err)
			}
			continue
		}
		var vm map[string]any
		for n := 1; n < 10; n++ {
			if m := w.fc.Machine(n); m != nil && m["image"].(map[string]any)["tag"] == tc.image {
				vm = m
			}
		}
		if code != 0 || vm == nil || vm["image"].(map[string]any)["marketplace"] != tc.want {
			t.Errorf("run-instance %s: %d %q %v %v", tc.image, code, errOut, vm, w.fc.Requests()[before:])
		}
	}

	// Deprecate by the action: not someone else's entry.
	code, _, errOut = w.as("other", fakecloud.OtherPassword, "deprecate-metadata", "--email", janeEmail, "--reason", "mine now", idA)
	if code != 1 || !strings.Contains(errOut, "Only the uploader of an entry or an administrator may deprecate it") {
		t.Errorf("other deprecates jane's: %d %q", code, errOut)
	}
	code, _, errOut = w.run("deprecate-metadata", idA)
	if code != 1 || !strings.Contains(errOut, "your account (user) has no e-mail address: give the endorser's with --email") {
		t.Errorf("no e-mail: %d %q", code, errOut)
	}
	w.fc.Put("User/user", map[string]any{"username": "user", "email": janeEmail})
	if code, out, errOut := w.run("stratus-deprecate-metadata", "--reason", "use gamma", idA); code != 0 || out != "DEPRECATED "+idA+"\n" {
		t.Fatalf("deprecate-metadata: %d %q %q", code, out, errOut)
	}
	code, out, _ = w.run("show-image", idA)
	if code != 0 || !strings.Contains(out, "        status: deprecated: use gamma (by user)\n") {
		t.Errorf("show deprecated: %q", out)
	}
	if code, out, _ := w.run("describe-images", "--os", "debian"); !slices.Equal(keys(tableRows(t, out)), []string{idC}) || code != 0 {
		t.Errorf("a deprecated image is still listed as valid: %q", out)
	}
	if code, out, _ := w.run("describe-images", "--status", "deprecated"); code != 0 || tableRows(t, out)[idA][8] != "deprecated" {
		t.Errorf("--status deprecated: %q", out)
	}

	// Deprecate with a key: a new signed entry, John's own.
	code, out, errOut = w.as("other", fakecloud.OtherPassword, "deprecate-metadata", "--pem-cert", w.john.certFile, "--pem-key", w.john.keyFile, "--reason", "superseded", idB)
	if code != 0 || out != "DEPRECATED "+idB+"\n" {
		t.Fatalf("deprecate-metadata with a key: %d %q %q", code, out, errOut)
	}
	code, out, _ = w.run("show-image", "--xml", idB)
	newest := filepath.Join(w.home, "newest.xml")
	if err := os.WriteFile(newest, []byte(out), 0o600); code != 0 || err != nil {
		t.Fatal(code, err)
	}
	if code, out, errOut := w.run("validate-metadata", newest); code != 0 || out != "VALID "+idB+" "+johnEmail+" deprecated\n" {
		t.Errorf("the deprecating entry: %d %q %q", code, out, errOut)
	}
	if msg, err := xmlsecVerify(t, newest, w.john.ca); err != nil {
		t.Errorf("xmlsec1 refuses the deprecating entry: %v\n%s", err, msg)
	}
	if code, out, errOut := w.run("describe-images", "--endorser", johnEmail); code != 0 || len(tableRows(t, out)) != 0 || !strings.Contains(errOut, "No entry matches") {
		t.Errorf("john's deprecated image is still valid: %q %q", out, errOut)
	}
	if code, out, _ := w.run("describe-images", "--endorser", johnEmail, "--status", "all", "--json"); code != 0 || strings.Count(out, `"identifier": "`+idB+`"`) != 2 {
		t.Errorf("john's history: %q", out)
	}
	code, _, errOut = w.run("deprecate-metadata", "--sign", "--pem-cert", w.john.certFile, "--pem-key", w.john.keyFile, "--email", janeEmail, idA)
	if code != 1 || !strings.Contains(errOut, "your certificate is "+johnEmail+"'s") {
		t.Errorf("sign for another endorser: %d %q", code, errOut)
	}
}

func TestMarketplaceEndpoint(t *testing.T) {
	t.Parallel()
	w := newMarketWorld(t)
	alpha, idA := w.entry("alpha", "debian-test", "debian", "12", w.jane)
	w.must("upload-metadata", alpha)

	// Another site's Marketplace: read anonymously, never sent the
	// cloud's password.
	other := fakecloud.New()
	srv := httptest.NewServer(other)
	t.Cleanup(srv.Close)
	for _, mp := range []string{srv.URL, srv.URL + "/marketplace", srv.URL + "/marketplace/metadata/"} {
		code, out, errOut := w.run("describe-images", "--marketplace-endpoint", mp)
		if code != 0 || len(tableRows(t, out)) != 0 {
			t.Errorf("%s: %d %q %q", mp, code, out, errOut)
		}
	}
	code, _, errOut := w.run("upload-metadata", "--marketplace-endpoint", srv.URL, alpha)
	if code != 1 || !strings.Contains(errOut, "the Marketplace "+srv.URL+"/marketplace wants credentials (401: Log in to upload Marketplace entries.)") {
		t.Errorf("upload elsewhere: %d %q", code, errOut)
	}
	for _, r := range other.Requests() {
		if !strings.HasPrefix(r, "GET /marketplace/metadata") && r != "POST /marketplace/metadata" {
			t.Errorf("request %q", r)
		}
	}
	// The environment and the file set it too; the default is the endpoint's.
	w.vars["STRATUSLAB_MARKETPLACE_ENDPOINT"] = srv.URL
	if code, out, _ := w.run("describe-images", "-q"); code != 0 || out != "" {
		t.Errorf("env marketplace: %d %q", code, out)
	}
	delete(w.vars, "STRATUSLAB_MARKETPLACE_ENDPOINT")
	if code, out, _ := w.run("describe-images", "-q"); code != 0 || out != idA+"\n" {
		t.Errorf("default marketplace: %d %q", code, out)
	}
	code, _, errOut = w.run("describe-images", "--marketplace-endpoint", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "cannot reach http://127.0.0.1:1: connection refused — check marketplace_endpoint in the command line (--marketplace-endpoint)") {
		t.Errorf("unreachable: %d %q", code, errOut)
	}
}

func TestMarketplaceLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, errOut := stratus(t, t.TempDir(), nil, tty{}, "links", dir, "-q"); code != 0 {
		t.Fatalf("links: %d %q", code, errOut)
	}
	for _, name := range []string{"build-metadata", "sign-metadata", "validate-metadata", "upload-metadata", "deprecate-metadata",
		"describe-images", "show-image", "create-image"} {
		if _, err := os.Readlink(filepath.Join(dir, "stratus-"+name)); err != nil {
			t.Errorf("stratus-%s: %v", name, err)
		}
	}
	if code, out, errOut := stratus(t, t.TempDir(), nil, tty{}, filepath.Join(dir, "stratus-validate-metadata"), "--help"); code != 0 || !strings.Contains(out, "VALID <identifier> <endorser e-mail> <status>") {
		t.Errorf("stratus-validate-metadata --help: %d %q %q", code, out, errOut)
	}
}

// TestDeprecateExpiredEntry: an author withdraws an image whose entry has
// expired, with a new entry signed after the old one's validity ended.
func TestDeprecateExpiredEntry(t *testing.T) {
	t.Parallel()
	w := newMarketWorld(t)
	img, id := imageFile(t, w.home, "short", 10_000)
	file := filepath.Join(w.home, "short.xml")
	w.must("build-metadata", "-o", file, "--author-email", w.john.email, "--os", "debian", "--os-version", "12", "--os-arch", "x86_64",
		"--validity", "3s", "--location", "https://example.org/short.img", img)
	w.must("sign-metadata", "--pem-cert", w.john.certFile, "--pem-key", w.john.keyFile, file)
	w.must("upload-metadata", file)
	// The entry's dates are to the second: 4 s is past its validity.
	time.Sleep(4 * time.Second)
	if code, out, errOut := w.run("describe-images", "--status", "expired"); code != 0 || tableRows(t, out)[id] == nil {
		t.Fatalf("the entry is not expired: %d %q %q", code, out, errOut)
	}
	code, out, errOut := w.run("deprecate-metadata", "--pem-cert", w.john.certFile, "--pem-key", w.john.keyFile, "--reason", "withdrawn", id)
	if code != 0 || out != "DEPRECATED "+id+"\n" {
		t.Fatalf("deprecate an expired entry with a key: %d %q %q", code, out, errOut)
	}
	if code, out, _ := w.run("describe-images", "--status", "deprecated"); code != 0 || tableRows(t, out)[id] == nil {
		t.Errorf("the expired entry is not deprecated: %q", out)
	}
}
