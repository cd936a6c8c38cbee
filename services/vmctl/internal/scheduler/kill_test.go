package scheduler_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// urlImage is an image pdisk fetches (get_image) for the root disk.
func urlImage() map[string]any {
	return map[string]any{"url": "https://example.org/debian.qcow2", "bytes": 4096, "sha1": strings.Repeat("3f", 20)}
}

// signal is a channel closed once, when something is reached.
type signal struct {
	once sync.Once
	c    chan struct{}
}

func newSignal() *signal     { return &signal{c: make(chan struct{})} }
func (s *signal) fire()      { s.once.Do(func() { close(s.c) }) }
func (s *signal) wait() bool { <-s.c; return true }

// deployEnded waits until the deploy of machine id has returned for good
// (nil, or an error the bus does not retry).
func (e *env) deployEnded(id string) {
	e.t.Helper()
	deploy := subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbDeploy)
	e.eventually("the deploy of "+id+" ends", func() bool {
		for _, did := range e.tap.commandIDs(id)[deploy] {
			for _, d := range e.deliveriesOf(did) {
				if d.err == nil || !bus.Transient(d.err) {
					return true
				}
			}
		}
		return false
	})
}

// TestKill kills a machine in each state it can be killed in: the kill is
// accepted, the machine ends Done and gives everything back (its
// addresses, its room on the host, its volumes at pdisk, its domain),
// whatever its deploy was doing.
func TestKill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// reach brings machine id to the state to kill it in; it returns
		// what lets the deploy go on afterwards, if it was held.
		reach func(e *env, body map[string]any) (id string, release func())
	}{
		{"Pending", func(e *env, body map[string]any) (string, func()) {
			gate := make(chan struct{})
			e.setHold(func(subj, _ string) <-chan struct{} {
				if strings.HasSuffix(subj, "."+scheduler.VerbDeploy) {
					return gate
				}
				return nil
			})
			id := e.mustCreate(body)
			if st := e.state(id); st != machine.Pending {
				e.t.Fatalf("machine is %s", st)
			}
			return id, func() { close(gate) }
		}},
		{"Prolog", func(e *env, body map[string]any) (string, func()) {
			gate, reached := make(chan struct{}), newSignal()
			e.pdisk.setHold(func(c pdiskCmd) <-chan struct{} {
				if c.verb == "get_image" {
					reached.fire()
					return gate
				}
				return nil
			})
			id := e.mustCreate(body)
			reached.wait()
			if st := e.state(id); st != machine.Prolog {
				e.t.Fatalf("machine is %s", st)
			}
			return id, func() { close(gate) }
		}},
		{"Boot", func(e *env, body map[string]any) (string, func()) {
			gate, reached := make(chan struct{}), newSignal()
			e.pdisk.setHoldGet(func(string) <-chan struct{} { reached.fire(); return gate })
			id := e.mustCreate(body)
			reached.wait()
			if st := e.state(id); st != machine.Boot {
				e.t.Fatalf("machine is %s", st)
			}
			return id, func() { close(gate) }
		}},
		{"Boot, defining", func(e *env, body map[string]any) (string, func()) {
			gate, reached := make(chan struct{}), newSignal()
			e.hv.mu.Lock()
			e.hv.holdDefine = func(string) <-chan struct{} { reached.fire(); return gate }
			e.hv.mu.Unlock()
			id := e.mustCreate(body)
			reached.wait()
			if st := e.state(id); st != machine.Boot {
				e.t.Fatalf("machine is %s", st)
			}
			return id, func() { close(gate) }
		}},
		{"Running", func(e *env, body map[string]any) (string, func()) {
			id := e.mustCreate(body)
			e.waitState(id, machine.Running)
			return id, func() {}
		}},
		{"Stopped", func(e *env, body map[string]any) (string, func()) {
			id := e.mustCreate(body)
			e.waitState(id, machine.Running)
			if err := e.act(id, scheduler.ActionStop, nil); err != nil {
				e.t.Fatal(err)
			}
			e.waitState(id, machine.StoppedD)
			return id, func() {}
		}},
		{"Unknown", func(e *env, body map[string]any) (string, func()) {
			id := e.mustCreate(body)
			e.waitState(id, machine.Running)
			// What the janitor writes when the host stops answering.
			e.setState(id, machine.UnknownD, "host h1 stopped answering")
			return id, func() {}
		}},
		{"Failed", func(e *env, body map[string]any) (string, func()) {
			e.pdisk.setRefuse(func(c pdiskCmd) error {
				if c.verb == "create" {
					return errs.Errorf(errs.QuotaExceeded, "Creating %s would exceed your quota of 10 GiB.", c.volume)
				}
				return nil
			})
			id := e.mustCreate(body)
			m := e.waitState(id, machine.Failed)
			if m.State != machine.ErrorS || !strings.Contains(m.StateMessage, "would exceed your quota") {
				e.t.Errorf("failed machine: %s %q; want pdisk's reason", m.State, m.StateMessage)
			}
			// A failed machine already gave everything back.
			e.checkReleased(id)
			return id, func() {}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, options{})
			body := map[string]any{"image": urlImage(), "volatileDisks": []int{1}, "persistentDisks": []string{uuid.NewString()}}
			id, open := tc.reach(e, body)
			var once sync.Once
			release := func() { once.Do(open) }
			t.Cleanup(release) // a failed test must not leave a handler waiting
			if err := e.kill(id); err != nil {
				t.Fatalf("kill in %s: %v", tc.name, err)
			}
			m := e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
			if m.State != machine.Deleted {
				t.Errorf("killed machine: DMTF state %s", m.State)
			}
			release()
			e.deployEnded(id)
			if st := e.state(id); st != machine.Done {
				t.Errorf("the deploy moved the killed machine to %s", st)
			}
			e.checkReleased(id)
			// Every volume the machine had from pdisk was released for it;
			// a machine never placed had nothing from pdisk, which is not
			// asked.
			final := e.machine(id)
			for _, d := range final.Disks {
				if d.Volume == "" {
					continue
				}
				if final.Host == "" {
					for _, c := range e.pdisk.commands(id) {
						t.Errorf("pdisk was asked about a machine never placed: %T %v", c.msg, c.msg)
					}
					break
				}
				vol := strings.TrimPrefix(d.Volume, "Volume/")
				released := false
				for _, c := range e.pdisk.commands(id) {
					if r, ok := c.msg.(*volumev1.ReleaseVolume); ok && r.GetUuid() == vol && r.GetMachineUuid() == id {
						released = true
					}
				}
				if !released {
					t.Errorf("no release of %s (%s) was sent; pdisk was asked: %s", vol, d.Role, e.pdisk.describe(id))
				}
			}

			// A machine is killed once.
			wantCode(t, "a second kill", e.kill(id), errs.Conflict, "already done")
			// The document stays, visible to its owner.
			if m := e.machine(id); m.DetailedState != machine.Done || m.VMID != 1 {
				t.Errorf("after the second kill: %+v", m)
			}
		})
	}
}

// TestKillByAnother: only the owner (or an administrator) kills a
// machine; another user does not even learn that it exists.
func TestKillByAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": uuid.NewString()})
	e.waitState(id, machine.Running)
	wantCode(t, "bob kills alice's machine", e.send(subject.VerbCimiDelete, machine.ID(id), bob, "", nil), errs.NotFound)
	wantCode(t, "bob stops alice's machine", e.send(subject.VerbCimiActionPrefix+scheduler.ActionStop, machine.ID(id), bob, scheduler.ActionStop, nil), errs.NotFound)
	if st := e.state(id); st != machine.Running {
		t.Errorf("alice's machine is %s", st)
	}
}

// setState writes machine id in state d, as another replica or the
// janitor would.
func (e *env) setState(id string, d machine.Detailed, msg string) {
	e.t.Helper()
	doc, err := e.truth.Get(e.ctx, machine.ID(id))
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := machine.Decode(doc.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	m.SetState(d, msg, time.Now())
	body, _ := m.Encode()
	if _, err := e.truth.Put(e.ctx, machine.ID(id), body, doc.Revision); err != nil {
		e.t.Fatal(err)
	}
}

// TestKillWhileEnding: a machine already ending (Epilog, here after a
// shutdown) accepts a kill, which changes nothing: one teardown ends it.
func TestKillWhileEnding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": uuid.NewString(), "volatileDisks": []int{1}})
	e.waitState(id, machine.Running)
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	e.setHold(func(subj, mid string) <-chan struct{} {
		if mid == id && strings.HasSuffix(subj, "."+scheduler.VerbTeardown) {
			return gate
		}
		return nil
	})
	if err := e.act(id, scheduler.ActionShutdown, nil); err != nil {
		t.Fatal(err)
	}
	if m := e.machine(id); m.DetailedState != machine.Epilog || m.State != machine.Stopping {
		t.Fatalf("after shutdown: %s/%s", m.DetailedState, m.State)
	}
	if err := e.kill(id); err != nil {
		t.Fatalf("kill while ending: %v", err)
	}
	if st := e.state(id); st != machine.Epilog {
		t.Errorf("after the kill: %s", st)
	}
	release()
	e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	e.checkReleased(id)
	teardowns := e.tap.commandIDs(id)[subject.Command(subject.Vmctl, subject.ResourceMachine, scheduler.VerbTeardown)]
	if len(teardowns) != 1 {
		t.Fatalf("teardowns %v", teardowns)
	}
	e.eventually("the teardown ends", func() bool { return len(e.deliveriesOf(teardowns[0])) > 0 })
	if d := e.deliveriesOf(teardowns[0]); len(d) != 1 || d[0].err != nil {
		t.Errorf("teardown deliveries %+v", d)
	}
	releases := map[string]int{}
	for _, c := range e.pdisk.commands(id) {
		if c.verb == "release" {
			releases[c.volume]++
		}
	}
	if len(releases) != 2 {
		t.Errorf("releases %v; pdisk was asked %s", releases, e.pdisk.describe(id))
	}
	for v, n := range releases {
		if n != 1 {
			t.Errorf("volume %s released %d times", v, n)
		}
	}
	if e.hv.count(id, "shutdown") != 1 || e.hv.count(id, "destroy") != 1 {
		t.Errorf("the agent was asked %v", e.hv.callsOf(id))
	}
}
