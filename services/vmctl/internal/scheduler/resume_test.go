package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// TestCreateRedelivered: a create whose first delivery did its work but
// was not acknowledged (the process died before) is delivered again; the
// second delivery finds the machine it made and finishes, so that there is
// one machine, one number, one address and one deploy.
func TestCreateRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id, cmdID := uuid.NewString(), uuid.NewString()
	e.mu.Lock()
	e.failAfter[cmdID] = true
	e.mu.Unlock()
	if err := e.sendAs(cmdID, subject.VerbCimiCreate, machine.ID(id), alice, "", map[string]any{"image": uuid.NewString()}); err != nil {
		t.Fatalf("redelivered create: %v", err)
	}
	if d := e.deliveriesOf(cmdID); len(d) != 2 || d[1].err != nil {
		t.Fatalf("deliveries of the create: %+v", d)
	}
	m := e.waitState(id, machine.Running)
	if m.VMID != 1 {
		t.Errorf("vmId %d: the redelivery took another number", m.VMID)
	}
	doc, err := e.counters.Get(e.ctx, scheduler.CounterKind+"/vmid")
	if err != nil || !strings.Contains(string(doc.Body), `"next":2`) {
		t.Errorf("counter after one create: %s, %v", doc.Body, err)
	}
	if l := e.leasesOf(id); len(l) != 1 || l[0].IP != m.IP {
		t.Errorf("leases %+v, machine ip %s", l, m.IP)
	}
	deploys := e.tap.commandIDs(id)[subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbDeploy)]
	if len(deploys) != 1 {
		t.Fatalf("deploy commands %v, want one id", deploys)
	}
	e.eventually("the deploy's delivery ends", func() bool { return len(e.deliveriesOf(deploys[0])) > 0 })
	if d := e.deliveriesOf(deploys[0]); len(d) != 1 {
		t.Errorf("the deploy ran %d times: %+v", len(d), d)
	}
	if n := len(e.pdisk.commands(id)); n != 1 || e.hv.count(id, "define") != 1 || e.hv.count(id, "start") != 1 {
		t.Errorf("pdisk was asked %s; the agent %v", e.pdisk.describe(id), e.hv.callsOf(id))
	}

	// Another command creating the same machine is refused.
	err = e.send(subject.VerbCimiCreate, machine.ID(id), alice, "", map[string]any{"image": uuid.NewString()})
	wantCode(t, "a second create of one id", err, errs.Conflict, "already exists")
	if m2 := e.machine(id); m2.VMID != 1 || m2.DetailedState != machine.Running {
		t.Errorf("the refused create changed the machine: %+v", m2)
	}
}

// TestDeployResumes makes the scheduler die at each point of a start
// (scheduler.Config.Crash, as --crash-at does) and checks that the
// redelivered deploy resumes from the document: the machine runs, and
// pdisk and the agent did each step once, asked again, if at all, under
// the same command id.
func TestDeployResumes(t *testing.T) {
	t.Parallel()
	points := []string{"leased", "saved-Prolog", "disk-0", "disk-1", "saved-Boot", "defined", "started", "saved-Running"}
	for _, p := range points {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			point := "vmctl.scheduler." + p
			// A short step wait: a step that waits for an answer that
			// never comes shows within seconds.
			e := newEnv(t, options{crashAt: []string{point}, stepWait: 2 * time.Second})
			id := e.mustCreate(map[string]any{"image": uuid.NewString(), "volatileDisks": []int{1}})
			deploy := subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbDeploy)
			var timedOut []delivery
			crashed := func() bool {
				e.mu.Lock()
				defer e.mu.Unlock()
				return !e.crashAt[point]
			}
			e.eventually("the machine runs or a step times out", func() bool {
				if e.state(id) == machine.Running && crashed() {
					return true
				}
				for _, did := range e.tap.commandIDs(id)[deploy] {
					for _, d := range e.deliveriesOf(did) {
						if errs.CodeOf(d.err) == errs.Timeout {
							timedOut = append(timedOut, d)
						}
					}
				}
				return len(timedOut) > 0
			})
			if !crashed() {
				t.Fatalf("the scheduler never reached %s", point)
			}
			if len(timedOut) > 0 {
				t.Fatalf("after a crash at %s, the redelivered deploy waited for an answer that never came (%v) while the machine is %s:"+
					" it re-sent a command pdisk or the agent had already carried out under the same id within JetStream's duplicate window,"+
					" so the bus dropped it and no terminal event came. Commands sent (subject id → times): %v",
					point, timedOut[0].err, e.state(id), e.tap.sends(id))
			}
			// Every command about the machine went out under one id per
			// step, and was carried out once.
			for subj, ids := range e.tap.commandIDs(id) {
				if len(ids) != 1 {
					t.Errorf("%s was sent under %d ids: %v", subj, len(ids), ids)
				}
			}
			seen := map[string]int{}
			for _, c := range e.pdisk.commands(id) {
				seen[c.id]++
			}
			if len(seen) != 2 {
				t.Errorf("pdisk was asked %s; want an attach and a create", e.pdisk.describe(id))
			}
			for cid, n := range seen {
				if n != 1 {
					t.Errorf("pdisk carried out command %s %d times", cid, n)
				}
			}
			if e.hv.count(id, "define") != 1 || e.hv.count(id, "start") != 1 {
				t.Errorf("the agent was asked %v", e.hv.callsOf(id))
			}
			if l := e.leasesOf(id); len(l) != 1 {
				t.Errorf("leases %+v", l)
			}
			if !e.reservation(id) {
				t.Error("no reservation")
			}
		})
	}
}

// TestTeardownResumes kills a running machine and makes the scheduler die
// at each point of the teardown: the redelivered teardown finishes, and
// the machine is Done with everything released.
func TestTeardownResumes(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"destroyed", "released", "unleased"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			point := "vmctl.scheduler." + p
			e := newEnv(t, options{stepWait: 2 * time.Second})
			id := e.mustCreate(map[string]any{"image": uuid.NewString()})
			e.waitState(id, machine.Running)
			e.mu.Lock()
			e.crashAt[point] = true
			e.mu.Unlock()
			if err := e.kill(id); err != nil {
				t.Fatal(err)
			}
			e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, ", after a crash at "+point+
				": it re-sent a command already carried out under the same id within JetStream's duplicate window, which the bus dropped")
			e.checkReleased(id)
		})
	}
}

// TestStartRedefinesForgottenDomain: a host that forgot a domain between
// its define and its start (its agent restarted on a hypervisor that keeps
// no domains) gets it defined again, once, and the machine runs.
func TestStartRedefinesForgottenDomain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	e.hv.mu.Lock()
	e.hv.forgetFirst = true
	e.hv.mu.Unlock()
	id := e.mustCreate(map[string]any{"image": uuid.NewString()})
	e.waitState(id, machine.Running)
	if got := e.hv.callsOf(id); strings.Join(got, ",") != "define,start,define,start" {
		t.Errorf("the agent was asked %v, want define, start, define, start", got)
	}
	if st, err := e.hv.State(e.ctx, id); err != nil || st != hypervisor.Running {
		t.Errorf("domain state %v, %v", st, err)
	}
}
