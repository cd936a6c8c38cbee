package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"stratuslab.dev/client/internal/fakecloud"
)

const (
	imageID = "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF"
	diskA   = "aaaaaaaa-0000-4000-8000-00000000000a"
	diskB   = "bbbbbbbb-0000-4000-8000-00000000000b"
	diskC   = "cccccccc-0000-4000-8000-00000000000c"
	ghost   = "00000000-0000-4000-8000-00000000dead"
)

// machineWorld is a fake cloud, a home configured for it and the
// environment variables of the runs.
type machineWorld struct {
	t    *testing.T
	fc   *fakecloud.Cloud
	home string
	vars map[string]string
}

func newMachineWorld(t *testing.T, user, password string) *machineWorld {
	t.Helper()
	fc := fakecloud.New()
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = "+user+"\npassword = "+password+"\n")
	return &machineWorld{t: t, fc: fc, home: home, vars: map[string]string{}}
}

func (w *machineWorld) run(args ...string) (int, string, string) {
	w.t.Helper()
	return stratus(w.t, w.home, w.vars, tty{}, args...)
}

func (w *machineWorld) must(args ...string) string {
	w.t.Helper()
	code, out, errOut := w.run(args...)
	if code != 0 {
		w.t.Fatalf("%q: exit %d %q %q", args, code, out, errOut)
	}
	return out
}

// file writes a file in the world's home and returns its path.
func (w *machineWorld) file(name, text string) string {
	w.t.Helper()
	p := filepath.Join(w.home, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// machine returns the fake's document of the machine vmID.
func (w *machineWorld) machine(vmID int) map[string]any {
	w.t.Helper()
	m := w.fc.Machine(vmID)
	if m == nil {
		w.t.Fatalf("no machine %d", vmID)
	}
	return m
}

// running sets machines Running.
func (w *machineWorld) running(vmIDs ...int) {
	for _, n := range vmIDs {
		if !w.fc.MachineState(n, "Running", "") {
			w.t.Fatalf("no machine %d", n)
		}
	}
}

// publicIP is the address the fake gives machine n on the public network.
func publicIP(n int) string { return fmt.Sprintf("192.0.2.%d", n%250+1) }

func TestRunInstance(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)

	code, out, errOut := w.run("run-instance", imageID)
	want := "\n :::::::::::::::::::::::::\n :: Starting machine(s) ::\n :::::::::::::::::::::::::\n :: Starting 1 machine\n" +
		" :: Machine 1 (vm ID: 1)\n Public ip: " + publicIP(1) + "\n :: Done!\n"
	if code != 0 || out != want || !strings.Contains(errOut, "warning: no SSH public key ("+filepath.Join(w.home, ".ssh", "id_rsa.pub")+" does not exist)") {
		t.Fatalf("run-instance: %d\n%q\nwant\n%q\n%q", code, out, want, errOut)
	}
	m := w.machine(1)
	if m["image"].(map[string]any)["marketplace"] != imageID || m["type"] != "m1.small" || m["owner"] != "user" ||
		m["context"].(map[string]any)["sshKey"] != nil || m["detailedState"] != "Prolog" {
		t.Errorf("machine 1: %v", m)
	}

	key := w.file("k.pub", "ssh-ed25519 AAAA me@x\nssh-rsa BBBB me@y\n")
	code, out, errOut = w.run("stratus-run-instance", "-q", "-n", "2", "-t", "m1.large", "--context", "A=1#B=2", "--context", "C=3",
		"-k", key, "--vm-name", "web", "--cpu", "3", "--ram", "2048", "--swap", "0", imageID)
	if code != 0 || out != "2, "+publicIP(2)+"\n3, "+publicIP(3)+"\n" || errOut != "" {
		t.Fatalf("run-instance -q -n 2: %d %q %q", code, out, errOut)
	}
	m = w.machine(3)
	ctx := m["context"].(map[string]any)
	if m["name"] != "web" || m["type"] != "m1.large" || m["cpu"] != 3.0 || m["memory"] != 2048.0*1024 || m["swapMiB"] != 0.0 ||
		ctx["sshKey"] != "ssh-ed25519 AAAA me@x\nssh-rsa BBBB me@y" || ctx["method"] != "one" ||
		!reflect.DeepEqual(ctx["pairs"], []any{map[string]any{"key": "A", "value": "1"}, map[string]any{"key": "B", "value": "2"}, map[string]any{"key": "C", "value": "3"}}) {
		t.Errorf("machine 3: %v", m)
	}

	// Everything the options add to the body.
	putVolume(w.fc, diskA, "user", "2026-01-01T00:00:00Z", map[string]any{"tag": "base"})
	putVolume(w.fc, diskB, "user", "2026-01-02T00:00:00Z", nil)
	ctxFile := w.file("ctx.txt", "# mine\nA=from file\nD=4\n")
	cfg := w.file("c.yaml", "#cloud-config\n")
	code, out, _ = w.run("run-instance", "--context-file", ctxFile, "--context", "A=from args", "--cloud-init", "cloud-config,"+cfg,
		"--volatile-disk", "5", "--volatile-disk", "10", "--persistent-disk", strings.ToUpper(diskB), "--readonly-disk", imageID,
		"--local-ip", "--save", "--title", "web server", "--author-email", "me@example.org", "base")
	if code != 0 || !strings.Contains(out, " :: Machine 1 (vm ID: 4)\n Local ip: 10.1.0.5\n") {
		t.Fatalf("all options: %d %q", code, out)
	}
	m = w.machine(4)
	ctx = m["context"].(map[string]any)
	var roles []string
	for _, d := range m["disks"].([]any) {
		d := d.(map[string]any)
		roles = append(roles, fmt.Sprintf("%v %v %v", d["role"], d["sizeMiB"], d["volume"]))
	}
	if m["image"].(map[string]any)["volume"] != diskA || ctx["method"] != "cloud-init" || ctx["cloudInit"] != "cloud-config,"+cfg ||
		!reflect.DeepEqual(ctx["files"], map[string]any{cfg: "I2Nsb3VkLWNvbmZpZwo="}) ||
		!reflect.DeepEqual(ctx["pairs"], []any{map[string]any{"key": "A", "value": "from args"}, map[string]any{"key": "D", "value": "4"}}) ||
		!reflect.DeepEqual(m["save"], map[string]any{"title": "web server", "authorEmail": "me@example.org"}) ||
		!reflect.DeepEqual(roles, []string{"root 10240 <nil>", "swap 1536 <nil>", "volatile 5120 <nil>", "volatile 10240 <nil>",
			"persistent <nil> Volume/" + diskB, "readonly <nil> Volume/" + imageID, "context <nil> <nil>"}) {
		t.Errorf("machine 4: %v\n%q", m, roles)
	}
	vol := map[string]any{}
	if err := json.Unmarshal([]byte(w.must("get", "Volume/"+diskB, "--json")), &vol); err != nil || vol["machine"] != m["id"] {
		t.Errorf("the persistent disk is not the machine's: %v %v", vol, err)
	}

}

func TestRunInstanceImagesAndKeys(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	const sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
	w.file("id.pub", "ssh-ed25519 CCCC me@z\n")
	w.vars["STRATUSLAB_KEY"] = "~/id.pub"
	code, out, errOut := w.run("run-instance", "-q", "https://example.org/ttylinux.img", "--sha1", strings.ToUpper(sha), "--bytes", "1048576")
	if code != 0 || out != "1, "+publicIP(1)+"\n" || errOut != "" {
		t.Fatalf("URL image: %d %q %q", code, out, errOut)
	}
	m := w.machine(1)
	if !reflect.DeepEqual(m["image"], map[string]any{"url": "https://example.org/ttylinux.img", "bytes": 1048576.0, "sha1": sha}) ||
		m["context"].(map[string]any)["sshKey"] != "ssh-ed25519 CCCC me@z" {
		t.Errorf("machine 1: %v", m)
	}
	// Files named in the configuration's way, from home.
	w.must("run-instance", "-q", "--cloud-init", "ssh,~/id.pub", imageID)
	if files := w.machine(2)["context"].(map[string]any)["files"]; !reflect.DeepEqual(files, map[string]any{"~/id.pub": "c3NoLWVkMjU1MTkgQ0NDQyBtZUB6Cg=="}) {
		t.Errorf("~/id.pub: %v", files)
	}

	// Tags name the user's disks.
	putVolume(w.fc, diskA, "user", "2026-01-01T00:00:00Z", map[string]any{"tag": "dup"})
	putVolume(w.fc, diskB, "user", "2026-01-02T00:00:00Z", map[string]any{"tag": "dup"})
	putVolume(w.fc, diskC, "admin", "2026-01-02T00:00:00Z", map[string]any{"tag": "theirs"})
	for _, tc := range []struct{ image, want string }{
		{"dup", `image "dup": 2 disks have this tag (` + diskA + ", " + diskB + "): give the uuid of the one to start"},
		// A tag no disk of the user's has is a Marketplace tag.
		{"theirs", "No valid image has tag theirs. (400 invalid)"},
		{"KhGzWhB9ZZv5ZkLSZqm6pkWx7Z", `a Marketplace image id has 27 characters, "KhGzWhB9ZZv5ZkLSZqm6pkWx7Z" has 26`},
		{ghost, "The image " + ghost + " is not a volume of this cloud. (400 invalid)"},
	} {
		if code, _, errOut := w.run("run-instance", tc.image); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: %d %q; want %q", tc.image, code, errOut, tc.want)
		}
	}
	// The cloud refuses what it alone can judge; nothing is started.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "x1.huge"}, "There is no machine type x1.huge: see stratus run-instance --list-types. (400 invalid)"},
		{[]string{"--ram", "10"}, "A machine has 64 MiB to 1 TiB of RAM, not 10 MiB. (400 invalid)"},
		{[]string{"--cpu", "1000"}, "A machine has 1 to 128 CPUs, not 1000. (400 invalid)"},
		{[]string{"--persistent-disk", ghost}, "There is no volume " + ghost + "."},
	} {
		code, out, errOut := w.run(append([]string{"run-instance", imageID}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(out, "Machine 1") {
			t.Errorf("%q: %d %q %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if m := w.fc.Machine(3); m != nil {
		t.Errorf("a refused machine was made: %v", m)
	}
}

// TestRunInstanceStopsAtARefusal: when the cloud refuses a machine of
// several, the command says how many started.
func TestRunInstanceStopsAtARefusal(t *testing.T) {
	t.Parallel()
	fc := fakecloud.New()
	creates := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Method == http.MethodPost && r.URL.Path == "/cimi/Machine" {
			if creates++; creates == 2 {
				mu.Unlock()
				rw.Header().Set("Content-Type", "application/json")
				rw.WriteHeader(403)
				_, _ = rw.Write([]byte(`{"status":403,"code":"forbidden","message":"You may run 1 machine at most."}`))
				return
			}
		}
		mu.Unlock()
		fc.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = user\npassword = "+fakecloud.UserPassword+"\n")
	code, out, errOut := stratus(t, home, nil, tty{}, "run-instance", "-n", "3", imageID)
	if code != 1 || !strings.HasSuffix(out, " :: Machine 1 (vm ID: 1)\n Public ip: "+publicIP(1)+"\n") ||
		!strings.HasSuffix(errOut, "stratus: 1 of 3 machines started; the next was refused: the cloud does not let you do this (403): You may run 1 machine at most.\n") {
		t.Errorf("%d %q %q", code, out, errOut)
	}
}

func TestRunInstanceUsageErrors(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	cfg := w.file("c.yaml", "#cloud-config\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "give one IMAGE to start"},
		{[]string{imageID, imageID}, 2, "give one IMAGE to start"},
		{[]string{"-n", "0", imageID}, 2, "-n 0: give the number of machines to start, 1 or more"},
		{[]string{"-n", "x", imageID}, 2, `invalid argument "x" for "-n, --number"`},
		{[]string{"--context", "A=1#NOPE", imageID}, 2, `--context "NOPE": a context pair is KEY=VALUE`},
		{[]string{"--context", "1X=2", imageID}, 2, `--context "1X=2": the key "1X" is not a name`},
		{[]string{"--context-file", w.file("bad.ctx", "A=1\nB\n"), imageID}, 2, "bad.ctx line 2: a context pair is KEY=VALUE"},
		{[]string{"--context-method", "two", imageID}, 2, `--context-method "two": the method is one (the default) or cloud-init`},
		{[]string{"--cloud-init", "c.yaml", imageID}, 2, "each part is MIME,FILE"},
		{[]string{"--cloud-init", "cloud-config," + cfg, "--context-method", "one", imageID}, 2, "--cloud-init needs the cloud-init context method"},
		{[]string{"--volatile-disk", "0", imageID}, 2, "--volatile-disk 0: give the size of the disk in GiB"},
		{[]string{"--persistent-disk", "nope", imageID}, 2, `"nope" is not a disk uuid`},
		{[]string{"--persistent-disk", diskA, "-n", "2", imageID}, 2, "a disk attaches to one machine at a time"},
		{[]string{"--readonly-disk", "short", imageID}, 2, `--readonly-disk "short" is neither a Marketplace image id`},
		{[]string{"--local-ip", "--private-ip", imageID}, 2, "--local-ip and --private-ip exclude each other"},
		{[]string{"--title", "x", imageID}, 2, "--title describes the image --save makes: give --save too"},
		{[]string{"--save", imageID}, 2, "--save needs a --title"},
		{[]string{"--cpu", "0", imageID}, 2, "--cpu 0: give a number of CPUs, 1 or more"},
		{[]string{"--ram", "-5", imageID}, 2, "--ram -5: give MiB of RAM"},
		{[]string{"--swap", "-1", imageID}, 2, "--swap -1: give MiB of swap, 0 or more"},
		{[]string{"-t", "", imageID}, 2, `-t "" is not a machine type`},
		{[]string{"--vm-name", " ", imageID}, 2, "--vm-name is empty"},
		{[]string{"--wait-timeout", "0s", imageID}, 2, "--wait-timeout 0s"},
		{[]string{"--sha1", "abc", imageID}, 2, "--sha1 and --bytes describe an image given by URL"},
		{[]string{"https://example.org/i.img"}, 2, "needs its SHA-1 checksum"},
		{[]string{"ftp://example.org/i.img"}, 2, "only http and https URLs"},
		{[]string{"-k", filepath.Join(w.home, "missing.pub"), imageID}, 1, "cannot use your SSH public key (set by -k/--key)"},
		{[]string{"-k", w.file("id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n"), imageID}, 1, "is a private key: give the public one"},
		{[]string{"--context-file", filepath.Join(w.home, "missing.ctx"), imageID}, 1, "cannot read the context file"},
	} {
		before := len(w.fc.Requests())
		code, out, errOut := w.run(append([]string{"run-instance"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%q: exit %d %q %q; want %d %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
		if n := len(w.fc.Requests()) - before; n != 0 {
			t.Errorf("%q: %d requests for a mistake found before any", tc.args, n)
		}
	}
}

func TestRunInstanceWait(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	code, out, errOut := w.run("run-instance", "--wait", imageID)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 0 || !strings.HasSuffix(out, " Public ip: "+publicIP(1)+"\n :: Done!\n") ||
		!slices.Equal(lines[1:], []string{" :: Machine 1 (vm ID: 1): Prolog", " :: Machine 1 (vm ID: 1): Boot", " :: Machine 1 (vm ID: 1): Running"}) {
		t.Fatalf("--wait: %d %q\n%s", code, out, errOut)
	}
	if m := w.machine(1); m["detailedState"] != "Running" {
		t.Errorf("after --wait: %v", m["detailedState"])
	}
	code, out, errOut = w.run("run-instance", "--wait", "-q", "-n", "2", imageID)
	if code != 0 || out != "2, "+publicIP(2)+"\n3, "+publicIP(3)+"\n" || errOut != "" {
		t.Errorf("--wait -q: %d %q %q", code, out, errOut)
	}
	code, out, errOut = w.run("run-instance", "--wait", "--vm-name", "doomed", imageID)
	if code != 1 || !strings.Contains(out, "(vm ID: 4)") || strings.Contains(out, "Done!") ||
		!strings.HasSuffix(errOut, "stratus: machine 4 did not start: it is Failed: no host has room for this machine\n") {
		t.Errorf("a machine that fails: %d %q %q", code, out, errOut)
	}
	code, _, errOut = w.run("run-instance", "--wait", "--wait-timeout", "300ms", "--vm-name", "stuck", imageID)
	if code != 1 || !strings.Contains(errOut, "machine 5 is still Pending after 300ms; it may yet start: see stratus describe-instance 5") {
		t.Errorf("a machine that does not start in time: %d %q", code, errOut)
	}
	code, out, _ = w.run("run-instance", "--wait", "--json", imageID)
	var docs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &docs) != nil || len(docs) != 1 || docs[0]["vmId"] != 6.0 || docs[0]["detailedState"] != "Running" {
		t.Errorf("--wait --json: %d %q", code, out)
	}
}

func TestDescribeAndKillInstance(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	header := "id  state     vcpu memory    cpu% host/ip                 name\n"
	if out := w.must("describe-instance"); out != header {
		t.Errorf("no machine: %q", out)
	}
	if out := w.must("describe-instance", "--json"); out != "[]\n" {
		t.Errorf("no machine, --json: %q", out)
	}
	w.must("run-instance", "-q", "-n", "3", imageID)
	w.must("run-instance", "-q", "--local-ip", "-t", "c1.xlarge", "--vm-name", "db", imageID)
	w.running(1, 2)
	w.fc.MachineState(3, "Failed", "no host has room for this machine")
	want := header +
		"1   Running   1    1572864   0    vm-1.example.org        one-1\n" +
		"2   Running   1    1572864   0    vm-2.example.org        one-2\n" +
		"3   Failed    1    1572864   0    vm-3.example.org        one-3\n" +
		"    no host has room for this machine\n" +
		"4   Prolog    4    6291456   0    10.1.0.5                db\n"
	if out := w.must("describe-instance"); out != want {
		t.Errorf("describe-instance:\n%s\nwant\n%s", out, want)
	}
	// Each read moves a starting machine on (run-instance read machine 4
	// once). By id, in the order given.
	uuid4 := w.machine(4)["uuid"].(string)
	want = header +
		"4   Boot      4    6291456   0    10.1.0.5                db\n" +
		"1   Running   1    1572864   0    vm-1.example.org        one-1\n"
	if out := w.must("stratus-describe-instance", "Machine/"+uuid4, "1", "4"); out != want {
		t.Errorf("describe-instance ID:\n%s\nwant\n%s", out, want)
	}
	if out := w.must("describe-instance", "-q"); out != "1\n2\n3\n4\n" {
		t.Errorf("-q: %q", out)
	}
	if out := w.must("describe-instance", "-v", "1"); !strings.HasPrefix(out, "id  state     vcpu memory    cpu% host/ip                 type      ip              uuid") {
		t.Errorf("-v: %q", out)
	}
	if out := w.must("describe-instance", "-vv", "1"); !strings.Contains(out, ":: MACHINE 1 "+w.machine(1)["uuid"].(string)+"\n        name: one-1\n        owner: user\n        state: Running since ") {
		t.Errorf("-vv: %q", out)
	}
	for _, args := range [][]string{{"-vvv", "1", "2"}, {"--json", "1", "2"}} {
		var docs []map[string]any
		out := w.must(append([]string{"describe-instance"}, args...)...)
		if json.Unmarshal([]byte(out), &docs) != nil || len(docs) != 2 || docs[1]["vmId"] != 2.0 {
			t.Errorf("%q: %q", args, out)
		}
	}
	// -v is about detail here, not the requests.
	if _, _, errOut := w.run("describe-instance", "-v"); errOut != "" {
		t.Errorf("-v traced: %q", errOut)
	}
	code, out, errOut := w.run("describe-instance", "2", "99")
	if code != 1 || !strings.Contains(out, "\n2   Running") || errOut != "stratus: no machine 99: it does not exist, or it is another user's (see stratus describe-instance)\n" {
		t.Errorf("a missing machine: %d %q %q", code, out, errOut)
	}
	before := len(w.fc.Requests())
	if code, _, errOut := w.run("describe-instance", "1", "one-1"); code != 2 || !strings.Contains(errOut, `"one-1" is not a machine: give its vm ID`) || len(w.fc.Requests()) != before {
		t.Errorf("a bad id: %d %q", code, errOut)
	}

	// kill-instance prints nothing; the machine stays, Done.
	code, out, errOut = w.run("kill-instance", "1")
	if code != 0 || out != "" || errOut != "" {
		t.Errorf("kill-instance: %d %q %q", code, out, errOut)
	}
	want = header + "1   Done      1    1572864   0    vm-1.example.org        one-1\n"
	if out := w.must("describe-instance", "1"); out != want {
		t.Errorf("killed:\n%s\nwant\n%s", out, want)
	}
	if out := w.must("describe-instance", "-q"); out != "2\n3\n4\n" {
		t.Errorf("the list shows ended machines: %q", out)
	}
	if out := w.must("describe-instance", "-q", "--all"); out != "1\n2\n3\n4\n" {
		t.Errorf("--all: %q", out)
	}
	code, _, errOut = w.run("kill-instance", "1")
	if code != 1 || errOut != "stratus: machine 1: Machine 1 is already Done. (409 conflict)\n" {
		t.Errorf("killing twice: %d %q", code, errOut)
	}
	code, out, errOut = w.run("stratus-kill-instance", "2", "99", uuid4, "1")
	if code != 1 || out != "" || errOut != "stratus: machine 1: Machine 1 is already Done. (409 conflict)\nstratus: no machine 99: it does not exist, or it is another user's (see stratus describe-instance)\n" {
		t.Errorf("several: %d %q %q", code, out, errOut)
	}
	if out := w.must("describe-instance", "-q"); out != "3\n" {
		t.Errorf("after killing 2 and 4: %q", out)
	}
	if code, _, errOut := w.run("kill-instance"); code != 2 || !strings.Contains(errOut, "requires at least 1 arg") {
		t.Errorf("kill-instance alone: %d %q", code, errOut)
	}
	if out := w.must("kill-instance", "3", "--json"); strings.TrimSpace(out) != `[`+"\n  \"Machine/"+w.machine(3)["uuid"].(string)+"\"\n]" {
		t.Errorf("--json: %q", out)
	}

	// Users see their own machines; admin sees all.
	w.vars["STRATUSLAB_USERNAME"], w.vars["STRATUSLAB_PASSWORD"] = "admin", fakecloud.AdminPassword
	w.must("run-instance", "-q", imageID)
	if out := w.must("describe-instance", "-q", "-a"); out != "1\n2\n3\n4\n5\n" {
		t.Errorf("admin: %q", out)
	}
	delete(w.vars, "STRATUSLAB_USERNAME")
	delete(w.vars, "STRATUSLAB_PASSWORD")
	if code, _, errOut := w.run("kill-instance", "5"); code != 1 || !strings.Contains(errOut, "no machine 5") {
		t.Errorf("another user's machine: %d %q", code, errOut)
	}
}

func TestShutdownInstance(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	w.must("run-instance", "-q", imageID)
	w.must("run-instance", "-q", "--vm-name", "stuck", imageID)
	w.running(1)
	code, out, errOut := w.run("shutdown-instance", "1", "--save", "--title", "web", "--author", "me", "--image-version", "1.2")
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("shutdown-instance: %d %q %q", code, out, errOut)
	}
	m := w.machine(1)
	if m["detailedState"] != "Shutdown" || !reflect.DeepEqual(m["save"], map[string]any{"title": "web", "author": "me", "imageVersion": "1.2"}) {
		t.Errorf("after shutdown: %v", m)
	}
	var states []string
	for range 3 {
		out := w.must("describe-instance", "1")
		states = append(states, strings.Fields(strings.Split(out, "\n")[1])[1])
	}
	if !slices.Equal(states, []string{"Shutdown", "Epilog", "Done"}) {
		t.Errorf("states: %q", states)
	}
	if out := w.must("describe-instance", "-vv", "1"); !strings.Contains(out, "        saved disk: ") {
		t.Errorf("no saved disk: %q", out)
	}
	code, _, errOut = w.run("shutdown-instance", "2")
	if code != 1 || errOut != "stratus: machine 2: Machine 2 is Pending, not Running. (409 conflict)\n" {
		t.Errorf("a pending machine: %d %q", code, errOut)
	}
	if code, _, errOut := w.run("shutdown-instance", "2", "--comment", "x"); code != 2 || !strings.Contains(errOut, "--comment describes the image --save makes") {
		t.Errorf("--comment alone: %d %q", code, errOut)
	}
}

func TestAttachAndDetachVolume(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	for _, u := range []string{diskA, diskB, diskC} {
		putVolume(w.fc, u, "user", "2026-01-01T00:00:00Z", nil)
	}
	w.must("run-instance", "-q", "--persistent-disk", diskC, imageID)
	w.must("run-instance", "-q", imageID)
	w.must("run-instance", "-q", "--vm-name", "stuck", imageID)
	w.running(1, 2)
	uuid1 := w.machine(1)["uuid"].(string)

	// m1.small: vda root, vdb swap, vdc the disk given at start.
	if out := w.must("attach-volume", "-i", "1", diskA); out != "ATTACHED "+diskA+" in VM 1 on /dev/vdd\n" {
		t.Errorf("attach-volume: %q", out)
	}
	if out := w.must("stratus-attach-volume", "--instance", "Machine/"+uuid1, diskB, "-q"); out != "/dev/vde\n" {
		t.Errorf("attach-volume -q: %q", out)
	}
	vol := map[string]any{}
	if err := json.Unmarshal([]byte(w.must("get", "Volume/"+diskA, "--json")), &vol); err != nil || vol["machine"] != "Machine/"+uuid1 || vol["device"] != "vdd" {
		t.Errorf("the attached disk: %v %v", vol, err)
	}
	if out := w.must("describe-instance", "-vv", "1"); !strings.Contains(out, "        disk vdd: persistent "+diskA+" hot-plugged\n") {
		t.Errorf("describe-instance -vv: %q", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"attach-volume", "-i", "2", diskA}, 1, "stratus: disk " + diskA + ": Volume " + diskA + " is attached to machine " + uuid1 + "; detach it first. (409 conflict)\n"},
		{[]string{"attach-volume", "-i", "3", diskA}, 1, "stratus: disk " + diskA + ": Machine 3 is Pending, not Running. (409 conflict)\n"},
		{[]string{"attach-volume", "-i", "9", diskA}, 1, "stratus: no machine 9: it does not exist"},
		{[]string{"attach-volume", diskA}, 2, "give the machine with -i/--instance VM_ID"},
		{[]string{"attach-volume", "-i", "x", diskA}, 2, `"x" is not a machine`},
		{[]string{"attach-volume", "-i", "1", "nope"}, 2, `"nope" is not a disk uuid`},
		{[]string{"attach-volume", "-i", "1"}, 2, "requires at least 1 arg"},
		{[]string{"detach-volume", "-i", "1", diskC}, 1, "stratus: disk " + diskC + ": Disk have not been hot-plugged (409 conflict)\n"},
		{[]string{"detach-volume", "-i", "2", diskA}, 1, "Volume " + diskA + " is not attached to machine 2. (409 conflict)"},
		{[]string{"detach-volume", "-i", "1", ghost}, 1, "stratus: disk " + ghost + ": Volume/" + ghost + " does not exist or you may not see it. (404 not_found)\n"},
	} {
		code, out, errOut := w.run(tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: %d %q %q; want %d %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}

	if out := w.must("detach-volume", "-i", "1", diskA); out != "DETACHED "+diskA+" from VM 1\n" {
		t.Errorf("detach-volume: %q", out)
	}
	vol = map[string]any{}
	if err := json.Unmarshal([]byte(w.must("get", "Volume/"+diskA, "--json")), &vol); err != nil || vol["machine"] != nil || vol["state"] != "AVAILABLE" {
		t.Errorf("the detached disk: %v %v", vol, err)
	}
	// Several disks: the good ones are handled, the others reported.
	code, out, errOut := w.run("attach-volume", "-i", "2", diskA, ghost, diskB, diskA)
	if code != 1 || out != "ATTACHED "+diskA+" in VM 2 on /dev/vdc\n" ||
		errOut != "stratus: disk "+ghost+": Volume/"+ghost+" does not exist or you may not see it. (404 not_found)\n"+
			"stratus: disk "+diskB+": Volume "+diskB+" is attached to machine "+uuid1+"; detach it first. (409 conflict)\n" {
		t.Errorf("several: %d %q %q", code, out, errOut)
	}
	if out := w.must("detach-volume", "-q", "-i", "2", diskA); out != diskA+"\n" {
		t.Errorf("detach-volume -q: %q", out)
	}
	var res []map[string]any
	if err := json.Unmarshal([]byte(w.must("attach-volume", "--json", "-i", "2", diskA)), &res); err != nil || len(res) != 1 || res[0]["device"] != "vdc" || res[0]["vmId"] != 2.0 {
		t.Errorf("--json: %v %v", res, err)
	}
	// Killing a machine releases its disks.
	w.must("kill-instance", "1")
	for _, u := range []string{diskB, diskC} {
		vol = map[string]any{}
		if err := json.Unmarshal([]byte(w.must("get", "Volume/"+u, "--json")), &vol); err != nil || vol["machine"] != nil {
			t.Errorf("%s after kill: %v %v", u, vol, err)
		}
	}
}

// TestAttachedDevice: the device comes from the action's answer when the
// cloud gives it there.
func TestAttachedDevice(t *testing.T) {
	t.Parallel()
	fc := fakecloud.New()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/attach_volume") {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`{"device": "/dev/vdq"}`))
			return
		}
		fc.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = user\npassword = "+fakecloud.UserPassword+"\n")
	if code, _, errOut := stratus(t, home, nil, tty{}, "run-instance", "-q", imageID); code != 0 {
		t.Fatal(errOut)
	}
	fc.MachineState(1, "Running", "")
	code, out, errOut := stratus(t, home, nil, tty{}, "attach-volume", "-i", "1", diskA)
	if code != 0 || out != "ATTACHED "+diskA+" in VM 1 on /dev/vdq\n" {
		t.Errorf("device from the answer: %d %q %q", code, out, errOut)
	}
}

func TestConnectInstance(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	w.must("run-instance", "-q", imageID)
	w.must("run-instance", "-q", "--vm-name", "stuck", imageID)
	w.running(1)
	bin := t.TempDir()
	argsFile := filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '" + argsFile + "'\necho hello from ssh\nexit ${FAKE_SSH_EXIT:-0}\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	w.vars["PATH"] = filepath.Join(t.TempDir(), "empty") + string(os.PathListSeparator) + bin
	sshArgs := func() []string {
		data, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(data))
	}
	code, out, errOut := w.run("connect-instance", "1")
	if code != 0 || out != "hello from ssh\n" || errOut != "" || !slices.Equal(sshArgs(), []string{"root@" + publicIP(1)}) {
		t.Errorf("connect-instance: %d %q %q %q", code, out, errOut, sshArgs())
	}
	priv := w.file("cloud", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
	w.file("cloud.pub", "ssh-ed25519 AAAA\n")
	for _, k := range []string{priv, priv + ".pub"} {
		uuid2 := w.machine(2)["uuid"].(string)
		code, _, errOut = w.run("stratus-connect-instance", "-k", k, uuid2, "-p", "2222", "uptime")
		if code != 0 || !slices.Equal(sshArgs(), []string{"-i", priv, "root@" + publicIP(2), "-p", "2222", "uptime"}) ||
			errOut != "stratus: machine 2 is Pending, not Running: ssh may fail\n" {
			t.Errorf("-k %s: %d %q %q", k, code, errOut, sshArgs())
		}
	}
	if code, _, errOut := w.run("connect-instance", "-k", filepath.Join(w.home, "nope"), "1"); code != 2 || !strings.Contains(errOut, "the private key cannot be read") {
		t.Errorf("a missing key: %d %q", code, errOut)
	}
	if code, _, errOut := w.run("connect-instance", "7"); code != 1 || !strings.Contains(errOut, "no machine 7") {
		t.Errorf("no such machine: %d %q", code, errOut)
	}
	failing := filepath.Join(t.TempDir(), "ssh")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\nexit 255\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	w.vars["PATH"] = filepath.Dir(failing)
	if code, _, errOut := w.run("connect-instance", "1"); code != 1 || errOut != "stratus: ssh root@"+publicIP(1)+": exit status 255\n" {
		t.Errorf("ssh failing: %d %q", code, errOut)
	}
	w.vars["PATH"] = t.TempDir()
	if code, _, errOut := w.run("connect-instance", "1"); code != 1 || !strings.Contains(errOut, "cannot find ssh in your PATH") {
		t.Errorf("no ssh: %d %q", code, errOut)
	}
}

func TestListTypes(t *testing.T) {
	t.Parallel()
	var table strings.Builder
	writeTypes(&table, standardTypes(), "m1.small")

	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	if out := w.must("run-instance", "-l"); out != table.String() {
		t.Errorf("--list-types:\n%s\nwant\n%s", out, table.String())
	}
	if !slices.Contains(w.fc.Requests(), "GET /cimi/MachineConfiguration") {
		t.Errorf("the cloud's types were not read: %q", w.fc.Requests())
	}
	if out := w.must("stratus-run-instance", "--list-types", "-t", "m1.large", "ignored-image"); !strings.Contains(out, "\n* m1.large ") {
		t.Errorf("-t m1.large: %q", out)
	}
	if out := w.must("run-instance", "-l", "-q"); out != "c1.medium\nc1.xlarge\nm1.large\nm1.medium\nm1.small\nm1.xlarge\nt1.micro\n" {
		t.Errorf("-l -q: %q", out)
	}
	var types []map[string]any
	if err := json.Unmarshal([]byte(w.must("run-instance", "-l", "--json")), &types); err != nil || len(types) != 7 || types[4]["memory"] != 1572864.0 {
		t.Errorf("-l --json: %v %v", types, err)
	}

	// A cloud without the collection, and no cloud at all: the standard table.
	fc := fakecloud.New()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/cimi/MachineConfiguration") {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(404)
			_, _ = rw.Write([]byte(`{"status":404,"code":"not_found","message":"There is no collection MachineConfiguration."}`))
			return
		}
		fc.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	for _, vars := range []map[string]string{{"STRATUSLAB_ENDPOINT": srv.URL}, nil} {
		code, out, errOut := stratus(t, t.TempDir(), vars, tty{}, "run-instance", "-l")
		if code != 0 || out != table.String() {
			t.Errorf("%v: %d %q %q", vars, code, out, errOut)
		}
	}
}

func TestPrepareContext(t *testing.T) {
	t.Parallel()
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	if out := w.must("prepare-context", "--context", "A=1#B=2", "--context", "C= three "); out != "A=1\nB=2\nC=three\n" {
		t.Errorf("prepare-context: %q", out)
	}
	base := w.file("base.ctx", "# shared\nA=0\nZ=26\n")
	key := w.file("k.pub", "ssh-ed25519 AAAA me@x\n")
	out := filepath.Join(w.home, "web.ctx")
	code, stdout, errOut := w.run("stratus-prepare-context", "--context-file", base, "--context", "A=1#B=x=y", "-k", key, "-o", out)
	data, _ := os.ReadFile(out)
	st, _ := os.Stat(out)
	if code != 0 || stdout != "" || errOut != "Wrote 4 pairs to "+out+".\n" || string(data) != "A=1\nZ=26\nB=x=y\nSSH_PUBLIC_KEY=ssh-ed25519 AAAA me@x\n" || st.Mode() != 0o600 {
		t.Errorf("-o: %d %q %q %q %v", code, stdout, errOut, data, st.Mode())
	}
	// run-instance reads it back as the same pairs.
	w.must("run-instance", "-q", "--context-file", out, imageID)
	pairs := w.machine(1)["context"].(map[string]any)["pairs"]
	if !reflect.DeepEqual(pairs, []any{map[string]any{"key": "A", "value": "1"}, map[string]any{"key": "Z", "value": "26"},
		map[string]any{"key": "B", "value": "x=y"}, map[string]any{"key": "SSH_PUBLIC_KEY", "value": "ssh-ed25519 AAAA me@x"}}) {
		t.Errorf("read back: %v", pairs)
	}
	if stdout := w.must("prepare-context", "--context", "A=1", "--json"); stdout != "[\n  {\n    \"key\": \"A\",\n    \"value\": \"1\"\n  }\n]\n" {
		t.Errorf("--json: %q", stdout)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "nothing to write"},
		{[]string{"--context", "A"}, 2, `--context "A": a context pair is KEY=VALUE`},
		{[]string{"--context", "A=1", "extra"}, 2, "unknown command"},
		{[]string{"-k", w.file("two.pub", "ssh-rsa A\nssh-rsa B\n")}, 1, "holds 2 keys; a context line carries one"},
		{[]string{"--context-file", filepath.Join(w.home, "missing")}, 1, "cannot read the context file"},
	} {
		if code, _, errOut := w.run(append([]string{"prepare-context"}, tc.args...)...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: %d %q; want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestMachineLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, errOut := stratus(t, t.TempDir(), nil, tty{}, "links", dir, "-q"); code != 0 {
		t.Fatalf("links: %d %q", code, errOut)
	}
	for _, name := range []string{"run-instance", "describe-instance", "kill-instance", "shutdown-instance", "connect-instance", "prepare-context", "attach-volume", "detach-volume"} {
		if _, err := os.Readlink(filepath.Join(dir, "stratus-"+name)); err != nil {
			t.Errorf("stratus-%s: %v", name, err)
		}
	}
	w := newMachineWorld(t, "user", fakecloud.UserPassword)
	if code, out, errOut := w.run(filepath.Join(dir, "stratus-describe-instance")); code != 0 || !strings.HasPrefix(out, "id  state") {
		t.Errorf("stratus-describe-instance: %d %q %q", code, out, errOut)
	}
}
