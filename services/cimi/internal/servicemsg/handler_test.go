package servicemsg

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// waitLimit bounds every wait; reaching it is a failure, not a timing
// assertion.
const waitLimit = 15 * time.Second

var (
	admin = &commonv1.Actor{User: "root", Roles: []string{cimi.RoleAdmin}}
	alice = &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	anon  = &commonv1.Actor{}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env runs the two kinds on a real bus and store, as the gateway's
// service does, and talks to them as the gateway would.
type env struct {
	t          *testing.T
	client     *bus.Bus
	msgs, cfgs store.Collection
	p          *resource.Provider
	mu         sync.Mutex
	events     []*bus.Event
}

func setup(t *testing.T) *env {
	t.Helper()
	nc, js := testkit.JetStream(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, subject.Cimi, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{t: t, client: bus.New(nc, js, bus.Options{Service: "gw", Logger: quiet()})}
	if e.msgs, err = st.Collection(ctx, KindServiceMessage); err != nil {
		t.Fatal(err)
	}
	if e.cfgs, err = st.Collection(ctx, KindServiceConfiguration); err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: subject.Cimi, Logger: quiet()})
	p, err := resource.New(b, subject.Cimi, quiet(), Kinds(e.msgs, e.cfgs)...)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	run(t, func(ctx context.Context) error { return b.Serve(ctx, bus.ServiceInfo{}, p.Endpoints()...) })
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Subjects: p.Subjects()}, p.Handle)
	})
	run(t, func(ctx context.Context) error {
		spec := bus.SubscribeSpec{Subjects: []string{subject.AllEvents}, Since: time.Now().Add(-time.Hour)}
		return e.client.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			return nil
		})
	})
	return e
}

func run(t *testing.T, fn func(ctx context.Context) error) {
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

// do sends a ResourceCommand as the gateway does and returns the code
// ("" on success) and message of its terminal event.
func (e *env) do(actor *commonv1.Actor, verb, id, body string, selects ...string) (errs.Code, string) {
	e.t.Helper()
	kind, _, _ := strings.Cut(id, "/")
	meta := &commonv1.Meta{CommandId: uuid.NewString(), Actor: actor}
	rc := &cimiv1.ResourceCommand{Meta: meta, Kind: kind, Id: id, Body: []byte(body), Select: selects}
	subj := subject.CimiCommand(subject.Cimi, subject.ResourceToken(kind), verb)
	if err := e.client.Send(context.Background(), subj, meta, rc); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		evs := append([]*bus.Event(nil), e.events...)
		e.mu.Unlock()
		for _, ev := range evs {
			switch ev.Subject() {
			case subject.Completed(subj):
				var c commonv1.CommandCompleted
				if ev.Decode(&c) == nil && c.CommandId == meta.CommandId {
					return "", c.Message
				}
			case subject.Failed(subj):
				var f commonv1.CommandFailed
				if ev.Decode(&f) == nil && f.CommandId == meta.CommandId {
					return errs.Code(f.Error.GetCode()), f.Error.GetMessage()
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("%s %s did not end within %v", verb, id, waitLimit)
	return "", ""
}

// get reads a resource through svc.cimi.cimi_get. Refusals are asked in
// process: platform/bus's Serve answers errors from its own goroutine
// while NATS micro reads the request's error state, which the race
// detector reports.
func (e *env) get(actor *commonv1.Actor, id string) (map[string]any, errs.Code) {
	e.t.Helper()
	if _, _, err := e.p.Get(context.Background(), resource.IdentityOf(actor), id); err != nil {
		return nil, errs.CodeOf(err)
	}
	var resp cimiv1.ResourceDocument
	err := e.client.Request(context.Background(), subject.CimiQuery(subject.Cimi, subject.OpCimiGet), actor,
		&cimiv1.GetResourceRequest{Actor: actor, Id: id}, &resp)
	if err != nil {
		return nil, errs.CodeOf(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(resp.Json, &doc); err != nil {
		e.t.Fatal(err)
	}
	return doc, ""
}

// count counts the resources of kind actor sees through svc.cimi.cimi_query.
func (e *env) count(actor *commonv1.Actor, kind string) uint64 {
	e.t.Helper()
	var resp cimiv1.ResourceDocuments
	err := e.client.Request(context.Background(), subject.CimiQuery(subject.Cimi, subject.OpCimiQuery), actor,
		&cimiv1.QueryResourcesRequest{Actor: actor, Kind: kind}, &resp)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Count
}

// changes counts the ResourceChanged events published.
func (e *env) changes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Type() == "stratus.cimi.v1.ResourceChanged" {
			n++
		}
	}
	return n
}

func TestServiceMessageLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := KindServiceMessage + "/" + uuid.NewString()
	body := `{"name":"StratusLab is Alive!","description":"Deploying StratusLab clouds is fun.","acl":{"owner":{"principal":"alice","type":"USER"}}}`
	if code, msg := e.do(admin, subject.VerbCimiCreate, id, body); code != "" {
		t.Fatal(code, msg)
	}
	doc, code := e.get(anon, id)
	if code != "" {
		t.Fatalf("anonymous read: %s", code)
	}
	if doc["name"] != "StratusLab is Alive!" || doc["description"] != "Deploying StratusLab clouds is fun." ||
		doc["resourceURI"] != "http://stratuslab.eu/cimi/1/ServiceMessage" {
		t.Errorf("read %v", doc)
	}
	acl, _ := json.Marshal(doc["acl"])
	if string(acl) != `{"owner":{"principal":"::ADMIN","type":"ROLE"},"rules":[{"principal":"::ANON","right":"VIEW","type":"ROLE"}]}` {
		t.Errorf("acl %s: the body's acl must not replace the public one", acl)
	}
	if n := e.count(anon, KindServiceMessage); n != 1 {
		t.Errorf("anonymous readers see %d messages, want 1", n)
	}

	if code, msg := e.do(admin, subject.VerbCimiEdit, id, `{"description":"Still fun."}`, "description"); code != "" {
		t.Fatal(code, msg)
	}
	if doc, _ := e.get(anon, id); doc["name"] != "StratusLab is Alive!" || doc["description"] != "Still fun." {
		t.Errorf("after edit: %v", doc)
	}
	if code, _ := e.do(admin, subject.VerbCimiDelete, id, ""); code != "" {
		t.Fatal(code)
	}
	if _, code := e.get(admin, id); code != errs.NotFound {
		t.Errorf("after delete: %s", code)
	}
	if code, msg := e.do(admin, subject.VerbCimiDelete, id, ""); code != errs.NotFound || msg != id+" does not exist or you may not see it." {
		t.Errorf("second delete: %s %q", code, msg)
	}
	if n := e.changes(); n != 3 {
		t.Errorf("%d change events, want 3 (created, updated, deleted)", n)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	existing := KindServiceMessage + "/" + uuid.NewString()
	if code, msg := e.do(admin, subject.VerbCimiCreate, existing, `{"name":"kept"}`); code != "" {
		t.Fatal(code, msg)
	}
	before := e.changes()
	newMsg := func() string { return KindServiceMessage + "/" + uuid.NewString() }
	tests := []struct {
		name  string
		actor *commonv1.Actor
		verb  string
		id    string
		body  string
		code  errs.Code
	}{
		{"user creates a message", alice, subject.VerbCimiCreate, newMsg(), `{"name":"x"}`, errs.Forbidden},
		{"anonymous creates a message", anon, subject.VerbCimiCreate, newMsg(), `{"name":"x"}`, errs.Forbidden},
		{"missing title", admin, subject.VerbCimiCreate, newMsg(), `{"name":"  "}`, errs.Invalid},
		{"title not text", admin, subject.VerbCimiCreate, newMsg(), `{"name":7}`, errs.Invalid},
		{"title too long", admin, subject.VerbCimiCreate, newMsg(), `{"name":"` + strings.Repeat("t", maxTitle+1) + `"}`, errs.Invalid},
		{"message too long", admin, subject.VerbCimiCreate, newMsg(), `{"name":"x","description":"` + strings.Repeat("m", maxMessage+1) + `"}`, errs.Invalid},
		{"not an object", admin, subject.VerbCimiCreate, newMsg(), `[1]`, errs.Invalid},
		{"user edits a message", alice, subject.VerbCimiEdit, existing, `{"name":"mine"}`, errs.Forbidden},
		{"edit drops the title", admin, subject.VerbCimiEdit, existing, `{"description":"no title"}`, errs.Invalid},
		{"user deletes a message", alice, subject.VerbCimiDelete, existing, ``, errs.Forbidden},
		{"user sets a configuration", alice, subject.VerbCimiCreate, "ServiceConfiguration/pdisk", `{"service":"pdisk"}`, errs.Forbidden},
		{"configuration not an object", admin, subject.VerbCimiCreate, "ServiceConfiguration/pdisk", `"x"`, errs.Invalid},
		{"configuration without service", admin, subject.VerbCimiCreate, "ServiceConfiguration/pdisk", `{"quota":1}`, errs.Invalid},
		{"configuration of another service", admin, subject.VerbCimiCreate, "ServiceConfiguration/pdisk", `{"service":"authn","localdb":{}}`, errs.Invalid},
		{"configuration of another instance", admin, subject.VerbCimiCreate, "ServiceConfiguration/pdisk-a", `{"service":"pdisk","instance":"b"}`, errs.Invalid},
		{"bad service name", admin, subject.VerbCimiCreate, "ServiceConfiguration/p.disk", `{"service":"p.disk"}`, errs.Invalid},
		{"authn without localdb", admin, subject.VerbCimiCreate, "ServiceConfiguration/authn", `{"service":"authn"}`, errs.Invalid},
		{"authn with a bad localdb", admin, subject.VerbCimiCreate, "ServiceConfiguration/authn", `{"service":"authn","localdb":"yes"}`, errs.Invalid},
		{"configuration too large", admin, subject.VerbCimiCreate, "ServiceConfiguration/pdisk", `{"service":"pdisk","x":"` + strings.Repeat("x", maxConfig) + `"}`, errs.TooLarge},
	}
	for _, tt := range tests {
		if code, msg := e.do(tt.actor, tt.verb, tt.id, tt.body); code != tt.code {
			t.Errorf("%s: %q (%s), want %q", tt.name, code, msg, tt.code)
		}
	}
	if doc, _ := e.get(anon, existing); doc["name"] != "kept" {
		t.Errorf("refused commands changed %s: %v", existing, doc)
	}
	if n := e.count(admin, KindServiceMessage); n != 1 {
		t.Errorf("refused commands left %d messages, want 1", n)
	}
	if n := e.count(admin, KindServiceConfiguration); n != 0 {
		t.Errorf("refused commands left %d configurations", n)
	}
	if n := e.changes(); n != before {
		t.Errorf("refused commands published %d change events", n-before)
	}
}

func TestServiceConfiguration(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	id := "ServiceConfiguration/pdisk-a1"
	if code, msg := e.do(admin, subject.VerbCimiCreate, id, `{"service":"pdisk","instance":"a1","quota":{"gib":100}}`); code != "" {
		t.Fatal(code, msg)
	}
	// The settings are read as platform/config reads them.
	type settings struct {
		Quota struct {
			GiB int `json:"gib"`
		} `json:"quota"`
		LogLevel string `json:"logLevel"`
	}
	live, err := config.NewLive(e.cfgs, config.ServiceConfigurationID("pdisk", "a1"), settings{LogLevel: "info"}, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if s := live.Current(); s.Quota.GiB != 100 || s.LogLevel != "info" {
		t.Errorf("live settings %+v", s)
	}

	if code, msg := e.do(admin, subject.VerbCimiEdit, id, `{"service":"pdisk","instance":"a1","quota":{"gib":200}}`); code != "" {
		t.Fatal(code, msg)
	}
	if code, msg := e.do(admin, subject.VerbCimiEdit, id, `{"logLevel":"debug"}`, "logLevel"); code != "" {
		t.Fatal(code, msg)
	}
	if code, _ := e.do(admin, subject.VerbCimiEdit, id, `{"service":"vmctl"}`, "service"); code != errs.Invalid {
		t.Errorf("edit moving the configuration to another service: %s", code)
	}
	if code, _ := e.do(admin, subject.VerbCimiCreate, id, `{"service":"pdisk","instance":"a1"}`); code != errs.Conflict {
		t.Errorf("second create: %s, want conflict (edit it instead)", code)
	}
	if err := live.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if s := live.Current(); s.Quota.GiB != 200 || s.LogLevel != "debug" {
		t.Errorf("live settings after edits %+v", s)
	}
	doc, code := e.get(admin, id)
	if code != "" || doc["service"] != "pdisk" || doc["instance"] != "a1" || doc["resourceURI"] != "http://stratuslab.eu/cimi/1/ServiceConfiguration" {
		t.Errorf("admin reads %v (%s)", doc, code)
	}
	if _, code := e.get(alice, id); code != errs.NotFound {
		t.Errorf("a user reads a service configuration: %s", code)
	}
	if n := e.count(alice, KindServiceConfiguration); n != 0 {
		t.Errorf("a user sees %d configurations", n)
	}
	if code, _ := e.do(admin, subject.VerbCimiCreate, "ServiceConfiguration/authn", `{"service":"authn","localdb":{}}`); code != "" {
		t.Errorf("authn configuration with localdb: %s", code)
	}
	if code, msg := e.do(admin, subject.VerbCimiDelete, id, ""); code != "" {
		t.Fatal(code, msg)
	}
	if _, err := e.cfgs.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func TestConfigurationID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		service, instance, want string
	}{
		{"pdisk", "", "ServiceConfiguration/pdisk"},
		{"pdisk", "node-1", "ServiceConfiguration/pdisk-node-1"},
		{"p-disk", "", ""},
		{"", "", ""},
		{"pdisk", "a.b", ""},
	}
	for _, tt := range tests {
		got, err := ConfigurationID(tt.service, tt.instance)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("ConfigurationID(%q, %q) = %q, %v; want %q", tt.service, tt.instance, got, err, tt.want)
		}
		if err != nil && errs.CodeOf(err) != errs.Invalid {
			t.Errorf("ConfigurationID(%q, %q): code %s", tt.service, tt.instance, errs.CodeOf(err))
		}
	}
}
