package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

func TestRetentionSweep(t *testing.T) {
	t.Parallel()
	_, js := testkit.JetStream(t)
	ctx := context.Background()
	st, err := embedded.Open(ctx, js, "cimi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	jobs, err := st.Collection(ctx, KindJob)
	if err != nil {
		t.Fatal(err)
	}
	events, err := st.Collection(ctx, KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	j := New(jobs, events, nil, slog.New(slog.DiscardHandler))
	j.retention = 24 * time.Hour
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// Jobs started at these ages, and events of these ages.
	ages := []time.Duration{72 * time.Hour, 25 * time.Hour, 23 * time.Hour, time.Minute}
	var jobIDs, eventIDs []string
	for _, age := range ages {
		j.now = func() time.Time { return now.Add(-age) }
		id, err := j.Start(ctx, alice, Spec{Action: "create", Target: "Thing/t"})
		if err != nil {
			t.Fatal(err)
		}
		jobIDs = append(jobIDs, id)
		ev := Event{Common: cimi.Common{ID: cimi.NewID(KindEvent), ACL: cimi.OwnedBy(alice)}, Timestamp: now.Add(-age), Type: EventTypeState}
		ev.Touch(now) // recorded late: the age is the event's own
		body, _ := json.Marshal(ev)
		if _, err := events.Create(ctx, ev.ID, body); err != nil {
			t.Fatal(err)
		}
		eventIDs = append(eventIDs, ev.ID)
	}
	// The oldest job changed recently: it stays.
	j.now = func() time.Time { return now.Add(-time.Hour) }
	if _, err := j.update(ctx, jobIDs[0], func(job *Job) bool { j.touch(job); return true }); err != nil {
		t.Fatal(err)
	}

	j.now = func() time.Time { return now }
	if err := j.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		coll store.Collection
		id   string
		kept bool
	}{
		{jobs, jobIDs[0], true},
		{jobs, jobIDs[1], false},
		{jobs, jobIDs[2], true},
		{jobs, jobIDs[3], true},
		{events, eventIDs[0], false},
		{events, eventIDs[1], false},
		{events, eventIDs[2], true},
		{events, eventIDs[3], true},
	}
	for _, tt := range tests {
		_, err := tt.coll.Get(ctx, tt.id)
		if kept := !errors.Is(err, store.ErrNotFound); kept != tt.kept {
			t.Errorf("%s kept = %v (err %v), want %v", tt.id, kept, err, tt.kept)
		}
	}
	// A second sweep finds nothing more to do.
	if err := j.sweep(ctx); err != nil {
		t.Fatal(err)
	}
}
