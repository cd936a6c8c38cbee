package gateway

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
)

// Reports of the vmctl stand-in.
const (
	testLoadTxt = "ID NAME               RVM   TCPU   FCPU   ACPU   TMEM   FMEM   AMEM  STAT\n" +
		" 0 134.158.48.52        0      0      0      0     0K     0K     0K  err\n"
	testDNSMasq = "dhcp-host=0a:00:86:9e:4b:2a,set:public,134.158.75.42,vm-42\n"
	testDHCPD   = "host vm-42 { hardware ethernet 0a:00:86:9e:4b:2a; fixed-address 134.158.75.42; }\n"
)

// reportsStandIn answers vmctl's report queries as vmctl does, and
// remembers the actors of the DHCP queries.
type reportsStandIn struct {
	mu     sync.Mutex
	actors []string
}

func (v *reportsStandIn) serve(ctx context.Context, b *bus.Bus) error {
	return b.Serve(ctx, bus.ServiceInfo{Name: subject.Vmctl},
		bus.Handle(subject.OpLoadTxt, func(context.Context, *emptypb.Empty) (proto.Message, error) {
			return wrapperspb.String(testLoadTxt), nil
		}),
		bus.Handle(subject.OpDHCPHosts, func(ctx context.Context, req *wrapperspb.StringValue) (proto.Message, error) {
			a := bus.ActorFrom(ctx)
			v.mu.Lock()
			v.actors = append(v.actors, a.GetUser())
			v.mu.Unlock()
			switch req.GetValue() {
			case "dnsmasq":
				return wrapperspb.String(testDNSMasq), nil
			case "dhcpd":
				return wrapperspb.String(testDHCPD), nil
			}
			return nil, errs.Errorf(errs.Invalid, "There are no DHCP host entries in the format %q.", req.GetValue())
		}),
	)
}

func (v *reportsStandIn) dhcpActors() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.actors...)
}

func TestReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	// vmctl is not running: 503 with the CIMI error body, after the
	// checks the gateway makes itself.
	for _, tc := range []struct {
		r      req
		status int
		code   errs.Code
	}{
		{req{method: "GET", path: "/load.txt"}, 503, errs.Unavailable},
		{req{method: "GET", path: "/dhcp/hosts?format=dnsmasq", as: "admin"}, 503, errs.Unavailable},
		{req{method: "GET", path: "/dhcp/hosts?format=dnsmasq", as: "alice"}, 403, errs.Forbidden},
		{req{method: "GET", path: "/dhcp/hosts?format=dnsmasq"}, 401, errs.Unauthorized},
	} {
		e.do(tc.r).wantError(t, tc.r.path+" as "+tc.r.as+" without vmctl", tc.status, tc.code)
	}

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	vmctl := &reportsStandIn{}
	start(t, func(ctx context.Context) error {
		return vmctl.serve(ctx, bus.New(e.nc, js, bus.Options{Service: subject.Vmctl, Logger: quiet()}))
	})
	eventually(t, "vmctl answering", func() bool { return e.do(req{method: "GET", path: "/load.txt"}).status == 200 })

	for _, tc := range []struct {
		name   string
		r      req
		status int
		body   string    // the text answered, when 200
		code   errs.Code // the error's code otherwise
	}{
		{"load.txt, anonymous", req{method: "GET", path: "/load.txt"}, 200, testLoadTxt, ""},
		{"load.txt, a user", req{method: "GET", path: "/load.txt", as: "alice"}, 200, testLoadTxt, ""},
		{"load.txt, HEAD", req{method: "HEAD", path: "/load.txt"}, 200, "", ""},
		{"load.txt, POST", req{method: "POST", path: "/load.txt"}, 405, "", errs.MethodNotAllowed},
		{"load.txt is not a CIMI resource", req{method: "GET", path: "/cimi/load.txt", as: "admin"}, 404, "", errs.NotFound},
		{"dnsmasq", req{method: "GET", path: "/dhcp/hosts?format=dnsmasq", as: "admin"}, 200, testDNSMasq, ""},
		{"dhcpd", req{method: "GET", path: "/dhcp/hosts?format=dhcpd", as: "admin"}, 200, testDHCPD, ""},
		{"dhcpd, HEAD", req{method: "HEAD", path: "/dhcp/hosts?format=dhcpd", as: "admin"}, 200, "", ""},
		{"unknown format", req{method: "GET", path: "/dhcp/hosts?format=bind", as: "admin"}, 400, "", errs.Invalid},
		{"no format", req{method: "GET", path: "/dhcp/hosts", as: "admin"}, 400, "", errs.Invalid},
		{"unreadable query", req{method: "GET", path: "/dhcp/hosts?format=%zz", as: "admin"}, 400, "", errs.Invalid},
		{"dhcp, a user", req{method: "GET", path: "/dhcp/hosts?format=dnsmasq", as: "alice"}, 403, "", errs.Forbidden},
		{"dhcp, anonymous", req{method: "GET", path: "/dhcp/hosts?format=dnsmasq"}, 401, "", errs.Unauthorized},
		{"dhcp, DELETE", req{method: "DELETE", path: "/dhcp/hosts?format=dnsmasq", as: "admin"}, 405, "", errs.MethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.r)
			if tc.status != 200 {
				r.wantError(t, tc.name, tc.status, tc.code)
				return
			}
			r.want(t, tc.name, 200)
			if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if string(r.raw) != tc.body {
				t.Errorf("body %q, want %q", r.raw, tc.body)
			}
			// HEAD says how long its GET would be.
			want := testLoadTxt
			if tc.r.path != "/load.txt" {
				want = testDHCPD
			}
			if tc.r.method == "HEAD" && r.header.Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Errorf("HEAD Content-Length %q, want %d", r.header.Get("Content-Length"), len(want))
			}
		})
	}
	if r := e.do(req{method: "GET", path: "/dhcp/hosts?format=dnsmasq"}); r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("an anonymous 401 does not invite to authenticate: %v", r.header)
	}
	// vmctl learns who asks, and so may refuse too.
	for _, a := range vmctl.dhcpActors() {
		if a != "admin" {
			t.Errorf("vmctl was asked for the DHCP entries on behalf of %q", a)
		}
	}
	if len(vmctl.dhcpActors()) == 0 {
		t.Error("vmctl was never asked for the DHCP entries")
	}
}
