package imagecache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
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
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	"stratuslab.dev/services/pdisk/internal/backend/qcow2"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// waitLimit bounds every wait in these tests; reaching it is a failure,
// not a timing assertion.
const waitLimit = 30 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one test's NATS server, backend data directory, download
// directory and clock, shared by the replicas it starts.
type env struct {
	t       *testing.T
	srv     *natsserver.Server
	dataDir string
	tempDir string
	skew    atomic.Int64 // added to the wall clock, in nanoseconds

	mu     sync.Mutex
	events []event
}

// event is one announced volume change.
type event struct {
	Subject string
	MsgID   string
	ID      string
	Body    *volume.Volume
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	e := &env{t: t, srv: testkit.NATS(t, ""), dataDir: filepath.Join(t.TempDir(), "volumes"), tempDir: filepath.Join(t.TempDir(), "downloads")}
	nc := e.connect()
	if _, err := nc.Subscribe("evt.pdisk.volume.>", e.record); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect() *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

func (e *env) record(m *nats.Msg) {
	var ev cimiv1.ResourceChanged
	if err := proto.Unmarshal(m.Data, &ev); err != nil {
		e.t.Errorf("event %s: %v", m.Subject, err)
		return
	}
	rec := event{Subject: m.Subject, MsgID: m.Header.Get(nats.MsgIdHdr), ID: ev.GetId()}
	if len(ev.GetJson()) > 0 {
		v, err := volume.Decode(ev.GetJson())
		if err != nil {
			e.t.Errorf("event %s: %v", m.Subject, err)
			return
		}
		rec.Body = v
	}
	e.mu.Lock()
	e.events = append(e.events, rec)
	e.mu.Unlock()
}

// eventsOf returns the events announced so far about volume uuid.
func (e *env) eventsOf(uuid string) []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event
	for _, ev := range e.events {
		if ev.ID == volume.ID(uuid) {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until an event on subject about uuid has been seen.
func (e *env) waitEvent(subject, uuid string) event {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, ev := range e.eventsOf(uuid) {
			if ev.Subject == subject {
				return ev
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no %s event about %s", subject, uuid)
	return event{}
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }

// advance moves the clock every replica of e reads.
func (e *env) advance(d time.Duration) { e.skew.Add(int64(d)) }

// replica is one pdisk replica: its own NATS connection, store (with its
// own index), qcow2 backend instance on the shared directory and Cache.
type replica struct {
	nc      *nats.Conn
	coll    store.Collection
	backend *qcow2.Backend
	cache   *imagecache.Cache
}

func (e *env) replica(name string, tune func(*imagecache.Config)) *replica {
	e.t.Helper()
	ctx := context.Background()
	nc := e.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		e.t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, "pdisk", embedded.WithLogger(quiet()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(ctx, volume.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := qcow2.New(e.dataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	ann := volume.Announcer{Bus: bus.New(nc, js, bus.Options{Service: "pdisk", Logger: quiet()})}
	cfg := imagecache.Config{
		Volumes:  coll,
		Backend:  b,
		Announce: ann.Changed,
		Holder:   name,
		TempDir:  e.tempDir,
		Now:      e.now,
		Log:      quiet(),
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := imagecache.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return &replica{nc: nc, coll: coll, backend: b, cache: c}
}

// doc reads volume uuid's document, nil when it does not exist.
func (r *replica) doc(t *testing.T, uuid string) *volume.Volume {
	t.Helper()
	d, err := r.coll.Get(context.Background(), volume.ID(uuid))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := volume.Decode(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// assertNothingLeft checks that neither the backend nor the download
// directory holds anything.
func (e *env) assertNothingLeft(r *replica) {
	e.t.Helper()
	vols, err := r.backend.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if len(vols) != 0 {
		e.t.Errorf("the backend still holds %+v", vols)
	}
	ents, err := os.ReadDir(e.tempDir)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range ents {
		e.t.Errorf("the download directory still holds %s", ent.Name())
	}
	all, err := os.ReadDir(r.backend.Dir())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range all {
		if !strings.HasPrefix(ent.Name(), ".lock-") { // the backend's own
			e.t.Errorf("the data directory still holds %s", ent.Name())
		}
	}
}

// image is a disk image served over HTTP.
type image struct {
	path  string // the file served
	bytes int64
	sha1  string
}

// rawImage writes a sparse raw disk of size bytes whose first head bytes
// are random, so that its checksum means something.
func rawImage(t testing.TB, size, head int64) image {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, head); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return describe(t, name)
}

// gzipImage compresses img into a new served file.
func gzipImage(t testing.TB, img image) image {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk.raw.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	in, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return describe(t, name)
}

func describe(t testing.TB, name string) image {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha1.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return image{path: name, bytes: n, sha1: hex.EncodeToString(h.Sum(nil))}
}

// server serves images and counts the requests for each path.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	serve map[string]http.HandlerFunc
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := unstartedServer()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// newTLSServer is newServer on HTTPS, with a certificate of its own
// (s.Certificate()) that no system trusts. The handshakes its clients
// refuse are not logged: the tests expect them.
func newTLSServer(t *testing.T) *server {
	t.Helper()
	s := unstartedServer()
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func unstartedServer() *server {
	s := &server{hits: map[string]int{}, serve: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		h := s.serve[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	return s
}

// handle serves path with h and returns its URL.
func (s *server) handle(path string, h http.HandlerFunc) string {
	s.mu.Lock()
	s.serve[path] = h
	s.mu.Unlock()
	return s.URL + path
}

// file serves the file of img at path and returns its URL.
func (s *server) file(path string, img image) string {
	return s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, img.path)
	})
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// request asks for img under id from urls.
func request(id string, img image, urls ...string) imagecache.Request {
	return imagecache.Request{ImageID: id, URLs: urls, Bytes: img.bytes, SHA1: img.sha1}
}

// snap describes a new live snapshot for alice.
func snap() imagecache.Snap {
	return imagecache.Snap{UUID: uuid.NewString(), Owner: "alice", Machine: "Machine/" + uuid.NewString(), MsgID: uuid.NewString()}
}

// qemuInfo is what qemu-img says of a volume file.
type qemuInfo struct {
	Format              string `json:"format"`
	VirtualSize         int64  `json:"virtual-size"`
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
}

func info(t *testing.T, path string) qemuInfo {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var in qemuInfo
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// sameContent checks that the guest of volume file path sees the raw disk
// raw, byte for byte.
func sameContent(t *testing.T, path, raw string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", path, raw).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare %s %s: %v: %s", path, raw, err, out)
	}
}
