package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
)

// commander sends typed service commands over the cloud's NATS, as vmctl
// will, and collects how they end.
type commander struct {
	t   *testing.T
	bus *bus.Bus
	mu  sync.Mutex
	end map[string]outcome // by command id
}

// outcome is how a command ended: failed with code and message, or not.
type outcome struct {
	failed   bool
	code     string
	message  string
	affected []string
}

func newCommander(t *testing.T, natsURL string) *commander {
	t.Helper()
	nc := connect(t, natsURL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := &commander{t: t, bus: bus.New(nc, js, bus.Options{Service: "e2e"}), end: map[string]outcome{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	started := time.Now().Add(-time.Second)
	go func() {
		_ = c.bus.Subscribe(ctx, bus.SubscribeSpec{Subjects: []string{subject.AllEvents}, Since: started}, func(_ context.Context, ev *bus.Event) error {
			switch ev.Type() {
			case "stratus.common.v1.CommandCompleted":
				var m commonv1.CommandCompleted
				if ev.Decode(&m) == nil {
					o := outcome{message: m.Message}
					for _, r := range m.Affected {
						o.affected = append(o.affected, r.Id)
					}
					c.record(m.CommandId, o)
				}
			case "stratus.common.v1.CommandFailed":
				var m commonv1.CommandFailed
				if ev.Decode(&m) == nil {
					c.record(m.CommandId, outcome{failed: true, code: m.Error.GetCode(), message: m.Error.GetMessage()})
				}
			}
			return nil
		})
	}()
	return c
}

func (c *commander) record(id string, o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.end[id] = o
}

// send sends msg on subj as actor and returns the command id.
func (c *commander) send(subj string, actor *commonv1.Actor, msg proto.Message) string {
	c.t.Helper()
	id := uuid.NewString()
	meta := &commonv1.Meta{CommandId: id, Actor: actor}
	setMeta(msg, meta)
	if err := c.bus.Send(context.Background(), subj, meta, msg); err != nil {
		c.t.Fatalf("send %s: %v", subj, err)
	}
	return id
}

// wait returns the outcome of command id.
func (c *commander) wait(ctx context.Context, id string) outcome {
	c.t.Helper()
	for ctx.Err() == nil {
		c.mu.Lock()
		o, ok := c.end[id]
		c.mu.Unlock()
		if ok {
			return o
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("command %s did not end", id)
	return outcome{}
}

// setMeta fills the meta field every command message has.
func setMeta(msg proto.Message, meta *commonv1.Meta) {
	switch m := msg.(type) {
	case *volumev1.GetImageVolume:
		m.Meta = meta
	case *volumev1.AttachVolume:
		m.Meta = meta
	case *volumev1.DetachVolume:
		m.Meta = meta
	case *volumev1.ReleaseVolume:
		m.Meta = meta
	}
}

// imageServer serves one image and counts the downloads.
type imageServer struct {
	*httptest.Server
	path      string
	sha1      string
	bytes     int64
	downloads atomic.Int64
}

// newImage writes a sparse raw image of size bytes whose first MiBs are
// random, and serves it.
func newImage(t *testing.T, size int64) *imageServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := &imageServer{path: path, sha1: hex.EncodeToString(h.Sum(nil)), bytes: size}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.downloads.Add(1)
		http.ServeFile(w, r, path)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestImageCacheAcrossReplicas asks for one 300 MiB image for 20 machines
// at once, on the all-in-one's pdisk and on a second pdisk process
// sharing its storage: the image is downloaded once, verified, and each
// machine gets its own copy-on-write disk on it. A corrupt image is
// refused with the reason and leaves nothing behind.
func TestImageCacheAcrossReplicas(t *testing.T) {
	c := newCloud(t)
	c.start()
	replica := exec.Command(pdiskBinary, "--nats-url", c.natsURL(), "--data-dir", c.dataDir,
		"--admin-listen", "127.0.0.1:0", "--config", os.DevNull, "--instance", "second-pdisk")
	stderr := &lockedBuffer{}
	replica.Stderr = stderr
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if replica.ProcessState == nil {
			_ = replica.Process.Kill()
			_ = replica.Wait()
		}
	})
	waitServices(t, c.natsURL(), []string{"authn", "cimi", "marketplace", "pdisk", "pdisk", "registration", "vmctl"})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img := newImage(t, 300<<20)
	cmds := newCommander(t, c.natsURL())
	alice := &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	const machines = 20
	ids := make([]string, machines)
	for i := range ids {
		ids[i] = cmds.send(subject.CmdVolumeGetImage, alice, &volumev1.GetImageVolume{
			Uuid: uuid.NewString(), ImageId: "ttylinux-e2e-image-000000000", Urls: []string{img.URL + "/image.img"},
			Bytes: uint64(img.bytes), Sha1: img.sha1, MachineUuid: uuid.NewString(),
		})
	}
	lives := map[string]bool{}
	for _, id := range ids {
		o := cmds.wait(ctx, id)
		if o.failed || len(o.affected) != 1 {
			t.Fatalf("a machine's image disk: %+v\nsecond pdisk:\n%s", o, stderr)
		}
		lives[o.affected[0]] = true
	}
	if n := img.downloads.Load(); n != 1 {
		t.Errorf("%d machines on 2 replicas downloaded the image %d times, want once", machines, n)
	}
	if len(lives) != machines {
		t.Errorf("%d distinct disks for %d machines", len(lives), machines)
	}
	dir := filepath.Join(c.dataDir, "pdisk", "volumes")
	for id := range lives {
		out, err := exec.Command("qemu-img", "info", filepath.Join(dir, strings.TrimPrefix(id, "Volume/")+".qcow2")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "backing file:") {
			t.Errorf("%s is not a copy-on-write disk on the cached image: %v\n%s", id, err, out)
		}
	}

	// A corrupt image: every request fails with the reason, nothing stays.
	before := countFiles(t, dir)
	bad := make([]string, 5)
	for i := range bad {
		bad[i] = cmds.send(subject.CmdVolumeGetImage, alice, &volumev1.GetImageVolume{
			Uuid: uuid.NewString(), ImageId: "corrupt-e2e-image-0000000000", Urls: []string{img.URL + "/image.img"},
			Bytes: uint64(img.bytes), Sha1: strings.Repeat("0", 40), MachineUuid: uuid.NewString(),
		})
	}
	for _, id := range bad {
		if o := cmds.wait(ctx, id); !o.failed || !strings.Contains(o.message, "SHA-1") {
			t.Errorf("a request for a corrupt image: %+v, want a failure naming the SHA-1", o)
		}
	}
	if after := countFiles(t, dir); after != before {
		t.Errorf("a corrupt image left storage behind: %d files, then %d", before, after)
	}
	if left, _ := filepath.Glob(filepath.Join(c.dataDir, "pdisk", "downloads", "*")); len(left) > 0 {
		t.Errorf("a corrupt image left downloads behind: %v", left)
	}

	_ = replica.Process.Signal(os.Interrupt)
	if err := replica.Wait(); err != nil {
		t.Errorf("the second pdisk exited with %v\n%s", err, stderr)
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}
