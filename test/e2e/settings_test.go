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
	verb := subject.VerbCimiCreate // then edits
	set := func(doc string) {
		t.Helper()
		meta := &commonv1.Meta{Actor: &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}}
		cmd := &cimiv1.ResourceCommand{Meta: meta, Kind: "ServiceConfiguration", Id: "ServiceConfiguration/pdisk", Body: []byte(doc)}
		subj := subject.CimiCommand(subject.Cimi, subject.ResourceToken("ServiceConfiguration"), verb)
		if err := b.Send(ctx, subj, meta, cmd); err != nil {
			t.Fatal(err)
		}
		verb = subject.VerbCimiEdit
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

	set(`{"service": "pdisk", "logLevel": "debug"}`)
	waitLog("log level changed", "service=pdisk", "level=DEBUG")
	set(`{"service": "pdisk", "logLevel": "chatty"}`)
	waitLog("service=pdisk", "chatty")
	set(`{"service": "pdisk", "logLevel": "warn"}`)
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
