package servicemsg

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// recorder keeps the events published, as the EVENTS stream would.
type recorder struct {
	mu     sync.Mutex
	events []string // subject + " " + msg id
}

func (r *recorder) Publish(_ context.Context, subj string, _ proto.Message, msgID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, subj+" "+msgID)
	return nil
}

func setup(t *testing.T) (*Handlers, store.Collection, store.Collection, *recorder) {
	t.Helper()
	_, js := testkit.JetStream(t)
	ctx := context.Background()
	st, err := embedded.Open(ctx, js, "cimi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	msgs, err := st.Collection(ctx, KindServiceMessage)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := st.Collection(ctx, KindServiceConfiguration)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h := New(msgs, cfgs, rec)
	h.now = func() time.Time { return time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC) }
	return h, msgs, cfgs, rec
}

func meta(roles ...string) *commonv1.Meta {
	return &commonv1.Meta{CommandId: uuid.NewString(), Actor: &commonv1.Actor{User: "alice", Roles: roles}}
}

func TestServiceMessageLifecycle(t *testing.T) {
	t.Parallel()
	h, msgs, _, rec := setup(t)
	ctx := context.Background()
	id := uuid.NewString()
	create := &cimiv1.CreateServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: id, Name: "StratusLab is Alive!", Description: "Deploying StratusLab clouds is fun."}

	res, err := h.CreateMessage(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Affected) != 1 || res.Affected[0] != "ServiceMessage/"+id {
		t.Fatalf("affected = %v", res.Affected)
	}
	// A redelivered create changes nothing and republishes the same event id.
	if _, err := h.CreateMessage(ctx, create); err != nil {
		t.Fatalf("redelivered create: %v", err)
	}
	page, err := msgs.Query(ctx, cimi.Query{}, cimi.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Count != 1 {
		t.Fatalf("anonymous readers see %d messages, want 1", page.Count)
	}
	var m Message
	if err := json.Unmarshal(page.Docs[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != create.Name || m.Description != create.Description || m.ResourceURI != "http://stratuslab.eu/cimi/1/ServiceMessage" {
		t.Errorf("stored %+v", m)
	}

	upd := &cimiv1.UpdateServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: id, Description: proto.String("Still fun.")}
	if _, err := h.UpdateMessage(ctx, upd); err != nil {
		t.Fatal(err)
	}
	doc, err := msgs.Get(ctx, "ServiceMessage/"+id)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc.Body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != create.Name || m.Description != "Still fun." {
		t.Errorf("after update: %+v", m)
	}

	del := &cimiv1.DeleteServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: id}
	for range 2 { // the second time, as after a redelivery
		if _, err := h.DeleteMessage(ctx, del); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := msgs.Get(ctx, "ServiceMessage/"+id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	want := []string{
		subject.EvtServiceMessageCreated + " " + create.Meta.CommandId + ":created",
		subject.EvtServiceMessageCreated + " " + create.Meta.CommandId + ":created",
		subject.EvtServiceMessageUpdated + " " + upd.Meta.CommandId + ":updated",
		subject.EvtServiceMessageDeleted + " " + del.Meta.CommandId + ":deleted",
		subject.EvtServiceMessageDeleted + " " + del.Meta.CommandId + ":deleted",
	}
	if len(rec.events) != len(want) {
		t.Fatalf("events %v, want %v", rec.events, want)
	}
	for i := range want {
		if rec.events[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, rec.events[i], want[i])
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	h, msgs, cfgs, rec := setup(t)
	ctx := context.Background()
	tests := []struct {
		name string
		run  func() (bus.Result, error)
		code errs.Code
	}{
		{"non-admin create", func() (bus.Result, error) {
			return h.CreateMessage(ctx, &cimiv1.CreateServiceMessage{Meta: meta(), Uuid: uuid.NewString(), Name: "x"})
		}, errs.Forbidden},
		{"missing title", func() (bus.Result, error) {
			return h.CreateMessage(ctx, &cimiv1.CreateServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: uuid.NewString(), Name: "  "})
		}, errs.Invalid},
		{"bad uuid", func() (bus.Result, error) {
			return h.CreateMessage(ctx, &cimiv1.CreateServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: "../x", Name: "x"})
		}, errs.Invalid},
		{"update missing", func() (bus.Result, error) {
			return h.UpdateMessage(ctx, &cimiv1.UpdateServiceMessage{Meta: meta(cimi.RoleAdmin), Uuid: uuid.NewString(), Name: proto.String("x")})
		}, errs.NotFound},
		{"non-admin config", func() (bus.Result, error) {
			return h.SetConfiguration(ctx, &cimiv1.SetServiceConfiguration{Meta: meta("::USER"), Service: "pdisk", Document: "{}"})
		}, errs.Forbidden},
		{"config not an object", func() (bus.Result, error) {
			return h.SetConfiguration(ctx, &cimiv1.SetServiceConfiguration{Meta: meta(cimi.RoleAdmin), Service: "pdisk", Document: "[1]"})
		}, errs.Invalid},
		{"config names another service", func() (bus.Result, error) {
			return h.SetConfiguration(ctx, &cimiv1.SetServiceConfiguration{Meta: meta(cimi.RoleAdmin), Service: "pdisk", Document: `{"service":"authn"}`})
		}, errs.Invalid},
		{"config bad service", func() (bus.Result, error) {
			return h.SetConfiguration(ctx, &cimiv1.SetServiceConfiguration{Meta: meta(cimi.RoleAdmin), Service: "p.disk", Document: "{}"})
		}, errs.Invalid},
	}
	for _, tt := range tests {
		_, err := tt.run()
		if !bus.IsPermanent(err) || errs.CodeOf(err) != tt.code {
			t.Errorf("%s: error %v (permanent %v, code %s), want permanent %s", tt.name, err, bus.IsPermanent(err), errs.CodeOf(err), tt.code)
		}
	}
	admin := cimi.Identity{Roles: []string{cimi.RoleAdmin}}
	for _, c := range []store.Collection{msgs, cfgs} {
		if page, err := c.Query(ctx, cimi.Query{}, admin); err != nil || page.Count != 0 {
			t.Errorf("refused commands left documents: %v %v", page.Count, err)
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("refused commands published %v", rec.events)
	}
}

func TestServiceConfiguration(t *testing.T) {
	t.Parallel()
	h, _, cfgs, _ := setup(t)
	ctx := context.Background()
	for _, doc := range []string{`{"quota":{"gib":100}}`, `{"quota":{"gib":200}}`} {
		if _, err := h.SetConfiguration(ctx, &cimiv1.SetServiceConfiguration{Meta: meta(cimi.RoleAdmin), Service: "pdisk", Instance: "a1", Document: doc}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cfgs.Get(ctx, "ServiceConfiguration/pdisk-a1")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Configuration
		Quota struct{ GiB int }
	}
	if err := json.Unmarshal(got.Body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Quota.GiB != 200 || c.Service != "pdisk" || c.Instance != "a1" || c.ID != "ServiceConfiguration/pdisk-a1" {
		t.Errorf("stored %s", got.Body)
	}
	if c.ACL.Allows(cimi.Identity{User: "bob", Roles: []string{cimi.RoleUser}}, cimi.View) {
		t.Error("a user may read a service configuration")
	}
	if page, _ := cfgs.Query(ctx, cimi.Query{}, cimi.Identity{User: "bob"}); page.Count != 0 {
		t.Errorf("user bob sees %d configurations", page.Count)
	}
	if _, err := h.DeleteConfiguration(ctx, &cimiv1.DeleteServiceConfiguration{Meta: meta(cimi.RoleAdmin), Service: "pdisk", Instance: "a1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfgs.Get(ctx, "ServiceConfiguration/pdisk-a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}
