package e2e

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
)

// appliance builds (or reuses) the test appliance with scripts/appliance.sh
// and returns its path.
func appliance(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "stratuslab", "appliance", "appliance.img")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../../scripts/appliance.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the appliance: %v\n%s", err, b)
	}
	return out
}

// serialLine waits for a line of the guest's serial log that starts with
// the appliance's marker and holds want.
func serialLine(ctx context.Context, t *testing.T, path, want string) string {
	t.Helper()
	for ctx.Err() == nil {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := strings.TrimRight(sc.Text(), "\r")
				if i := strings.Index(line, "STRATUS-APPLIANCE: "); i >= 0 && strings.Contains(line[i:], want) {
					f.Close()
					return line[i:]
				}
			}
			f.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no %q on the serial console; it shows:\n%s", want, b)
	return ""
}

// TestRealGuest starts the test appliance through the whole stack on
// libvirt's embedded QEMU driver (TCG): the image is downloaded into the
// cache, the machine boots with its swap disk, its kernel reads the
// context disk (hostname, key), a volume is hot-plugged and unplugged, a
// stop waits for the guest to power off, and a kill gives everything back.
func TestRealGuest(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/deps.sh installs it): the real guest test did not run")
	}
	img := appliance(t)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, img) }))
	defer srv.Close()

	c := newCloud(t)
	c.start(func(cmd *exec.Cmd) {
		cmd.Args = append(cmd.Args, "--libvirt-uri", "qemu:///embed?root="+filepath.Join(c.dataDir, "libvirt"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)

	eventually(ctx, t, "the agent to register its host (embed probes QEMU first)", func() bool {
		n, _, err := admin.Query(ctx, "Host", sdk.Query{Filter: "state='AVAILABLE'"})
		return err == nil && n > 0
	})

	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuestTestKeyForTheApplianceOnly e2e@stratuslab"
	asked := time.Now()
	res, err := admin.Create(ctx, "Machine", map[string]any{
		"image": map[string]any{"url": srv.URL + "/appliance.img", "bytes": size, "sha1": sum},
		"type":  "t1.micro", "sshKey": key, "context": []map[string]any{{"key": "GREETING", "value": "hello from e2e"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done {
		if _, err := admin.WaitJob(ctx, res.JobID); err != nil {
			t.Fatal(err)
		}
	}
	var m struct {
		UUID          string `json:"uuid"`
		Hostname      string `json:"hostname"`
		DetailedState string `json:"detailedState"`
		StateMessage  string `json:"stateMessage"`
	}
	eventually(ctx, t, "the machine to be Running", func() bool {
		if err := admin.Get(ctx, res.ID, &m); err != nil {
			return false
		}
		if m.DetailedState == "Failed" {
			t.Fatalf("the machine failed: %s\nstderr:\n%s", m.StateMessage, c.stderr)
		}
		return m.DetailedState == "Running"
	})
	running := time.Since(asked)
	serial := filepath.Join(c.dataDir, "vmctl", "domains", m.UUID, "serial.log")
	first := serialLine(ctx, t, serial, "booted")
	firstLine := time.Since(asked)
	if got := serialLine(ctx, t, serial, "hostname="); !strings.Contains(got, m.Hostname) {
		t.Errorf("the guest reports %q, want hostname %s", got, m.Hostname)
	}
	if got := serialLine(ctx, t, serial, "key="); !strings.Contains(got, key[:40]) {
		t.Errorf("the guest reports %q, want the key", got)
	}
	// t1.micro: the root disk vda and its 512 MiB swap disk vdb, which the
	// guest lists in order ("disks=sr0 vda vdb").
	serialLine(ctx, t, serial, "vda vdb")
	if fi, err := os.Stat(filepath.Join(filepath.Dir(serial), "swap.img")); err != nil || fi.Size() != 512<<20 {
		t.Errorf("the swap disk on the host: %v, %v; want 512 MiB", fi, err)
	}
	serialLine(ctx, t, serial, "ready")
	t.Logf("Running %v after the request; the guest's first serial line (%q) %v after it", running, first, firstLine)

	vol := create(ctx, t, admin, "Volume", map[string]any{"size": 1, "tag": "hot-plug"})
	volUUID := strings.TrimPrefix(vol, "Volume/")
	if _, err := admin.Action(ctx, res.ID, "attach_volume", map[string]any{"volume": volUUID}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	serialLine(ctx, t, serial, "disk-added=vdc")
	if _, err := admin.Action(ctx, res.ID, "detach_volume", map[string]any{"volume": volUUID}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	serialLine(ctx, t, serial, "disk-removed=vdc")

	// stop presses the power button and waits for the guest, which the
	// appliance obeys: Stopped, with no word of a forced power-off.
	if _, err := admin.Action(ctx, res.ID, "stop", nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	eventually(ctx, t, "the machine to be Stopped", func() bool {
		return admin.Get(ctx, res.ID, &m) == nil && m.DetailedState == "Stopped"
	})
	if m.StateMessage != "" {
		t.Errorf("a guest that powered off by itself: the machine says %q", m.StateMessage)
	}
	serialLine(ctx, t, serial, "powering off")

	if _, err := admin.Delete(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the machine to be Done", func() bool {
		return admin.Get(ctx, res.ID, &m) == nil && m.DetailedState == "Done"
	})
	if _, err := os.Stat(filepath.Dir(serial)); !os.IsNotExist(err) {
		t.Errorf("the domain's files are still there: %v", err)
	}
	var v struct {
		Count int `json:"count"`
	}
	if err := admin.Get(ctx, vol, &v); err != nil || v.Count != 0 {
		t.Errorf("the hot-plugged volume after the kill: %+v %v", v, err)
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}
