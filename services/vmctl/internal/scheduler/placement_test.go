package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// TestPlacementNoRoom fills the host, then asks for one more machine: it
// stays Pending through the first deliveries of its deploy (a host may
// free up meanwhile), then fails with the reason, having given its address
// back and asked pdisk and the agent for nothing. Once a machine ends, the
// next one fits.
func TestPlacementNoRoom(t *testing.T) {
	t.Parallel()
	// Room for two m1.small (1 CPU, 1536 MiB) and no third; deploys are
	// redelivered at once.
	e := newEnv(t, options{cpus: 2, memMiB: 4096, backoff: 10 * time.Millisecond})
	a := e.mustCreate(map[string]any{"image": urlImage()})
	b := e.mustCreate(map[string]any{"image": urlImage()})
	e.waitState(a, machine.Running)
	e.waitState(b, machine.Running)

	c := e.mustCreate(map[string]any{"image": urlImage()})
	m := e.waitState(c, machine.Failed)
	if m.State != machine.ErrorS || !strings.Contains(m.StateMessage, "No host can take a machine of 1 CPU and 1536 MiB") ||
		!strings.Contains(m.StateMessage, "full") {
		t.Errorf("failed machine: %s %q; want the reason", m.State, m.StateMessage)
	}
	deploys := e.tap.commandIDs(c)[subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbDeploy)]
	if len(deploys) != 1 {
		t.Fatalf("deploys %v", deploys)
	}
	var ds []delivery
	e.eventually("the deploy's last delivery ends", func() bool {
		ds = e.deliveriesOf(deploys[0])
		return len(ds) >= 5
	})
	if len(ds) != 5 {
		t.Fatalf("the deploy was delivered %d times (%+v), want 5", len(ds), ds)
	}
	for i, d := range ds[:4] {
		if errs.CodeOf(d.err) != errs.Unavailable || d.state != machine.Pending || !strings.Contains(errs.MessageOf(d.err), "No host can take") {
			t.Errorf("delivery %d: %v, machine %s; want it retried, the machine Pending", i+1, d.err, d.state)
		}
	}
	if ds[4].err != nil || ds[4].state != machine.Failed {
		t.Errorf("last delivery: %v, machine %s; want the machine Failed and the command done", ds[4].err, ds[4].state)
	}
	e.checkReleased(c)
	if cmds := e.pdisk.commands(c); len(cmds) != 0 {
		t.Errorf("pdisk was asked for a machine that was never placed: %s", e.pdisk.describe(c))
	}
	if calls := e.hv.callsOf(c); len(calls) != 0 {
		t.Errorf("the agent was asked %v for a machine that was never placed", calls)
	}

	// A Failed machine is killed like any other, and room freed by a kill
	// takes the next machine.
	if err := e.kill(c); err != nil {
		t.Fatal(err)
	}
	e.waitOrStall(c, machine.Done, scheduler.VerbTeardown, "")
	if err := e.kill(a); err != nil {
		t.Fatal(err)
	}
	e.waitOrStall(a, machine.Done, scheduler.VerbTeardown, "")
	e.checkReleased(a)
	d := e.mustCreate(map[string]any{"image": urlImage()})
	if m := e.waitState(d, machine.Running); m.Host != "Host/"+hostID {
		t.Errorf("host %q", m.Host)
	}
}

// TestPlacementMaintenance: a host in maintenance takes no new machine,
// which waits Pending; back in service, the next delivery places it.
func TestPlacementMaintenance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{backoff: time.Second})
	if err := e.hosts.SetMaintenance(e.ctx, hostID, true); err != nil {
		t.Fatal(err)
	}
	id := e.mustCreate(map[string]any{"image": urlImage()})
	deploy := subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbDeploy)
	e.eventually("the deploy finds no host", func() bool {
		for _, did := range e.tap.commandIDs(id)[deploy] {
			if ds := e.deliveriesOf(did); len(ds) > 0 {
				return true
			}
		}
		return false
	})
	if st := e.state(id); st != machine.Pending {
		t.Fatalf("machine is %s while the only host is in maintenance", st)
	}
	if err := e.hosts.SetMaintenance(e.ctx, hostID, false); err != nil {
		t.Fatal(err)
	}
	e.waitState(id, machine.Running)
}
