package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// TestLiveSettings changes pdisk's log level through its
// ServiceConfiguration document while the cloud runs, sees pdisk apply it
// without a restart, and sees a broken document refused without harm.
func TestLiveSettings(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc := connect(t, c.natsURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "e2e"})
	set := func(doc string) {
		t.Helper()
		meta := &commonv1.Meta{Actor: &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}}
		if err := b.Send(ctx, subject.CmdServiceConfigSet, meta, &cimiv1.SetServiceConfiguration{Meta: meta, Service: "pdisk", Document: doc}); err != nil {
			t.Fatal(err)
		}
	}
	waitLog := func(want ...string) {
		t.Helper()
		for ctx.Err() == nil {
			for _, line := range strings.Split(c.stderr.String(), "\n") {
				if containsAll(line, want...) {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no log line with %q\n%s", want, c.stderr)
	}

	set(`{"logLevel": "debug"}`)
	waitLog("log level changed", "service=pdisk", "level=DEBUG")
	set(`{"logLevel": "chatty"}`)
	waitLog("service=pdisk", "chatty")
	set(`{"logLevel": "warn"}`)
	waitLog("log level changed", "service=pdisk", "level=WARN")
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
