package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stratuslab.dev/client/internal/fakecloud"
)

// sandbox is a directory of programs for the guest script: links to the
// few this machine's tools it uses, and fake package tools that record
// their arguments, so that the script runs here as it would in a guest.
type sandbox struct {
	dir, bin string
	paths    guestPaths
}

func newSandbox(t *testing.T, tools ...string) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{dir: dir, bin: filepath.Join(dir, "bin"), paths: guestPaths{log: filepath.Join(dir, "log"), mark: filepath.Join(dir, "mark")}}
	if err := os.Mkdir(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"sh", "cat", "chmod", "head", "mktemp", "rm", "touch", "echo", "sleep"} {
		p, err := exec.LookPath(prog)
		if err != nil {
			t.Fatalf("%s: %v", prog, err)
		}
		if err := os.Symlink(p, filepath.Join(s.bin, prog)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range tools {
		// A fake tool: records its arguments; "fail" among them fails.
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %s\ncase \" $* \" in *\" fail \"*) exit 100 ;; esac\n", tool, shellQuote(filepath.Join(dir, "calls")))
		if err := os.WriteFile(filepath.Join(s.bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// run runs the guest script and returns its exit code, the package tool
// calls and the log.
func (s *sandbox) run(t *testing.T, script []byte) (int, string, string) {
	t.Helper()
	file := filepath.Join(s.dir, "guest.sh")
	if err := os.WriteFile(file, script, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", file)
	cmd.Env = []string{"PATH=" + s.bin, "TMPDIR=" + s.dir, "HOME=" + s.dir}
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sh: %v %s", err, out)
	}
	calls, _ := os.ReadFile(filepath.Join(s.dir, "calls"))
	log, _ := os.ReadFile(s.paths.log)
	if len(out) > 0 {
		t.Errorf("the script wrote %q outside its log", out)
	}
	return code, string(calls), string(log)
}

func (s *sandbox) marked() bool {
	_, err := os.Stat(s.paths.mark)
	return err == nil
}

func TestGuestScript(t *testing.T) {
	t.Parallel()
	need(t, "sh", "dash")
	for _, tc := range []struct {
		name      string
		tools     []string
		packages  []string
		script    string
		code      int
		calls     string
		log       string // a line of the log
		marked    bool
		scriptRan bool
	}{
		{"apt-get and a bash-less script", []string{"apt-get", "yum"}, []string{"apache2", "chkconfig"}, "echo ran > \"$HOME/ran\"\n", 0,
			"apt-get update\napt-get install -y apache2 chkconfig\n", " :: Executing user script", true, true},
		{"a script with #!", []string{"apt-get"}, nil, "#!/bin/sh\nset -e\necho ran > \"$HOME/ran\"", 0, "", " :: Done: cloud-init now powers the machine off", true, true},
		{"dnf before yum", []string{"dnf", "yum"}, []string{"httpd"}, "", 0, "dnf install -y httpd\n", " :: Installing user packages: httpd", true, false},
		{"yum", []string{"yum"}, []string{"httpd"}, "", 0, "yum install -y httpd\n", "", true, false},
		{"zypper", []string{"zypper"}, []string{"apache2"}, "", 0, "zypper --non-interactive install apache2\n", "", true, false},
		{"apk", []string{"apk"}, []string{"nginx"}, "", 0, "apk update\napk add nginx\n", "", true, false},
		{"pacman", []string{"pacman"}, []string{"nginx"}, "", 0, "pacman -Sy --noconfirm nginx\n", "", true, false},
		{"no package tool", nil, []string{"nginx"}, "echo ran > \"$HOME/ran\"\n", 1, "", "no package tool stratus knows", false, false},
		{"the package fails", []string{"apt-get"}, []string{"fail"}, "echo ran > \"$HOME/ran\"\n", 1, "apt-get update\napt-get install -y fail\n",
			"stratus create-image: apt-get could not install fail; the machine is not powered off", false, false},
		{"the script fails", []string{"apt-get"}, nil, "echo ran > \"$HOME/ran\"\nexit 3\n", 1, "", "the script failed (exit status 3)", false, true},
		{"a script holding the delimiter's prefix", nil, nil, "cat <<'STRATUS_SCRIPT_'\nSTRATUS_SCRIPT_\nEOF\necho ran > \"$HOME/ran\"\n", 0, "", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, tc.tools...)
			code, calls, log := s.run(t, guestScript(tc.packages, []byte(tc.script), s.paths))
			_, err := os.Stat(filepath.Join(s.dir, "ran"))
			if code != tc.code || calls != tc.calls || !strings.Contains(log, tc.log) || s.marked() != tc.marked || (err == nil) != tc.scriptRan {
				t.Errorf("exit %d, calls %q, marked %v, script ran %v, log:\n%s", code, calls, s.marked(), err == nil, log)
			}
		})
	}
}

// cloudInitPython is the interpreter cloud-init runs with, read from its
// #! line, so that the test imports cloud-init's own modules.
func cloudInitPython(t *testing.T) string {
	t.Helper()
	need(t, "cloud-init", "cloud-init")
	p, _ := exec.LookPath("cloud-init")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	interp, ok := strings.CutPrefix(strings.TrimSpace(line), "#!")
	if !ok {
		t.Fatalf("%s starts with %q", p, line)
	}
	return strings.Fields(interp)[0]
}

// TestUserDataReadByCloudInit: cloud-init's own user-data processor finds
// the two parts, its schema accepts the cloud-config, and its
// power_state condition holds exactly when the script left its mark.
func TestUserDataReadByCloudInit(t *testing.T) {
	t.Parallel()
	python := cloudInitPython(t)
	dir := t.TempDir()
	paths := guestPaths{log: filepath.Join(dir, "log"), mark: filepath.Join(dir, "it's done")}
	script := []byte("#!/bin/bash\necho 'héllo' > /var/www/cloud.txt\n")
	ud, err := createImageUserData([]string{"apache2", "chkconfig"}, script, paths)
	if err != nil {
		t.Fatal(err)
	}
	udFile := filepath.Join(dir, "user-data")
	if err := os.WriteFile(udFile, ud, 0o600); err != nil {
		t.Fatal(err)
	}
	const program = `
import base64, json, sys, yaml
from cloudinit import helpers, user_data, util
from cloudinit.config.cc_power_state_change import check_condition
msg = user_data.UserDataProcessor(helpers.Paths({"cloud_dir": sys.argv[2]})).process(open(sys.argv[1], "rb").read())
parts = []
for p in msg.walk():
    if p.get_content_maintype() == "multipart":
        continue
    # As cloud-init's part handlers read it.
    body = util.fully_decoded_payload(p).encode("utf-8", "surrogateescape")
    part = {"type": p.get_content_type(), "name": p.get_filename(), "body": base64.b64encode(body).decode()}
    if part["type"] == "text/cloud-config":
        cond = yaml.safe_load(body)["power_state"]["condition"]
        part["before"] = check_condition(cond)
        open(sys.argv[3], "w").close()
        part["after"] = check_condition(cond)
    parts.append(part)
json.dump(parts, sys.stdout)
`
	out, err := exec.Command(python, "-c", program, udFile, filepath.Join(dir, "cloud"), paths.mark).Output()
	if err != nil {
		t.Fatalf("cloud-init's user-data processor: %v", err)
	}
	var parts []struct {
		Type, Name, Body string
		Before, After    bool
	}
	if err := json.Unmarshal(out, &parts); err != nil || len(parts) != 2 {
		t.Fatalf("parts %s: %v", out, err)
	}
	body := func(i int) []byte {
		b, err := base64.StdEncoding.DecodeString(parts[i].Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if parts[0].Type != "text/cloud-config" || parts[0].Name != "stratus-power-off.cfg" || !bytes.Equal(body(0), powerOffConfig(paths)) ||
		parts[0].Before || !parts[0].After {
		t.Errorf("cloud-config part: %+v %q", parts[0], body(0))
	}
	if parts[1].Type != "text/x-shellscript" || parts[1].Name != "stratus-create-image.sh" || !bytes.Equal(body(1), guestScriptOf(t, ud)) ||
		!bytes.Contains(body(1), script) || !bytes.HasPrefix(body(1), []byte("#!/bin/sh\n")) {
		t.Errorf("script part: %+v %q", parts[1], body(1))
	}
	cfg := filepath.Join(dir, "power.yaml")
	if err := os.WriteFile(cfg, body(0), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cloud-init", "schema", "--config-file", cfg).CombinedOutput(); err != nil {
		t.Errorf("cloud-init schema refuses the cloud-config: %v\n%s", err, out)
	}
}

// guestScriptOf reads the script part out of user data with Go's own
// MIME reader.
func guestScriptOf(t *testing.T, ud []byte) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(ud))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err != nil {
			t.Fatalf("no script part: %v", err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/x-shellscript") {
			b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestUserDataLimit(t *testing.T) {
	t.Parallel()
	// Random bytes do not compress: 30 KiB of them are over the limit.
	noise := make([]byte, 30<<10)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	big := []byte("echo " + base64.StdEncoding.EncodeToString(noise) + "\n")
	if _, err := createImageUserData(nil, big, guestDefaults()); err == nil || !strings.Contains(err.Error(), "the cloud takes at most 16384 of user data") {
		t.Errorf("big script: %v", err)
	}
	ud, err := createImageUserData([]string{"nginx"}, []byte("echo small\n"), guestDefaults())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := gzip.NewReader(bytes.NewReader(gzipBytes(ud)))
	back, _ := io.ReadAll(r)
	if !bytes.Equal(back, ud) || gzipSize(ud) > maxUserData {
		t.Errorf("small user data does not round-trip gzip")
	}
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Bytes()
}

func TestParsePackages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		want string
		ok   bool
	}{
		{[]string{"apache2,chkconfig"}, "apache2 chkconfig", true},
		{[]string{"apache2", "libc6=2.36-9", "python3.11", "g++", "foo/bookworm-backports"}, "apache2 libc6=2.36-9 python3.11 g++ foo/bookworm-backports", true},
		{[]string{"a, b"}, "a b", true},
		{[]string{"$(reboot)"}, "", false},
		{[]string{"python3*"}, "", false},
		{[]string{"-y"}, "", false},
		{[]string{"a;b"}, "", false},
		{[]string{"'q'"}, "", false},
	} {
		got, err := parsePackages(tc.in)
		if (err == nil) != tc.ok || strings.Join(got, " ") != tc.want {
			t.Errorf("parsePackages(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestCreateImage(t *testing.T) {
	t.Parallel()
	w := newMarketWorld(t)
	base, baseID := w.entry("ubuntu", "ubuntu-base", "ubuntu", "22.04", w.jane)
	data, dataID := imageFile(t, w.home, "dataset", 3000)
	dataXML := filepath.Join(w.home, "data.xml")
	w.must("build-metadata", "--type", "disk", "--author-email", janeEmail, "--location", "https://example.org/d.iso", "-o", dataXML, data)
	w.must("sign-metadata", "--p12-cert", w.jane.p12, "--p12-password", p12Pass, dataXML)
	w.must("upload-metadata", base, dataXML)
	script := w.file("setup-ubuntu.sh", "#!/bin/bash\ncat > /var/www/cloud.txt <<EOF\nCloudy Weather Expected\nEOF\n")

	code, out, errOut := w.run("stratus-create-image", "--timeout", "2m", "-s", script, "-a", "apache2,chkconfig", "--type", "m1.xlarge",
		"--comment", "ubuntu create image test", "--title", "My first image", "--author", "Joe Builder", "--author-email", "builder@example.org", baseID)
	if code != 0 {
		t.Fatalf("create-image: %d %q %q", code, out, errOut)
	}
	m := w.machine(1)
	ctx := m["context"].(map[string]any)
	ud, _ := ctx["userData"].(string)
	sh := string(guestScriptOf(t, []byte(ud)))
	if m["type"] != "m1.xlarge" || ctx["method"] != "cloud-init" || m["image"].(map[string]any)["marketplace"] != baseID ||
		!strings.Contains(sh, "packages='apache2 chkconfig'") || !strings.Contains(sh, "Cloudy Weather Expected") {
		t.Errorf("machine: %v", m)
	}
	save := m["save"].(map[string]any)
	if save["title"] != "My first image" || save["comment"] != "ubuntu create image test" || save["author"] != "Joe Builder" || save["authorEmail"] != "builder@example.org" {
		t.Errorf("save: %v", save)
	}
	newID, _ := m["savedIdentifier"].(string)
	for _, want := range []string{
		" :::::::::::::::::::::::::::::\n :: Starting image creation ::\n :::::::::::::::::::::::::::::\n :: Checking that base image exists\n :: Retrieving image manifest\n :: Starting base image\n",
		" :: Starting 1 machine\n :: Machine 1 (vm ID: 1)\n Public ip: " + publicIP(1) + "\n :: Done!\n :: Waiting for machine to boot\n",
		"\n :: Installing user packages and executing user script (cloud-init, in the machine)\n :: Waiting for the machine to power itself off\n",
		" :: Finished building image increment. ::\n",
		" :: Shutting down machine\n :: Saving the image\n",
		" New image identifier: " + newID + "\n",
	} {
		if newID == "" || !strings.Contains(out, want) {
			t.Errorf("create-image printed\n%s\nwithout\n%s", out, want)
		}
	}
	if m["detailedState"] != "Done" {
		t.Errorf("machine ends %v", m["detailedState"])
	}
	// The draft is the author's.
	code, out, _ = w.run("show-image", newID)
	if code != 0 || !strings.Contains(out, "        status: draft\n") || !strings.Contains(out, "        title: My first image\n") {
		t.Errorf("show-image of the draft: %d %q", code, out)
	}
	if code, _, _ := w.as("other", fakecloud.OtherPassword, "show-image", newID); code != 1 {
		t.Errorf("another user sees the draft")
	}

	// -q prints the identifier; a tag names the base; the title defaults.
	code, out, errOut = w.run("create-image", "--timeout", "2m", "-q", "-a", "nginx", janeEmail+"/ubuntu-base")
	m = w.machine(2)
	if code != 0 || out != fmt.Sprint(m["savedIdentifier"])+"\n" || errOut != "" || m["save"].(map[string]any)["title"] != janeEmail+"/ubuntu-base with nginx" {
		t.Errorf("create-image -q: %d %q %q %v", code, out, errOut, m["save"])
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{baseID}, 2, "nothing to add to the image: give packages with -a and/or a script with -s"},
		{[]string{"-a", "a;reboot", baseID}, 2, `-a: "a;reboot" is not a package name`},
		{[]string{"-s", filepath.Join(w.home, "nope.sh"), baseID}, 1, "cannot read the script"},
		{[]string{"-a", "x", "https://example.org/i.img"}, 2, "needs its SHA-1"},
		{[]string{"-a", "x", "Bxxxxxxxxxxxxxxxxxxxxxxxxxx"}, 1, "the Marketplace has no entry of Bxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{[]string{"-a", "x", dataID}, 1, dataID + " is a data image (type disk), not a machine image"},
		{[]string{"-a", "x", "--author-email", "nobody", baseID}, 2, `--author-email "nobody" is not an e-mail address`},
		{[]string{"-a", "x", "--timeout", "1ns", baseID}, 1, "machine 3 has not powered off after 1ns"},
	} {
		if code, _, errOut := w.run(append([]string{"create-image"}, tc.args...)...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("create-image %q: %d %q; want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
