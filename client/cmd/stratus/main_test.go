package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/internal/fakecloud"
)

// tty is a run's terminal: stdin and the lines typed at password prompts.
type tty struct {
	stdin     string
	terminal  bool
	passwords []string
}

// stratus runs one command line in home with the environment vars and
// returns its exit code, stdout and stderr.
func stratus(t *testing.T, home string, vars map[string]string, tm tty, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	pw := slices.Clone(tm.passwords)
	e := env{
		stdin: strings.NewReader(tm.stdin), stdout: &out, stderr: &errOut,
		getenv:   func(k string) string { return vars[k] },
		home:     home,
		terminal: func() bool { return tm.terminal },
		readPassword: func() ([]byte, error) {
			if len(pw) == 0 {
				return nil, io.EOF
			}
			p := pw[0]
			pw = pw[1:]
			return []byte(p), nil
		},
	}
	if len(args) == 0 || !strings.Contains(args[0], "stratus") {
		args = append([]string{"stratus"}, args...)
	}
	code := run(context.Background(), args, e)
	return code, out.String(), errOut.String()
}

func writeConfig(t *testing.T, home, text string) string {
	t.Helper()
	path := config.Path(home)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func cloud(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fakecloud.New())
	t.Cleanup(srv.Close)
	return srv
}

func TestClassic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"stratus", "login"}, []string{"stratus", "login"}},
		{[]string{"/usr/bin/stratus-describe-instance", "-v"}, []string{"stratus", "describe-instance", "-v"}},
		{[]string{"stratus-copy-config.exe"}, []string{"stratus", "copy-config"}},
		{[]string{"./stratus-"}, []string{"./stratus-"}},
		{nil, []string{"stratus"}},
	} {
		if got := classic(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("classic(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassicNamesRunTheSameCommand(t *testing.T) {
	t.Parallel()
	srv := cloud(t)
	home := t.TempDir()
	vars := map[string]string{"STRATUSLAB_ENDPOINT": srv.URL, "STRATUSLAB_USERNAME": "admin", "STRATUSLAB_PASSWORD": fakecloud.AdminPassword}
	for _, args := range [][]string{
		{"stratus", "whoami"},
		{"/opt/sl/bin/stratus-whoami"},
		{"stratus-whoami"},
	} {
		code, out, errOut := stratus(t, home, vars, tty{}, args...)
		if code != 0 || out != "admin (ADMIN, USER) by password\n" {
			t.Errorf("%q: %d %q %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"stratus", "--version"}, {"stratus-copy-config", "--version"}, {"stratus", "list", "--version"}} {
		if code, out, _ := stratus(t, home, nil, tty{}, args...); code != 0 || out != "stratus "+version+"\n" {
			t.Errorf("%q: %d %q", args, code, out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	srv := cloud(t)
	vars := map[string]string{"STRATUSLAB_ENDPOINT": srv.URL}
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"--bogus", "whoami"}, 2, "unknown flag: --bogus"},
		{[]string{"get"}, 2, "accepts 1 arg(s), received 0"},
		{[]string{"create", "ServiceMessage"}, 2, "give the document with -f FILE"},
		{[]string{"list", "--first", "x", "User"}, 2, "invalid argument"},
		{[]string{"whoami"}, 1, "the cloud wants credentials (401): set username and password in " + config.Path(home) + " [default]"},
		{[]string{"cloud-entry-point", "-q"}, 0, ""},
		{[]string{"help"}, 0, ""},
		{[]string{"get", "--help"}, 0, ""},
	} {
		code, _, errOut := stratus(t, home, vars, tty{}, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d %q; want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestConfigurationPrecedence(t *testing.T) {
	t.Parallel()
	a, b, c := cloud(t), cloud(t), cloud(t)
	host := func(s *httptest.Server) string { return "http://" + s.Listener.Addr().String() + "/cimi/\n" }
	home := t.TempDir()
	writeConfig(t, home, `[default]
selected_section = cloud-b
endpoint = `+a.URL+`
[cloud-b]
endpoint = "`+b.URL+`"
[cloud-c]
endpoint = `+c.URL+`
`)
	unselected := t.TempDir()
	writeConfig(t, unselected, "[default]\nendpoint = "+a.URL+"\n[cloud-c]\nendpoint = "+c.URL+"\n")
	for _, tc := range []struct {
		name string
		home string
		vars map[string]string
		args []string
		want *httptest.Server
	}{
		{"[default] alone", unselected, nil, nil, a},
		{"selected_section", home, nil, nil, b},
		{"-S", home, nil, []string{"-S", "cloud-c"}, c},
		{"--user-config-section", home, nil, []string{"--user-config-section=cloud-c"}, c},
		{"-S default", home, nil, []string{"-S", "default"}, a},
		{"env section", home, map[string]string{"STRATUSLAB_USER_CONFIG_SECTION": "cloud-c"}, nil, c},
		{"-S over env section", unselected, map[string]string{"STRATUSLAB_USER_CONFIG_SECTION": "cloud-c"}, []string{"-S", "default"}, a},
		{"env endpoint over the file", home, map[string]string{"STRATUSLAB_ENDPOINT": c.URL}, nil, c},
		{"flag over env", home, map[string]string{"STRATUSLAB_ENDPOINT": c.URL}, []string{"--endpoint", a.URL}, a},
		{"no file, env only", t.TempDir(), map[string]string{"STRATUSLAB_ENDPOINT": b.URL}, nil, b},
	} {
		args := append([]string{"cloud-entry-point", "-q"}, tc.args...)
		code, out, errOut := stratus(t, tc.home, tc.vars, tty{}, args...)
		if code != 0 || out != host(tc.want) {
			t.Errorf("%s: %d %q %q; want %q", tc.name, code, out, errOut, host(tc.want))
		}
	}
	code, _, errOut := stratus(t, home, nil, tty{}, "whoami", "-S", "missing")
	if code != 1 || !strings.Contains(errOut, "section [missing] chosen by -S/--user-config-section is not in") {
		t.Errorf("missing section: %d %q", code, errOut)
	}
}

func TestCopyConfig(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	path := config.Path(home)
	code, out, errOut := stratus(t, home, nil, tty{}, "stratus-copy-config")
	if code != 0 || !strings.Contains(out, "Wrote "+path) {
		t.Fatalf("copy-config: %d %q %q", code, out, errOut)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if st, err := os.Stat(p); err != nil || st.Mode() != mode {
			t.Errorf("%s: %v %v, want %v", p, st.Mode(), err, mode)
		}
	}
	data, _ := os.ReadFile(path)
	if string(data) != config.Reference() {
		t.Error("the file is not the reference file")
	}
	if err := os.WriteFile(path, []byte("[default]\nendpoint = mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = stratus(t, home, nil, tty{}, "copy-config")
	if data, _ := os.ReadFile(path); code != 1 || !strings.Contains(errOut, "--force") || string(data) != "[default]\nendpoint = mine\n" {
		t.Errorf("second copy-config: %d %q, file %q", code, errOut, data)
	}
	code, out, _ = stratus(t, home, nil, tty{}, "copy-config", "--force", "--json")
	st, _ := os.Stat(path)
	data, _ = os.ReadFile(path)
	var got map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got["path"] != path || string(data) != config.Reference() || st.Mode() != 0o600 {
		t.Errorf("--force: %d %q, mode %v", code, out, st.Mode())
	}
	other := filepath.Join(t.TempDir(), "sub", "other.cfg")
	if code, _, _ := stratus(t, home, map[string]string{config.FileEnv: other}, tty{}, "copy-config", "-q"); code != 0 {
		t.Errorf("STRATUSLAB_USER_CONFIG: %d", code)
	}
	if _, err := os.Stat(other); err != nil {
		t.Error(err)
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tm       tty
		args     []string
		code     int
		password string
		errText  string
	}{
		{"piped", tty{stdin: "s3cret pass\nignored\n"}, nil, 0, "s3cret pass", ""},
		{"typed twice", tty{terminal: true, passwords: []string{"typed", "typed"}}, []string{"--json"}, 0, "typed", ""},
		{"typed differently", tty{terminal: true, passwords: []string{"one", "two"}}, nil, 1, "", "the two passwords differ"},
		{"empty", tty{stdin: "\n"}, nil, 1, "", "no password given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := stratus(t, t.TempDir(), nil, tc.tm, append([]string{"hash-password"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.errText) {
				t.Fatalf("exit %d %q", code, errOut)
			}
			if tc.code != 0 {
				return
			}
			hash := strings.TrimSpace(out)
			if slices.Contains(tc.args, "--json") {
				var v map[string]string
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatal(err)
				}
				hash = v["hash"]
			}
			if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != hashCost {
				t.Errorf("cost %d %v", cost, err)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(tc.password)); err != nil {
				t.Errorf("the hash does not verify: %v", err)
			}
			if strings.Contains(out+errOut, tc.password) {
				t.Error("the password is shown")
			}
		})
	}
}

func TestResourceCommands(t *testing.T) {
	t.Parallel()
	srv := cloud(t)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = admin\npassword = "+fakecloud.AdminPassword+"\n")
	run := func(tm tty, args ...string) (int, string, string) { return stratus(t, home, nil, tm, args...) }
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(tty{}, args...)
		if code != 0 {
			t.Fatalf("%q: %d %s", args, code, errOut)
		}
		return out
	}
	dir := t.TempDir()
	msg := filepath.Join(dir, "m.json")
	if err := os.WriteFile(msg, []byte(`{"name":"maintenance","description":"Tuesday night"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	id := strings.TrimSpace(must("create", "ServiceMessage", "-f", msg, "-q"))
	if !strings.HasPrefix(id, "ServiceMessage/") {
		t.Fatalf("create -q printed %q", id)
	}
	if code, out, errOut := run(tty{stdin: `{"name":"second"}`}, "create", "serviceMessages", "-f", "-"); code != 0 || !strings.HasPrefix(out, "created ServiceMessage/") {
		t.Errorf("create from stdin: %d %q %q", code, out, errOut)
	}
	code, _, errOut := run(tty{stdin: "not json"}, "create", "ServiceMessage", "-f", "-")
	if code != 1 || !strings.Contains(errOut, "not valid JSON") {
		t.Errorf("bad JSON: %d %q", code, errOut)
	}
	if code, _, errOut := run(tty{stdin: `{"name":"conflict"}`}, "create", "ServiceMessage", "-f", "-"); code != 1 || !strings.Contains(errOut, "A resource with this name exists. (409 conflict)") {
		t.Errorf("conflict: %d %q", code, errOut)
	}

	if out := must("get", id); !strings.Contains(out, `"description": "Tuesday night"`) {
		t.Errorf("get: %q", out)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(must("get", id, "--json")), &doc); err != nil || doc["id"] != id {
		t.Errorf("get --json: %v %v", doc, err)
	}
	doc["description"] = "Wednesday"
	edited, _ := json.Marshal(doc)
	if err := os.WriteFile(msg, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := must("edit", id, "-f", msg); out != "updated "+id+"\n" {
		t.Errorf("edit: %q", out)
	}

	out := must("list", "ServiceMessage")
	if !strings.Contains(out, "ID") || !strings.Contains(out, "maintenance") || !strings.Contains(out, "Wednesday") {
		t.Errorf("list: %q", out)
	}
	if out := must("list", "ServiceMessage", "-q", "--first", "1", "--last", "1"); out != id+"\n" {
		t.Errorf("list -q: %q", out)
	}
	var page struct {
		Count int
		Items []map[string]any
	}
	if err := json.Unmarshal([]byte(must("list", "ServiceMessage", "--json", "--filter", "name='maintenance'", "--select", "name")), &page); err != nil || page.Count != 1 || page.Items[0]["description"] != nil {
		t.Errorf("list --json: %+v %v", page, err)
	}
	if code, _, errOut := run(tty{}, "list", "ServiceMessage", "--filter", "name"); code != 1 || !strings.Contains(errOut, "bad_filter") {
		t.Errorf("bad filter: %d %q", code, errOut)
	}
	if code, _, errOut := run(tty{}, "list", "Disks"); code != 1 || !strings.Contains(errOut, `no collection "Disks"`) {
		t.Errorf("unknown collection: %d %q", code, errOut)
	}

	if out := must("delete", id); out != "deleted "+id+"\n" {
		t.Errorf("delete: %q", out)
	}
	if code, _, errOut := run(tty{}, "get", id); code != 1 || !strings.Contains(errOut, "(404 not_found)") {
		t.Errorf("get deleted: %d %q", code, errOut)
	}

	// Work that takes a job.
	code, out, errOut = run(tty{stdin: `{"name":"vm"}`}, "create", "Machine", "-f", "-")
	if code != 0 || !strings.Contains(out, "accepted, follow Job/") {
		t.Fatalf("create Machine: %d %q %q", code, out, errOut)
	}
	job := out[strings.Index(out, "wait-job ")+len("wait-job ") : len(out)-2]
	if code, out, errOut := run(tty{}, "wait-job", job); code != 0 || out != job+" SUCCESS: done\n" || !strings.Contains(errOut, "RUNNING 30%") {
		t.Errorf("wait-job: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := run(tty{stdin: `{"name":"vm2"}`}, "create", "Machine", "-f", "-", "--wait", "-q"); code != 0 || !strings.HasPrefix(out, "Machine/") || errOut != "" {
		t.Errorf("create --wait -q: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run(tty{stdin: `{"name":"doomed"}`}, "create", "Machine", "-f", "-", "--wait")
	if code != 1 || !strings.Contains(errOut, "FAILED: no host has room for this machine") {
		t.Errorf("failed job: %d %q %q", code, out, errOut)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	srv := cloud(t)
	home := t.TempDir()
	cfg := writeConfig(t, home, "[default]\nselected_section = lab\n[lab]\nendpoint = "+srv.URL+"\nusername = user\n")

	code, _, errOut := stratus(t, home, nil, tty{}, "whoami")
	if code != 1 || errOut != "stratus: the cloud refused your credentials (401): check username/password in "+cfg+" [lab]\n" {
		t.Errorf("no password: %d %q", code, errOut)
	}
	code, _, errOut = stratus(t, home, nil, tty{}, "login", "-p", "wrong")
	if code != 1 || !strings.Contains(errOut, "check username/password in the command line") {
		t.Errorf("wrong password: %d %q", code, errOut)
	}
	code, out, errOut := stratus(t, home, nil, tty{terminal: true, passwords: []string{fakecloud.UserPassword}}, "login")
	if code != 0 || !strings.HasPrefix(out, "Logged in to "+srv.URL+" as user (USER) until ") || !strings.Contains(errOut, "Password for user: ") {
		t.Fatalf("login: %d %q %q", code, out, errOut)
	}
	st, err := os.Stat(sessionsPath(home))
	if err != nil || st.Mode() != 0o600 {
		t.Fatalf("sessions file: %v %v", st, err)
	}
	saved, _ := os.ReadFile(sessionsPath(home))
	if !strings.Contains(string(saved), `"token": "tok-`) {
		t.Errorf("no token saved: %s", saved)
	}
	// The token, not a password, authenticates now.
	if code, out, errOut := stratus(t, home, nil, tty{}, "whoami", "-q"); code != 0 || out != "user\n" {
		t.Errorf("whoami with the session: %d %q %q", code, out, errOut)
	}
	// Another username does not use user's session.
	if code, _, errOut := stratus(t, home, nil, tty{}, "whoami", "-u", "admin", "-p", fakecloud.AdminPassword, "-q"); code != 0 || errOut != "" {
		t.Errorf("another user: %d %q", code, errOut)
	}
	code, out, _ = stratus(t, home, nil, tty{}, "logout")
	if code != 0 || out != "Logged out of "+srv.URL+".\n" {
		t.Errorf("logout: %d %q", code, out)
	}
	if saved, _ := os.ReadFile(sessionsPath(home)); strings.Contains(string(saved), "tok-") {
		t.Errorf("the session is still saved: %s", saved)
	}
	if code, out, _ := stratus(t, home, nil, tty{}, "logout"); code != 0 || !strings.Contains(out, "You have no session") {
		t.Errorf("second logout: %d %q", code, out)
	}
	code, out, _ = stratus(t, home, nil, tty{}, "login", "--json", "-p", fakecloud.UserPassword)
	var j map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j["identity"] != "user" || strings.Contains(out, "tok-") {
		t.Errorf("login --json: %d %q", code, out)
	}
}

func TestVerboseHidesSecrets(t *testing.T) {
	t.Parallel()
	srv := cloud(t)
	home := t.TempDir()
	code, _, errOut := stratus(t, home, nil, tty{}, "login", "-vvv", "--endpoint", srv.URL, "-u", "admin", "-p", fakecloud.AdminPassword)
	if code != 0 || !strings.Contains(errOut, "> POST "+srv.URL+"/cimi/login") || !strings.Contains(errOut, `"password":"***"`) || strings.Contains(errOut, fakecloud.AdminPassword) || strings.Contains(errOut, "tok-") {
		t.Errorf("-vvv: %d %s", code, errOut)
	}
	code, _, errOut = stratus(t, home, nil, tty{}, "whoami", "-v", "--endpoint", srv.URL)
	if code != 0 || !strings.Contains(errOut, "> GET "+srv.URL+"/cimi/authn\n< 200 OK") || strings.Contains(errOut, "Authorization") {
		t.Errorf("-v: %d %s", code, errOut)
	}
}

func TestUnreachableAndTLS(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	home := t.TempDir()
	cfg := writeConfig(t, home, "[default]\nendpoint = http://"+dead+"\n")
	code, _, errOut := stratus(t, home, nil, tty{}, "cloud-entry-point")
	if code != 1 || errOut != "stratus: cannot reach http://"+dead+": connection refused — check the endpoint in "+cfg+" [default]\n" {
		t.Errorf("unreachable: %d %q", code, errOut)
	}
	if code, _, errOut := stratus(t, t.TempDir(), nil, tty{}, "whoami"); code != 1 || !strings.Contains(errOut, "no endpoint configured: run stratus copy-config and edit ") {
		t.Errorf("no endpoint: %d %q", code, errOut)
	}

	srv := httptest.NewUnstartedServer(fakecloud.New())
	srv.TLS = &tls.Config{}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(srv.URL, "https://")
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		warn bool
		want string
	}{
		{"https by default, untrusted", nil, nil, 1, false, "not signed by an authority you trust"},
		{"ca_file", map[string]string{"STRATUSLAB_CA_FILE": ca}, nil, 0, false, ""},
		{"--insecure", nil, []string{"--insecure"}, 0, true, ""},
		{"STRATUSLAB_INSECURE", map[string]string{"STRATUSLAB_INSECURE": "true"}, nil, 0, true, ""},
		{"bad insecure", map[string]string{"STRATUSLAB_INSECURE": "perhaps"}, nil, 1, false, `insecure = "perhaps" (from STRATUSLAB_INSECURE) is neither true nor false`},
	} {
		args := append([]string{"cloud-entry-point", "-q", "--endpoint", hostport}, tc.args...)
		code, _, errOut := stratus(t, home, tc.vars, tty{}, args...)
		if code != tc.code || strings.Contains(errOut, "warning: insecure") != tc.warn || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: %d %q", tc.name, code, errOut)
		}
	}
}

func TestCompletionAndLinks(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if code, out, errOut := stratus(t, home, nil, tty{}, "completion", shell); code != 0 || !strings.Contains(out, "stratus") {
			t.Errorf("completion %s: %d %q", shell, code, errOut)
		}
	}
	dir := t.TempDir()
	if code, out, errOut := stratus(t, home, nil, tty{}, "links", dir); code != 0 || !strings.HasPrefix(out, "Created ") {
		t.Fatalf("links: %d %q %q", code, out, errOut)
	}
	self, _ := os.Executable()
	for _, name := range []string{"stratus-copy-config", "stratus-hash-password", "stratus-login", "stratus-list"} {
		if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != self {
			t.Errorf("%s -> %q, %v", name, target, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "stratus-completion")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stratus-completion: %v", err)
	}
}
