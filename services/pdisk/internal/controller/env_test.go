package controller_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/qcow2"
	"stratuslab.dev/services/pdisk/internal/controller"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/settings"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// waitLimit bounds every wait in these tests; reaching it is a failure,
// not a timing assertion. It is generous because qemu-img shares a small
// machine with other tests.
const waitLimit = 60 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The actors of the tests.
var (
	alice = &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	bob   = &commonv1.Actor{User: "bob", Roles: []string{cimi.RoleUser}}
	admin = &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}
)

// env is one test's pdisk: an in-process NATS server, one or more
// replicas (controller, CIMI provider and command consumer on one durable,
// as pdisk.go wires them) sharing the store buckets and the data
// directory, a client bus that sends commands as the gateway and vmctl do,
// and every event published.
type env struct {
	t        *testing.T
	srv      *natsserver.Server
	dataDir  string
	tempDir  string
	client   *bus.Bus
	js       jetstream.JetStream
	clock    *clock
	settings atomic.Pointer[settings.Settings]
	// vols and usage read the buckets directly (strict reads), as
	// nothing in the replicas' indexes can hide.
	vols, usage store.Collection
	// disk is a backend of the test's own on the shared data directory.
	disk     *qcow2.Backend
	replicas []*replica

	mu         sync.Mutex
	events     []*bus.Event
	crashes    map[string]bool // command ids whose first delivery "crashes" after its work
	deliveries map[string]int  // by command id
}

// replica is one pdisk process.
type replica struct {
	name     string
	vols     store.Collection
	usage    store.Collection
	cache    *imagecache.Cache
	ctl      *controller.Controller
	provider *resource.Provider
	handled  atomic.Int64 // commands handled
}

// newEnv starts a pdisk of n replicas with the default settings.
func newEnv(t *testing.T, n int) *env {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	e := &env{
		t: t, srv: testkit.NATS(t, ""), clock: &clock{},
		dataDir: filepath.Join(t.TempDir(), "volumes"), tempDir: filepath.Join(t.TempDir(), "downloads"),
		crashes: map[string]bool{}, deliveries: map[string]int{},
	}
	s := settings.Defaults()
	// A generous quota, so that every user has a ledger the tests can
	// read (users without a quota have none).
	s.Quota = settings.Quota{Volumes: 10000}
	e.settings.Store(&s)
	ctx := context.Background()
	nc, js := e.connect()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e.client = bus.New(nc, js, bus.Options{Service: "gw", Logger: quiet()})
	e.js = js
	st, err := embedded.Open(ctx, js, "pdisk", embedded.WithLogger(quiet()), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if e.vols, err = st.Collection(ctx, volume.Kind); err != nil {
		t.Fatal(err)
	}
	if e.usage, err = st.Collection(ctx, controller.UsageKind); err != nil {
		t.Fatal(err)
	}
	if e.disk, err = qcow2.New(e.dataDir); err != nil {
		t.Fatal(err)
	}
	run(t, func(ctx context.Context) error {
		spec := bus.SubscribeSpec{Subjects: []string{subject.AllEvents}, Since: time.Now().Add(-time.Hour)}
		return e.client.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			return nil
		})
	})
	for i := range n {
		e.replicas = append(e.replicas, e.replica("pdisk-"+string(rune('a'+i))))
	}
	return e
}

func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

// replica starts one pdisk process: its own connection, store (with its
// own index), backend instance, image cache and controller, serving
// queries and consuming commands on the durable "pdisk".
func (e *env) replica(name string) *replica {
	e.t.Helper()
	ctx := context.Background()
	nc, js := e.connect()
	st, err := embedded.Open(ctx, js, "pdisk", embedded.WithLogger(quiet()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	r := &replica{name: name}
	if r.vols, err = st.Collection(ctx, volume.Kind); err != nil {
		e.t.Fatal(err)
	}
	if r.usage, err = st.Collection(ctx, controller.UsageKind); err != nil {
		e.t.Fatal(err)
	}
	be, err := qcow2.New(e.dataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "pdisk", Logger: quiet()})
	ann := volume.Announcer{Bus: b, Now: e.clock.Now}
	r.cache, err = imagecache.New(imagecache.Config{
		Volumes: r.vols, Backend: be, Announce: ann.Changed, Holder: name,
		TempDir: e.tempDir, Now: e.clock.Now, Log: quiet(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r.ctl, err = controller.New(controller.Config{
		Volumes: r.vols, Usage: r.usage, Backend: be, Cache: r.cache, Bus: b,
		Settings: func() settings.Settings { return *e.settings.Load() }, Log: quiet(), Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if r.provider, err = resource.New(b, "pdisk", quiet(), r.ctl.Kind()); err != nil {
		e.t.Fatal(err)
	}
	// As pdisk.go: CIMI writes and typed commands on one durable consumer.
	handle := func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
		r.handled.Add(1)
		var res bus.Result
		var err error
		if r.provider.Owns(cmd.Subject()) {
			res, err = r.provider.Handle(ctx, cmd)
		} else {
			res, err = r.ctl.Handle(ctx, cmd)
		}
		e.mu.Lock()
		e.deliveries[cmd.ID()]++
		crash := e.crashes[cmd.ID()] && cmd.Deliveries() == 1
		e.mu.Unlock()
		if crash && err == nil {
			return bus.Result{}, errors.New("simulated crash before the acknowledgement")
		}
		return res, err
	}
	run(e.t, func(ctx context.Context) error {
		return b.Serve(ctx, bus.ServiceInfo{}, r.provider.Endpoints()...)
	})
	run(e.t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{
			Durable: "pdisk", Subjects: r.provider.Subjects(), Concurrency: 64,
			AckWait: waitLimit, Backoff: []time.Duration{20 * time.Millisecond},
		}, handle)
	})
	return r
}

// r is the first replica.
func (e *env) r() *replica { return e.replicas[0] }

// set changes the live settings.
func (e *env) set(fn func(s *settings.Settings)) {
	s := *e.settings.Load()
	fn(&s)
	e.settings.Store(&s)
}

// run starts fn in a goroutine until the test ends.
func run(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fn(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("still running %v after cancellation", waitLimit)
		}
	})
}

// clock is the controllers' and caches' clock: the wall clock moved by
// a skew, or frozen.
type clock struct {
	mu     sync.Mutex
	skew   time.Duration
	frozen time.Time
}

// Now is the time the controllers read.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return time.Now().Add(c.skew)
}

// Freeze stops the clock at t.
func (c *clock) Freeze(t time.Time) {
	c.mu.Lock()
	c.frozen = t
	c.mu.Unlock()
}

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	if c.frozen.IsZero() {
		c.skew += d
	} else {
		c.frozen = c.frozen.Add(d)
	}
	c.mu.Unlock()
}

// outcome is how a command ended: code "" for success.
type outcome struct {
	id       string // command id
	code     errs.Code
	message  string
	affected []string
}

func (o outcome) ok() bool { return o.code == "" }

// command is one command to send.
type command struct {
	actor   *commonv1.Actor // nil: the system itself
	subject string
	msg     proto.Message // a ResourceCommand or a typed volume command
	id      string        // the command id; a new one when empty
	crash   bool          // "crash" after the first delivery's work
}

// start sends c and returns its command id.
func (e *env) start(c command) string {
	e.t.Helper()
	if c.id == "" {
		c.id = uuid.NewString()
	}
	if c.crash {
		e.mu.Lock()
		e.crashes[c.id] = true
		e.mu.Unlock()
	}
	meta := &commonv1.Meta{CommandId: c.id, Actor: c.actor}
	// Every command message carries its metadata in field "meta" too.
	m := c.msg.ProtoReflect()
	if fd := m.Descriptor().Fields().ByName("meta"); fd != nil {
		m.Set(fd, protoreflect.ValueOfMessage(proto.Clone(meta).ProtoReflect()))
	}
	if err := e.client.Send(context.Background(), c.subject, meta, c.msg); err != nil {
		e.t.Fatalf("send %s: %v", c.subject, err)
	}
	return c.id
}

// do sends c and waits for its terminal event.
func (e *env) do(c command) outcome {
	e.t.Helper()
	return e.wait(e.start(c))
}

// typed sends a typed volume command as actor and waits for its end.
func (e *env) typed(actor *commonv1.Actor, subj string, msg proto.Message) outcome {
	e.t.Helper()
	return e.do(command{actor: actor, subject: subj, msg: msg})
}

// cimiCommand is a CIMI write on a volume.
func cimiCommand(actor *commonv1.Actor, verb, uuid, body string, selects ...string) command {
	rc := &cimiv1.ResourceCommand{Kind: volume.Kind, Id: volume.ID(uuid), Body: []byte(body), Select: selects}
	return command{actor: actor, subject: subject.CimiCommand(subject.Pdisk, subject.ResourceVolume, verb), msg: rc}
}

// cimi sends a CIMI write (cimi_create, cimi_edit, cimi_delete) on
// volume uuid as actor and waits for its end.
func (e *env) cimi(actor *commonv1.Actor, verb, uuid, body string, selects ...string) outcome {
	e.t.Helper()
	return e.do(cimiCommand(actor, verb, uuid, body, selects...))
}

// create makes a volume through CIMI as actor and returns its uuid.
func (e *env) create(actor *commonv1.Actor, body string) string {
	e.t.Helper()
	id := uuid.NewString()
	if o := e.cimi(actor, subject.VerbCimiCreate, id, body); !o.ok() {
		e.t.Fatalf("create %s: %s: %s", body, o.code, o.message)
	}
	return id
}

// wait returns the outcome of command cmdID.
func (e *env) wait(cmdID string) outcome {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, ev := range e.snapshot() {
			switch ev.Type() {
			case "stratus.common.v1.CommandCompleted":
				var c commonv1.CommandCompleted
				if err := ev.Decode(&c); err != nil {
					e.t.Fatal(err)
				}
				if c.CommandId == cmdID {
					o := outcome{id: cmdID, message: c.Message}
					for _, r := range c.Affected {
						o.affected = append(o.affected, r.Id)
					}
					return o
				}
			case "stratus.common.v1.CommandFailed":
				var f commonv1.CommandFailed
				if err := ev.Decode(&f); err != nil {
					e.t.Fatal(err)
				}
				if f.CommandId == cmdID {
					return outcome{id: cmdID, code: errs.Code(f.Error.GetCode()), message: f.Error.GetMessage()}
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("command %s did not end within %v", cmdID, waitLimit)
	return outcome{}
}

func (e *env) snapshot() []*bus.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// delivered returns how often command cmdID reached a handler.
func (e *env) delivered(cmdID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deliveries[cmdID]
}

// terminals counts the terminal events of command cmdID.
func (e *env) terminals(cmdID string) int {
	n := 0
	for _, ev := range e.snapshot() {
		if ev.ID() == cmdID+".terminal" {
			n++
		}
	}
	return n
}

// usage is a usage event about one volume.
type usage struct {
	subject string
	uuid    string
	owner   string
	size    uint32
	machine string
	msg     proto.Message
}

// usageOf returns the usage events (evt.pdisk.volume_usage.*) about
// volume uuid published so far, in order; subj, when not empty, keeps
// those of one subject. Events published by a command precede its
// terminal event, so after wait they are all here.
func (e *env) usageOf(uuid, subj string) []usage {
	e.t.Helper()
	var out []usage
	for _, ev := range e.snapshot() {
		if subj != "" && ev.Subject() != subj {
			continue
		}
		var u usage
		switch ev.Subject() {
		case subject.EvtVolumeCreated:
			var m volumev1.VolumeCreated
			if err := ev.Decode(&m); err != nil {
				e.t.Fatal(err)
			}
			u = usage{uuid: m.GetVolume().GetUuid(), owner: m.GetVolume().GetOwner(), size: m.GetVolume().GetSizeGib(), msg: &m}
		case subject.EvtVolumeDeleted:
			var m volumev1.VolumeDeleted
			if err := ev.Decode(&m); err != nil {
				e.t.Fatal(err)
			}
			u = usage{uuid: m.GetUuid(), owner: m.GetOwner(), size: m.GetSizeGib(), msg: &m}
		case subject.EvtVolumeAttached:
			var m volumev1.VolumeAttached
			if err := ev.Decode(&m); err != nil {
				e.t.Fatal(err)
			}
			u = usage{uuid: m.GetUuid(), owner: m.GetOwner(), size: m.GetSizeGib(), machine: m.GetMachineUuid(), msg: &m}
		case subject.EvtVolumeDetached:
			var m volumev1.VolumeDetached
			if err := ev.Decode(&m); err != nil {
				e.t.Fatal(err)
			}
			u = usage{uuid: m.GetUuid(), owner: m.GetOwner(), size: m.GetSizeGib(), machine: m.GetMachineUuid(), msg: &m}
		default:
			continue
		}
		if u.uuid == uuid {
			u.subject = ev.Subject()
			out = append(out, u)
		}
	}
	return out
}

// doc reads volume uuid's document from the bucket; nil when absent.
func (e *env) doc(uuid string) *volume.Volume {
	e.t.Helper()
	d, err := e.vols.Get(context.Background(), volume.ID(uuid))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := volume.Decode(d.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// mustDoc is doc, failing when the document is absent.
func (e *env) mustDoc(uuid string) *volume.Volume {
	e.t.Helper()
	v := e.doc(uuid)
	if v == nil {
		e.t.Fatalf("volume %s has no document", uuid)
	}
	return v
}

// storage describes volume uuid in the backend; false when absent.
func (e *env) storage(uuid string) (backend.Volume, bool) {
	e.t.Helper()
	v, err := e.disk.Get(context.Background(), uuid)
	if errs.CodeOf(err) == errs.NotFound {
		return backend.Volume{}, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return v, true
}

// stored lists the ids of every volume in the backend, sorted.
func (e *env) stored() []string {
	e.t.Helper()
	vols, err := e.disk.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, v := range vols {
		ids = append(ids, v.ID)
	}
	slices.Sort(ids)
	return ids
}

// ledger returns what user's quota ledger counts: uuid → GiB.
func (e *env) ledger(user string) map[string]int64 {
	e.t.Helper()
	d, err := e.usage.Get(context.Background(), controller.UsageKind+"/"+user)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]int64{}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var l struct {
		Volumes map[string]int64 `json:"volumes"`
	}
	if err := json.Unmarshal(d.Body, &l); err != nil {
		e.t.Fatal(err)
	}
	if l.Volumes == nil {
		l.Volumes = map[string]int64{}
	}
	return l.Volumes
}

// get reads volume uuid through the cimi_get endpoint as actor. Refusals
// are asked in process, as platform/resource's own tests do: the bus
// answers errors from a goroutine the race detector flags (a bus matter).
func (e *env) get(actor *commonv1.Actor, uuid string) (map[string]any, errs.Code) {
	e.t.Helper()
	if _, _, err := e.r().provider.Get(context.Background(), resource.IdentityOf(actor), volume.ID(uuid)); err != nil {
		return nil, errs.CodeOf(err)
	}
	var resp cimiv1.ResourceDocument
	err := e.client.Request(context.Background(), subject.CimiQuery(subject.Pdisk, subject.OpCimiGet), actor,
		&cimiv1.GetResourceRequest{Actor: actor, Id: volume.ID(uuid)}, &resp)
	if err != nil {
		return nil, errs.CodeOf(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(resp.Json, &doc); err != nil {
		e.t.Fatal(err)
	}
	return doc, ""
}

// image is a disk image served over HTTP.
type image struct {
	path  string // the raw file served
	url   string
	bytes int64
	sha1  string
}

// serveImage writes a sparse raw disk of size bytes whose first head
// bytes are random, and serves it over HTTP until the test ends.
func serveImage(t *testing.T, size, head int64) image {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, head); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(h, zeros{}, size-head); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, name)
	}))
	t.Cleanup(srv.Close)
	return image{path: name, url: srv.URL + "/disk.raw", bytes: size, sha1: hex.EncodeToString(h.Sum(nil))}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// getImage is the GetImageVolume command vmctl sends for a machine's disk.
func getImage(img image, imageID, uuid, machine string) *volumev1.GetImageVolume {
	return &volumev1.GetImageVolume{
		Uuid: uuid, ImageId: imageID, Urls: []string{img.url}, Bytes: uint64(img.bytes), Sha1: img.sha1, MachineUuid: machine,
	}
}

// sameContent checks with qemu-img that the guest of volume file path
// sees the raw disk raw, byte for byte.
func sameContent(t *testing.T, path, raw string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", path, raw).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare %s %s: %v: %s", path, raw, err, out)
	}
}
