package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/cimi"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
)

// cli runs the stratus client (by its classic names) as one user.
type cli struct {
	t    *testing.T
	home string
	bin  string
}

// newCLI links the stratus-* names and writes a configuration for user.
func newCLI(t *testing.T, base, user, password string) *cli {
	t.Helper()
	c := &cli{t: t, home: t.TempDir(), bin: t.TempDir()}
	if err := os.Symlink(stratusBinary, filepath.Join(c.bin, "stratus")); err != nil {
		t.Fatal(err)
	}
	c.run(0, "stratus", "links", c.bin)
	dir := filepath.Join(c.home, ".stratuslab")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[default]\nendpoint = %s\nusername = %s\npassword = %s\n", base, user, password)
	if err := os.WriteFile(filepath.Join(dir, "stratuslab-user.cfg"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs a command and checks its exit status; it returns stdout and
// stderr together.
func (c *cli) run(wantCode int, name string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Env = []string{"HOME=" + c.home, "PATH=" + os.Getenv("PATH"), "TZ=UTC"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	if code != wantCode {
		c.t.Fatalf("%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), code, wantCode, &out, &errOut)
	}
	return out.String() + errOut.String()
}

var diskLine = regexp.MustCompile(`(?m)^DISK ([0-9a-f-]{36})$`)

// TestVolumes runs the tutorial's storage check verbatim with the CLI,
// then the guide's persistent-disk lifecycle for two users: public and
// private disks, rights, filters, updates, bad input, quotas, and a disk a
// machine holds.
func TestVolumes(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	for _, u := range []string{"alice", "bob"} {
		create(ctx, t, admin, "User", map[string]any{
			"username": u, "password": u + "-secret-pw", "enabled": true,
			"first-name": u, "last-name": "Tester", "email": u + "@example.org",
		})
	}
	alice := newCLI(t, base, "alice", "alice-secret-pw")
	bob := newCLI(t, base, "bob", "bob-secret-pw")
	volumes := filepath.Join(c.dataDir, "pdisk", "volumes")

	// The tutorial: describe, create 1 GiB tagged HELLO, describe, delete,
	// describe again.
	if out := alice.run(0, "stratus-describe-volumes"); strings.TrimSpace(out) != "No disk to show" {
		t.Fatalf("stratus-describe-volumes on a new cloud printed %q", out)
	}
	out := alice.run(0, "stratus-create-volume", "--size", "1", "--tag", "HELLO")
	m := diskLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("stratus-create-volume printed %q, want DISK <uuid>", out)
	}
	hello := m[1]
	if _, err := os.Stat(filepath.Join(volumes, hello+".qcow2")); err != nil {
		t.Errorf("the new disk has no storage: %v", err)
	}
	out = alice.run(0, "stratus-describe-volumes")
	for _, want := range []string{":: DISK " + hello, "tag: HELLO", "size: 1", "owner: alice", "visibility: private", "users: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("stratus-describe-volumes lacks %q:\n%s", want, out)
		}
	}
	if out := alice.run(0, "stratus-delete-volume", hello); strings.TrimSpace(out) != "DELETED "+hello {
		t.Errorf("stratus-delete-volume printed %q", out)
	}
	if out := alice.run(0, "stratus-describe-volumes"); strings.TrimSpace(out) != "No disk to show" {
		t.Errorf("after the delete, stratus-describe-volumes printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(volumes, hello+".qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted disk's storage is still there: %v", err)
	}

	// The guide: private and public disks of two users.
	private := diskLine.FindStringSubmatch(alice.run(0, "stratus-create-volume", "--size=5", "--tag=myprivate-disk"))[1]
	public := diskLine.FindStringSubmatch(alice.run(0, "stratus-create-volume", "--public", "--size=10", "--tag=mypublic-disk"))[1]
	bobs := diskLine.FindStringSubmatch(bob.run(0, "stratus-create-volume", "--public", "--size=2", "--tag=mypublic-disk"))[1]
	out = bob.run(0, "stratus-describe-volumes")
	if !strings.Contains(out, public) || !strings.Contains(out, bobs) || strings.Contains(out, private) {
		t.Errorf("bob sees public disks and his own, not alice's private one:\n%s", out)
	}
	out = alice.run(0, "stratus-describe-volumes", "--filter", "tag=mypublic-disk")
	if !strings.Contains(out, public) || !strings.Contains(out, bobs) || strings.Contains(out, private) {
		t.Errorf("--filter tag=mypublic-disk:\n%s", out)
	}
	out = bob.run(1, "stratus-delete-volume", public)
	if !strings.Contains(out, "Not enough rights to delete disk") {
		t.Errorf("bob deleting alice's public disk:\n%s", out)
	}
	out = bob.run(1, "stratus-delete-volume", private)
	if !strings.Contains(out, "Not enough rights to delete disk") {
		t.Errorf("bob deleting alice's private disk:\n%s", out)
	}
	alice.run(0, "stratus-update-volume", "--tag", "renamed", "--public", private)
	out = bob.run(0, "stratus-describe-volumes", private)
	if !strings.Contains(out, "tag: renamed") || !strings.Contains(out, "visibility: public") {
		t.Errorf("after alice's update, bob sees:\n%s", out)
	}

	// Bad input: a 400 with a clear message, and nothing made.
	asAlice := sdk.New(base, sdk.WithBasicAuth("alice", "alice-secret-pw"))
	before := countVolumes(ctx, t, asAlice)
	files := countFiles(t, volumes)
	for _, body := range []map[string]any{
		{"size": 0}, {"size": 2000}, {"size": -1}, {"size": "ten"}, {"size": 1.5}, {},
		{"size": 1, "visibility": "FRIENDS"},
		{"size": 1, "tag": strings.Repeat("x", 1000000)},
		{"size": 1, "tag": "a\x00b"},
		{"size": 1, "owner": "bob"},
	} {
		_, err := asAlice.Create(ctx, "Volume", body)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Message == "" {
			t.Errorf("create %.80v: %v, want a 400 with a message", body, err)
		}
	}
	for _, id := range []string{"Volume/not-a-uuid", "Volume/0F8E8A4C-1D2B-4C3D-9E8F-0A1B2C3D4E5F", "Volume/0f8e8a4c-1d2b-4c3d-9e8f"} {
		_, err := asAlice.Delete(ctx, id)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "uuid") {
			t.Errorf("delete %s: %v, want a 400 about the uuid", id, err)
		}
		err = asAlice.Get(ctx, id, new(map[string]any))
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
			t.Errorf("get %s: %v, want a 400", id, err)
		}
	}
	if out := alice.run(2, "stratus-delete-volume", "not-a-uuid"); !strings.Contains(out, "uuid") {
		t.Errorf("stratus-delete-volume of a bad uuid:\n%s", out)
	}
	if got := countVolumes(ctx, t, asAlice); got != before {
		t.Errorf("bad input changed the volumes: %d, then %d", before, got)
	}
	if got := countFiles(t, volumes); got != files {
		t.Errorf("bad input changed the storage: %d files, then %d", files, got)
	}

	// A disk a machine holds: not deleted (409 naming the machine), not
	// hot-unplugged when it came with the machine, free again at the end.
	cmds := newCommander(t, c.natsURL())
	aliceActor := &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	machine := uuid.NewString()
	if o := cmds.wait(ctx, cmds.send(subject.CmdVolumeAttach, aliceActor, &volumev1.AttachVolume{Uuid: private, MachineUuid: machine, Device: "vdb"})); o.failed {
		t.Fatalf("attach at launch: %+v", o)
	}
	out = alice.run(1, "stratus-delete-volume", private)
	if !strings.Contains(out, "409") || !strings.Contains(out, machine) {
		t.Errorf("deleting an attached disk:\n%s", out)
	}
	out = alice.run(0, "stratus-describe-volumes", private)
	if !strings.Contains(out, "machine: "+machine) || !strings.Contains(out, "users: 1") {
		t.Errorf("an attached disk is described as:\n%s", out)
	}
	if o := cmds.wait(ctx, cmds.send(subject.CmdVolumeDetach, aliceActor, &volumev1.DetachVolume{Uuid: private, MachineUuid: machine, HotUnplug: true})); !o.failed || !strings.Contains(o.message, "Disk have not been hot-plugged") {
		t.Errorf("hot-unplugging a launch disk: %+v", o)
	}
	if o := cmds.wait(ctx, cmds.send(subject.CmdVolumeRelease, aliceActor, &volumev1.ReleaseVolume{Uuid: private, MachineUuid: machine})); o.failed {
		t.Errorf("release at the machine's end: %+v", o)
	}
	if out := alice.run(0, "stratus-delete-volume", private); !strings.Contains(out, "DELETED "+private) {
		t.Errorf("deleting a released disk:\n%s", out)
	}

	// Quotas: at most 4 volumes and 13 GiB; alice holds one of 10 GiB, so
	// 3 of 10 concurrent 1 GiB creates may succeed. A 4 GiB probe tells
	// when pdisk applies the new settings.
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{"service": "pdisk", "quota": map[string]any{"volumes": 4, "gib": 13}})
	eventually(ctx, t, "the quota to apply", func() bool {
		res, err := asAlice.Create(ctx, "Volume", map[string]any{"size": 4, "tag": "probe"})
		if err != nil {
			return strings.Contains(err.Error(), "Quota")
		}
		if !res.Done {
			_, _ = asAlice.WaitJob(ctx, res.JobID)
		}
		_, _ = asAlice.Delete(ctx, res.ID)
		return false
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, quota := 0, 0
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := asAlice.Create(ctx, "Volume", map[string]any{"size": 1, "tag": "burst"})
			if err == nil && !res.Done {
				_, err = asAlice.WaitJob(ctx, res.JobID)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made++
			case strings.Contains(err.Error(), "Quota exceeded"):
				quota++
			default:
				t.Errorf("a create in the burst: %v", err)
			}
		}()
	}
	wg.Wait()
	if made != 3 || quota != 7 {
		t.Errorf("10 concurrent creates under a quota of 4 with 1 held: %d made, %d refused", made, quota)
	}

	if err := c.stop(); err != nil {
		t.Error(err)
	}
}

func countVolumes(ctx context.Context, t *testing.T, c *sdk.Client) int {
	t.Helper()
	n, _, err := c.Query(ctx, "Volume", sdk.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries)
}
