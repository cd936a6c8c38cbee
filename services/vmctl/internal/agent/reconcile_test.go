package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// TestReconcile runs the agent's reconciler on libvirt's test driver and a
// real store: strays are destroyed (or only reported), machines whose
// domain vanished or stopped by itself show Unknown, and a machine that
// runs as it should is left alone.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	nc, js := testkit.JetStream(t)
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	machines, err := st.Collection(ctx, machine.Kind)
	if err != nil {
		t.Fatal(err)
	}
	hostColl, err := st.Collection(ctx, hosts.Kind)
	if err != nil {
		t.Fatal(err)
	}
	hv, err := hypervisor.Open(ctx, "test:///default", hypervisor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hv.Close() })
	a, err := New(Config{HostID: "h1", Hypervisor: hv, Machines: machines, Dir: t.TempDir(), Log: slog.New(slog.DiscardHandler),
		Hosts: hosts.New(hostColl, func() (float64, float64) { return 1, 1 }, time.Now), Bus: bus.New(nc, js, bus.Options{Service: "vmctl"})})
	if err != nil {
		t.Fatal(err)
	}
	domain := func(id string, start bool) {
		t.Helper()
		if err := hv.Define(ctx, hypervisor.Domain{UUID: id, Name: "stratus-" + id, CPU: 1, MemoryMiB: 64}); err != nil {
			t.Fatal(err)
		}
		if start {
			if err := hv.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	put := func(id string, d machine.Detailed) {
		t.Helper()
		m := &machine.Machine{ID: machine.ID(id), UUID: id, Host: hosts.DocumentID("h1")}
		m.SetState(d, "", time.Now())
		body, _ := m.Encode()
		if _, err := machines.Create(ctx, m.ID, body); err != nil {
			t.Fatal(err)
		}
	}
	state := func(id string) machine.Detailed {
		t.Helper()
		doc, err := machines.Get(ctx, machine.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := machine.Decode(doc.Body)
		return m.DetailedState
	}

	stray, ended, vanished, stopped, fine := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	domain(stray, true)
	domain(ended, true)
	put(ended, machine.Done)
	put(vanished, machine.Running)
	domain(stopped, false)
	put(stopped, machine.Running)
	domain(fine, true)
	put(fine, machine.Running)

	rep, err := a.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Strays, stray) || !slices.Contains(rep.Strays, ended) || len(rep.Destroyed) != 0 {
		t.Errorf("report without destroying: %+v", rep)
	}
	if s, _ := hv.State(ctx, stray); s != hypervisor.Running {
		t.Errorf("a stray was touched although strays are only reported: %v", s)
	}
	if state(vanished) != machine.UnknownD || state(stopped) != machine.UnknownD || state(fine) != machine.Running {
		t.Errorf("machines after the reconciliation: vanished %s, stopped %s, fine %s", state(vanished), state(stopped), state(fine))
	}

	rep, err = a.Reconcile(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{stray, ended} {
		if !slices.Contains(rep.Destroyed, id) {
			t.Errorf("stray %s not destroyed: %+v", id, rep)
		}
		if s, _ := hv.State(ctx, id); s != hypervisor.Missing {
			t.Errorf("stray %s is %v after the reconciliation", id, s)
		}
	}
	if s, _ := hv.State(ctx, fine); s != hypervisor.Running {
		t.Errorf("a running machine's domain is %v", s)
	}
}
