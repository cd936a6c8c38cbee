package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/proto/subject"
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
	e := newEnv(t)
	a, hv, machines := e.agent, e.hv, e.machines
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

// env is an agent of host h1 on libvirt's test driver, a real store and an
// in-process NATS with the platform's streams.
type env struct {
	agent    *Agent
	hv       *hypervisor.Libvirt
	machines store.Collection
	nc       *nats.Conn
}

func newEnv(t *testing.T) env {
	t.Helper()
	ctx := context.Background()
	nc, js := testkit.JetStream(t)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
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
	return env{agent: a, hv: hv, machines: machines, nc: nc}
}

// TestReconcileMachineStates: the reconciler shows Unknown the machines
// whose guest stopped or vanished, shows Running again those of a host
// that came back whose domain runs, leaves the rest alone, and announces
// each change with the document's and the state's events.
func TestReconcileMachineStates(t *testing.T) {
	const lostHost = "host h1 stopped answering" // what the janitor writes
	tests := []struct {
		name        string
		host        string
		state       machine.Detailed
		message     string
		domain      hypervisor.State // Missing: no domain
		want        machine.Detailed
		wantMessage string // a part of the new message; "" for none
		report      string // "lost", "back" or ""
		// stop: the agent powers the domain off on request first, as
		// for a stop whose answer the scheduler has not recorded yet.
		stop bool
	}{
		{"running as it should", "h1", machine.Running, "", hypervisor.Running, machine.Running, "", "", false},
		{"domain gone", "h1", machine.Running, "", hypervisor.Missing, machine.UnknownD, "gone from host h1", "lost", false},
		{"guest powered itself off", "h1", machine.Running, "", hypervisor.Shutoff, machine.UnknownD, "stopped by itself", "lost", false},
		{"being stopped", "h1", machine.Running, "", hypervisor.Running, machine.Running, "", "", true},
		{"host came back, domain runs", "h1", machine.UnknownD, lostHost, hypervisor.Running, machine.Running, "", "back", false},
		{"host came back, guest had powered off", "h1", machine.UnknownD, lostHost, hypervisor.Shutoff, machine.UnknownD, lostHost, "", false},
		{"host came back, domain gone", "h1", machine.UnknownD, lostHost, hypervisor.Missing, machine.UnknownD, lostHost, "", false},
		{"unknown since its guest powered off", "h1", machine.UnknownD, "the guest stopped by itself (shutoff)", hypervisor.Shutoff,
			machine.UnknownD, "the guest stopped by itself (shutoff)", "", false},
		{"stopped by its user", "h1", machine.StoppedD, "", hypervisor.Shutoff, machine.StoppedD, "", "", false},
		{"unknown on another host", "h2", machine.UnknownD, "host h2 stopped answering", hypervisor.Running,
			machine.UnknownD, "host h2 stopped answering", "", false},
	}
	ctx := context.Background()
	e := newEnv(t)
	events, err := e.nc.SubscribeSync("evt.vmctl.machine.>")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		ids[i] = uuid.NewString()
		if tt.domain != hypervisor.Missing {
			if err := e.hv.Define(ctx, hypervisor.Domain{UUID: ids[i], Name: "stratus-" + ids[i], CPU: 1, MemoryMiB: 64}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.hv.Destroy(ctx, ids[i]); _ = e.hv.Undefine(ctx, ids[i]) })
		}
		if tt.domain == hypervisor.Running {
			if err := e.hv.Start(ctx, ids[i]); err != nil {
				t.Fatal(err)
			}
		}
		if tt.stop {
			if err := e.agent.shutdown(ctx, &machinev1.ShutdownDomain{MachineUuid: ids[i], Timeout: durationpb.New(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if st, err := e.hv.State(ctx, ids[i]); err != nil || st != hypervisor.Shutoff {
				t.Fatalf("%s: the domain is %v, %v after the shutdown", tt.name, st, err)
			}
		}
		m := &machine.Machine{ID: machine.ID(ids[i]), UUID: ids[i], Owner: "alice", Type: "t1.micro", Host: hosts.DocumentID(tt.host)}
		m.SetState(tt.state, tt.message, time.Now())
		body, _ := m.Encode()
		if _, err := e.machines.Create(ctx, m.ID, body); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := e.agent.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Every event published before Flush returned has reached us.
	changes, states := map[string]int{}, map[string][]machine.Detailed{}
	for {
		msg, err := events.NextMsg(0)
		if err != nil {
			break
		}
		switch msg.Subject {
		case subject.EvtMachineStateChanged:
			var ev machinev1.MachineStateChanged
			if err := proto.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatal(err)
			}
			d := map[machinev1.DetailedState]machine.Detailed{
				machinev1.DetailedState_DETAILED_STATE_RUNNING: machine.Running, machinev1.DetailedState_DETAILED_STATE_UNKNOWN: machine.UnknownD,
			}[ev.GetMachine().GetDetailedState()]
			states[ev.GetMachine().GetUuid()] = append(states[ev.GetMachine().GetUuid()], d)
		case subject.Event(subject.Vmctl, subject.ResourceMachine, subject.EventUpdated):
			var ev cimiv1.ResourceChanged
			if err := proto.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatal(err)
			}
			changes[ev.GetId()]++
		}
	}

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := e.machines.Get(ctx, machine.ID(ids[i]))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := machine.Decode(doc.Body)
			if m.DetailedState != tt.want || (tt.wantMessage == "") != (m.StateMessage == "") || !strings.Contains(m.StateMessage, tt.wantMessage) {
				t.Errorf("machine is %s (%q), want %s (%q)", m.DetailedState, m.StateMessage, tt.want, tt.wantMessage)
			}
			if m.State != machine.CIMIState(tt.want) {
				t.Errorf("CIMI state %s, want %s", m.State, machine.CIMIState(tt.want))
			}
			changed := tt.want != tt.state
			if want := map[bool]int{true: 1}[changed]; changes[machine.ID(ids[i])] != want {
				t.Errorf("%d ResourceChanged events, want %d", changes[machine.ID(ids[i])], want)
			}
			if changed && !slices.Equal(states[ids[i]], []machine.Detailed{tt.want}) {
				t.Errorf("MachineStateChanged events say %v, want [%s]", states[ids[i]], tt.want)
			} else if !changed && len(states[ids[i]]) != 0 {
				t.Errorf("MachineStateChanged events %v for a machine that did not change", states[ids[i]])
			}
			if got := map[string]bool{"lost": slices.Contains(rep.Lost, ids[i]), "back": slices.Contains(rep.Back, ids[i])}; got["lost"] != (tt.report == "lost") || got["back"] != (tt.report == "back") {
				t.Errorf("report %+v, want the machine in %q", rep, tt.report)
			}
		})
	}

	// A second round finds nothing more to do.
	rep, err = e.agent.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(rep.Lost, rep.Back...) {
		if slices.Contains(ids, id) {
			t.Errorf("the second round changed machine %s again: %+v", id, rep)
		}
	}
}
