package vmctl

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// serveReports serves r on a real in-process NATS server, as vmctl does,
// and returns a bus to query it with.
func serveReports(t *testing.T, r reports) *bus.Bus {
	t.Helper()
	nc, js := testkit.JetStream(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bus.New(nc, js, bus.Options{Service: Name, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, bus.ServiceInfo{Name: Name}, r.endpoints()...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return b
}

// ask sends a query, retrying while nobody answers (the endpoints are not
// registered yet).
func ask(t *testing.T, b *bus.Bus, subj string, actor *commonv1.Actor, req proto.Message) (string, error) {
	t.Helper()
	var out wrapperspb.StringValue
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := b.Request(context.Background(), subj, actor, req, &out)
		var answered *bus.QueryError
		if errors.Is(err, bus.ErrUnavailable) && !errors.As(err, &answered) && time.Now().Before(deadline) {
			continue
		}
		return out.GetValue(), err
	}
}

func TestLoadTxtQuery(t *testing.T) {
	t.Parallel()
	nc, js := testkit.JetStream(t)
	st, err := embedded.Open(context.Background(), js, Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(); nc.Close() })
	coll, err := st.Collection(context.Background(), hosts.Kind)
	if err != nil {
		t.Fatal(err)
	}
	registry := hosts.New(coll, func() (float64, float64) { return 1, 1 }, time.Now)
	b := serveReports(t, reports{hosts: registry.List, pools: func() []addresses.Pool { return nil }})

	empty := "ID NAME               RVM   TCPU   FCPU   ACPU   TMEM   FMEM   AMEM  STAT\n"
	if got, err := ask(t, b, subject.SvcLoadTxt, nil, &emptypb.Empty{}); err != nil || got != empty {
		t.Fatalf("load.txt of no host = %q, %v; want the header alone", got, err)
	}
	for _, h := range []hosts.Host{
		{ID: "node-2", Hostname: "node-2.example.org", CPUs: 2, MemoryMiB: 1024, FreeCPUPercent: 150, FreeMemoryMiB: 512},
		{ID: "node-1", Hostname: "node-1.example.org", CPUs: 4, MemoryMiB: 2048, FreeCPUPercent: 400, FreeMemoryMiB: 2048},
	} {
		if err := registry.Register(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := registry.Place(context.Background(), "m-1", 1, 256); err != nil {
		t.Fatal(err)
	}
	// Ordered by id; what is reserved is no longer available (ACPU, AMEM).
	// The machine goes to node-1, the least loaded once it holds it.
	want := "    ID NAME               RVM   TCPU   FCPU   ACPU     TMEM     FMEM     AMEM  STAT\n" +
		"node-1 node-1.example.org   0    400    400    300 2097152K 2097152K 1835008K  on\n" +
		"node-2 node-2.example.org   0    200    150    200 1048576K  524288K 1048576K  on\n"
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// Anyone reads it: the actor does not matter.
		if got, err = ask(t, b, subject.SvcLoadTxt, &commonv1.Actor{}, &emptypb.Empty{}); err == nil && got == want {
			break
		}
	}
	if got != want {
		t.Fatalf("load.txt = %v\n%s\nwant\n%s", err, got, want)
	}

	// A registry that cannot be read is a failure to retry.
	broken := serveReports(t, reports{hosts: func(context.Context) ([]hosts.Host, error) { return nil, errors.New("bucket gone") }})
	var qe *bus.QueryError
	if _, err := ask(t, broken, subject.SvcLoadTxt, nil, &emptypb.Empty{}); !errors.As(err, &qe) || qe.Code() != string(errs.Unavailable) {
		t.Errorf("load.txt of an unreadable registry: %v, want an unavailable answer", err)
	}
}

func TestDHCPHostsQuery(t *testing.T) {
	t.Parallel()
	pools := settings.Defaults().Pools
	b := serveReports(t, reports{pools: func() []addresses.Pool { return pools }})
	dnsmasq, _ := addresses.DNSMasq(pools)
	dhcpd, _ := addresses.ISCDHCPD(pools)
	admin := &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}
	for _, tc := range []struct {
		name   string
		actor  *commonv1.Actor
		format string
		want   string    // the answer, when no error
		code   errs.Code // the error's code
	}{
		{"dnsmasq for an administrator", admin, "dnsmasq", dnsmasq, ""},
		{"dhcpd for an administrator", admin, "dhcpd", dhcpd, ""},
		{"dnsmasq for a service", nil, "dnsmasq", dnsmasq, ""},
		{"unknown format", admin, "bind", "", errs.Invalid},
		{"no format", admin, "", "", errs.Invalid},
		{"a user", &commonv1.Actor{User: "alice"}, "dnsmasq", "", errs.Forbidden},
		{"anonymous", &commonv1.Actor{}, "dnsmasq", "", errs.Forbidden},
		{"a user asking for an unknown format", &commonv1.Actor{User: "alice"}, "bind", "", errs.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ask(t, b, subject.SvcDHCPHosts, tc.actor, wrapperspb.String(tc.format))
			var qe *bus.QueryError
			switch {
			case tc.code == "" && (err != nil || got != tc.want):
				t.Errorf("answer %v\n%.300s\nwant\n%.300s", err, got, tc.want)
			case tc.code != "" && (!errors.As(err, &qe) || qe.Code() != string(tc.code) || qe.Message() == ""):
				t.Errorf("answer %v, want a %s error with a message", err, tc.code)
			}
		})
	}
	if !strings.Contains(dnsmasq, "\ndhcp-host=") || !strings.Contains(dhcpd, "hardware ethernet") {
		t.Fatalf("the default pools give no host entries:\n%.500s\n%.500s", dnsmasq, dhcpd)
	}
}
