package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestClientWalkthrough follows the user guide's client set-up against the
// all-in-one: stratus-copy-config, a configuration file with a selected
// section, the classic stratus-* names, then an administrator's work on
// service messages and on their own password, and the errors a person
// meets (wrong password, unreachable cloud).
func TestClientWalkthrough(t *testing.T) {
	c := newCloud(t)
	c.start()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	home := t.TempDir()
	bin := t.TempDir()
	run := func(wantCode int, stdin string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), code, wantCode, &out, &errOut)
		}
		return out.String() + errOut.String()
	}
	if err := os.Symlink(stratusBinary, filepath.Join(bin, "stratus")); err != nil {
		t.Fatal(err)
	}
	run(0, "", "stratus", "links", bin)

	run(0, "", "stratus-copy-config")
	cfg := filepath.Join(home, ".stratuslab", "stratuslab-user.cfg")
	ref, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatalf("stratus-copy-config wrote no %s: %v", cfg, err)
	}
	if !bytes.Contains(ref, []byte("endpoint")) || !bytes.Contains(ref, []byte("selected_section")) {
		t.Errorf("the reference configuration does not explain endpoint and selected_section:\n%s", ref)
	}
	password := adminPassword(t, c)
	writeConfig := func(pw string) {
		t.Helper()
		conf := fmt.Sprintf("[default]\nselected_section = local\nendpoint_timeout = 5\n\n[local]\nendpoint = %s\nusername = admin\npassword = %s\n", base, pw)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(password)
	waitFor(t, "the gateway to accept the administrator", func() bool {
		cmd := exec.Command(filepath.Join(bin, "stratus-whoami"))
		cmd.Env = []string{"HOME=" + home}
		out, err := cmd.CombinedOutput()
		return err == nil && strings.Contains(string(out), "admin")
	})

	msgFile := filepath.Join(home, "msg.json")
	if err := os.WriteFile(msgFile, []byte(`{"name": "StratusLab is Alive!", "description": "Deploying StratusLab clouds is fun."}`), 0o600); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(run(0, "", "stratus", "-q", "create", "ServiceMessage", "-f", msgFile, "--wait"))
	if !strings.HasPrefix(id, "ServiceMessage/") {
		t.Fatalf("stratus -q create printed %q, want the new id", id)
	}
	if out := run(0, "", "stratus-list", "ServiceMessage"); !strings.Contains(out, "StratusLab is Alive!") {
		t.Errorf("stratus-list ServiceMessage does not show the message:\n%s", out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(run(0, "", "stratus", "--json", "get", id)), &got); err != nil || got["description"] != "Deploying StratusLab clouds is fun." {
		t.Errorf("stratus --json get %s: %v %v", id, got, err)
	}
	// Anyone reads service messages, without credentials.
	if out := run(0, "", "stratus", "-u", "", "-p", "", "--endpoint", base, "list", "ServiceMessage"); !strings.Contains(out, "StratusLab is Alive!") {
		t.Errorf("an anonymous list does not show the message:\n%s", out)
	}
	run(0, "", "stratus-delete", id, "--wait")

	// The administrator changes their password to a hash made by
	// stratus-hash-password, as the administrator guide does with python.
	hash := strings.TrimSpace(run(0, "n3w-Passw0rd\n", "stratus-hash-password"))
	if bcrypt.CompareHashAndPassword([]byte(lastLine(hash)), []byte("n3w-Passw0rd")) != nil {
		t.Fatalf("stratus-hash-password printed %q, not a bcrypt hash of the password", hash)
	}
	var me map[string]any
	if err := json.Unmarshal([]byte(run(0, "", "stratus", "--json", "get", "User/admin")), &me); err != nil {
		t.Fatal(err)
	}
	delete(me, "operations")
	me["password"] = lastLine(hash)
	body, _ := json.Marshal(me)
	userFile := filepath.Join(home, "admin.json")
	if err := os.WriteFile(userFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	run(0, "", "stratus", "edit", "User/admin", "-f", userFile, "--wait")
	if out := run(1, "", "stratus-whoami"); !strings.Contains(out, "refused your credentials") {
		t.Errorf("the old password still works, or the refusal is unclear:\n%s", out)
	}
	writeConfig("n3w-Passw0rd")
	if out := run(0, "", "stratus-whoami"); !strings.Contains(out, "admin") {
		t.Errorf("stratus-whoami with the new password:\n%s", out)
	}

	if out := run(1, "", "stratus", "--endpoint", "http://"+freeAddr(t), "whoami"); !strings.Contains(out, "cannot reach") {
		t.Errorf("an unreachable endpoint is not explained:\n%s", out)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for range 600 {
		if ok() {
			return
		}
		sleep()
	}
	t.Fatalf("timed out waiting for %s", what)
}

func sleep() { time.Sleep(50 * time.Millisecond) }
