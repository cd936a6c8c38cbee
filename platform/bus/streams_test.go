package bus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/testkit"
)

func TestEnsureStreams(t *testing.T) {
	t.Parallel()
	_, js := testkit.JetStream(t)
	ctx := context.Background()
	info := func(name string) jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}

	// Twice with the defaults: the second call changes nothing.
	for range 2 {
		if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cmd, evt := info(CommandsStream), info(EventsStream)
	if cmd.Retention != jetstream.WorkQueuePolicy || cmd.Storage != jetstream.FileStorage ||
		len(cmd.Subjects) != 1 || cmd.Subjects[0] != "cmd.>" || cmd.MaxAge != DefaultCommandsMaxAge {
		t.Errorf("COMMANDS = %+v", cmd)
	}
	if evt.Retention != jetstream.LimitsPolicy || evt.Storage != jetstream.FileStorage ||
		len(evt.Subjects) != 1 || evt.Subjects[0] != "evt.>" ||
		evt.MaxAge != DefaultEventsMaxAge || evt.MaxBytes != DefaultEventsMaxBytes || evt.Duplicates != DefaultDuplicateWindow {
		t.Errorf("EVENTS = %+v", evt)
	}

	// A changed configuration is applied to the existing streams.
	changed := StreamOptions{CommandsMaxAge: time.Hour, EventsMaxAge: 48 * time.Hour, EventsMaxBytes: 10 << 20, DuplicateWindow: time.Minute}
	if err := EnsureStreams(ctx, js, changed); err != nil {
		t.Fatal(err)
	}
	cmd, evt = info(CommandsStream), info(EventsStream)
	if cmd.MaxAge != time.Hour || cmd.Duplicates != time.Minute {
		t.Errorf("COMMANDS not updated: %+v", cmd)
	}
	if evt.MaxAge != 48*time.Hour || evt.MaxBytes != 10<<20 || evt.Duplicates != time.Minute {
		t.Errorf("EVENTS not updated: %+v", evt)
	}

	// A change JetStream cannot make in place is reported.
	if err := EnsureStreams(ctx, js, StreamOptions{Replicas: 3}); err == nil {
		t.Error("three replicas on a single server accepted")
	}
}
