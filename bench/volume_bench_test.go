package bench

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
)

// cloud is the all-in-one binary running for a benchmark, as `make run`
// starts it: what is measured is what users get, HTTP included. With
// STRATUS_BENCH_ENDPOINT (and STRATUS_BENCH_ADMIN_PASSWORD,
// STRATUS_BENCH_NATS) the benchmarks use a cloud already running instead.
type cloud struct {
	base, natsURL, dataDir string
	admin                  *sdk.Client
	cmd                    *exec.Cmd
	dir                    string
}

// TestMain stops the cloud the benchmarks started and removes its files.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil && shared.cmd != nil {
		_ = shared.cmd.Process.Signal(os.Interrupt)
		_ = shared.cmd.Wait()
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var (
	cloudOnce sync.Once
	shared    *cloud
	cloudErr  error
)

// startCloud builds and starts one all-in-one for every benchmark of the
// run (TestMain stops it).
func startCloud(b *testing.B) *cloud {
	b.Helper()
	cloudOnce.Do(func() { shared, cloudErr = launch() })
	if cloudErr != nil {
		b.Fatal(cloudErr)
	}
	return shared
}

func launch() (*cloud, error) {
	if base := os.Getenv("STRATUS_BENCH_ENDPOINT"); base != "" {
		// A cloud already running (e.g. to profile it meanwhile).
		return &cloud{base: base, natsURL: os.Getenv("STRATUS_BENCH_NATS"),
			admin: sdk.New(base, sdk.WithBasicAuth("admin", os.Getenv("STRATUS_BENCH_ADMIN_PASSWORD")))}, nil
	}
	dir, err := os.MkdirTemp("", "stratuslab-bench-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "stratuslab")
	if out, err := exec.Command("go", "build", "-o", bin, "stratuslab.dev/stratuslab/cmd/stratuslab").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	listen, natsAddr := freeAddr(), freeAddr()
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "--data-dir", data, "--listen", listen, "--nats-listen", natsAddr,
		"--admin-listen", "127.0.0.1:0", "--config", os.DevNull, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			break // the banner ends with an empty line
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	c := &cloud{base: "http://" + listen, natsURL: "nats://" + natsAddr, dataDir: data, cmd: cmd, dir: dir}
	pw, err := waitFile(filepath.Join(data, "admin-password"))
	if err != nil {
		return nil, err
	}
	c.admin = sdk.New(c.base, sdk.WithBasicAuth("admin", pw))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if a, err := c.admin.Authn(ctx); err == nil && a.Identity == "admin" {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the administrator is never authenticated")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

func waitFile(path string) (string, error) {
	for i := 0; i < 600; i++ {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("no %s", path)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkVolumeCreateCIMI measures POST /cimi/Volume of a 1 GiB volume
// until the 201: HTTP, authentication, the Job, the command over
// JetStream, pdisk's quota ledger and storage, the document, the events,
// the Job's end. One at a time for the latency, 100 at once for the rate.
func BenchmarkVolumeCreateCIMI(b *testing.B) {
	c := startCloud(b)
	ctx := context.Background()
	for _, inFlight := range []int{1, 100} {
		b.Run(fmt.Sprintf("inflight-%d", inFlight), func(b *testing.B) {
			roundTrips(b, inFlight, func(int) {
				res, err := c.admin.Create(ctx, "Volume", map[string]any{"size": 1, "tag": "bench"})
				if err == nil && !res.Done {
					_, err = c.admin.WaitJob(ctx, res.JobID)
				}
				if err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// BenchmarkBareQemuImgCreate is the floor of a volume create: qemu-img
// making a 1 GiB qcow2 file on the same disk, in the same run.
func BenchmarkBareQemuImgCreate(b *testing.B) {
	dir := b.TempDir()
	for _, inFlight := range []int{1, 100} {
		b.Run(fmt.Sprintf("inflight-%d", inFlight), func(b *testing.B) {
			roundTrips(b, inFlight, func(i int) {
				p := filepath.Join(dir, uuid.NewString()+".qcow2")
				if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "1G").CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			})
		})
	}
}

// BenchmarkImageVolume measures a machine's disk from a cached image: the
// GetImageVolume command from send to completion (the copy-on-write
// snapshot, its document, the origin's count), for a 1 GiB and a 10 GiB
// image. Images are qcow2, as the Marketplace often serves them, so that
// the warm-up download is small whatever the virtual size.
func BenchmarkImageVolume(b *testing.B) {
	c := startCloud(b)
	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close) // after the subscription's cleanup, registered later
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	client := bus.New(nc, js, bus.Options{Service: "bench", Logger: benchLog()})
	w := &waiters{m: map[string]chan struct{}{}}
	fails := make(chan string, 16)
	background(b, func(ctx context.Context) error {
		spec := bus.SubscribeSpec{Subjects: []string{"evt.pdisk.volume.get_image_completed", "evt.pdisk.volume.get_image_failed"}, Since: time.Now().Add(-time.Second)}
		return client.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
			switch ev.Type() {
			case "stratus.common.v1.CommandCompleted":
				var done commonv1.CommandCompleted
				if ev.Decode(&done) == nil {
					w.done(done.CommandId)
				}
			case "stratus.common.v1.CommandFailed":
				var failed commonv1.CommandFailed
				if ev.Decode(&failed) == nil {
					select {
					case fails <- failed.Error.GetMessage():
					default:
					}
					w.done(failed.CommandId)
				}
			}
			return nil
		})
	})
	actor := &commonv1.Actor{User: "bench", Roles: []string{cimi.RoleUser}}
	get := func(image, url, sum string, size int64) {
		id := uuid.NewString()
		ch := w.add(id)
		meta := &commonv1.Meta{CommandId: id, Actor: actor}
		if err := client.Send(context.Background(), subject.CmdVolumeGetImage, meta, &volumev1.GetImageVolume{
			Meta: meta, Uuid: uuid.NewString(), ImageId: image, Urls: []string{url}, Bytes: uint64(size), Sha1: sum,
		}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Minute):
			b.Fatal("no answer in 2 minutes")
		}
		select {
		case msg := <-fails:
			b.Fatal(msg)
		default:
		}
	}
	for _, gib := range []int{1, 10} {
		img, sum, size := qcow2Image(b, gib)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, img) }))
		image := fmt.Sprintf("bench-image-%02dGiB-%s", gib, uuid.NewString()[:8])
		get(image, srv.URL, sum, size) // warm the cache
		b.Run(fmt.Sprintf("cached-%dGiB", gib), func(b *testing.B) {
			roundTrips(b, 1, func(int) { get(image, srv.URL, sum, size) })
		})
		srv.Close()
	}
}

// qcow2Image makes a qcow2 image of gib GiB holding a little data.
func qcow2Image(b *testing.B, gib int) (path, sum string, size int64) {
	b.Helper()
	path = filepath.Join(b.TempDir(), "image.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprintf("%dG", gib)).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 4M", path).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha1.New()
	n, err := io.Copy(h, f)
	if err != nil {
		b.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), n
}
