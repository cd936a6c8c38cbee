package jobs

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/cimi"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	jobv1 "stratuslab.dev/proto/stratus/job/v1"
)

func TestAuditTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	okJob := e.send(alice, "ok", "Thing/a")
	badJob := e.send(alice, "bad", "Thing/b")
	e.send(bob, "ok", "Thing/c")
	// Traffic the trail skips: progress, changes of jobs and events, and a
	// change of a Job published on another resource's subject.
	if err := e.bus.Publish(ctx, "evt.test.thing.x_progress", &jobv1.JobProgress{JobId: okJob, Progress: 5}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, "evt.cimi.job.updated", &cimiv1.ResourceChanged{Kind: "Job", Id: okJob}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, "evt.test.thing.updated", &cimiv1.ResourceChanged{Kind: "Event", Id: "Event/x"}, ""); err != nil {
		t.Fatal(err)
	}
	// A change the system made on its own: administrators only.
	if err := e.bus.Publish(ctx, "evt.test.thing.deleted", &cimiv1.ResourceChanged{Kind: "Thing", Id: "Thing/old", At: timestamppb.Now()}, "sys-1"); err != nil {
		t.Fatal(err)
	}

	// alice: created + completed of Thing/a, failed of Thing/b. bob: created
	// + completed of Thing/c. admins: those and the system's delete. The
	// commands end in their own time, possibly after the system's delete,
	// so the test waits for the six events; the skipped traffic, published
	// before the delete, is recorded (or not) by the time the delete is.
	all := e.waitEvents(admin, 6)
	if !slices.ContainsFunc(all, func(ev Event) bool { return ev.Subject == "evt.test.thing.deleted" }) || len(all) != 6 {
		t.Fatalf("admins see %d events, want 6: %+v", len(all), all)
	}
	type row struct {
		subject, outcome, severity, state, res, name, kind, job string
	}
	want := []row{
		{"evt.test.thing.bad_failed", OutcomeFailure, SeverityMedium, "failed", "Thing/b", "Thing/b", "Thing", badJob},
		{"evt.test.thing.created", OutcomeStatus, SeverityLow, "created", "Thing/a", "my thing", "Thing", okJob},
		{"evt.test.thing.ok_completed", OutcomeSuccess, SeverityLow, "completed", "Thing/a", "Thing/a", "Thing", okJob},
	}
	got := e.events(alice)
	if len(got) != len(want) {
		t.Fatalf("alice sees %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		r := row{g.Subject, g.Outcome, g.Severity, g.Content.State, "", g.Content.ResName, g.Content.ResType, ""}
		if g.Content.Resource != nil {
			r.res = g.Content.Resource.Href
		}
		if g.Job != nil {
			r.job = g.Job.Href
		}
		if r != w {
			t.Errorf("event %d = %+v, want %+v", i, r, w)
		}
		if g.Type != EventTypeState || g.ResourceURI != cimi.ResourceURI(KindEvent) || g.Timestamp.IsZero() || g.Created.IsZero() {
			t.Errorf("event %d common attributes: %+v", i, g)
		}
		if g.ACL.Owner != (cimi.Owner{Principal: "alice", Type: cimi.User}) ||
			len(g.ACL.Rules) != 1 || g.ACL.Rules[0] != (cimi.Rule{Principal: cimi.RoleAdmin, Type: cimi.Role, Right: cimi.All}) {
			t.Errorf("event %d acl = %+v", i, g.ACL)
		}
	}
	if got[0].Description != "Only administrators may touch this thing. (forbidden)" {
		t.Errorf("failure description = %q", got[0].Description)
	}
	if n := len(e.events(bob)); n != 2 {
		t.Errorf("bob sees %d events, want 2", n)
	}
	if n := len(e.events(cimi.Identity{})); n != 0 {
		t.Errorf("anonymous sees %d events", n)
	}
	for _, ev := range all {
		if ev.Subject == "evt.test.thing.deleted" {
			if ev.ACL.Owner != (cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}) || ev.Job != nil || ev.Content.State != "deleted" {
				t.Errorf("system event = %+v", ev)
			}
		}
	}
}
