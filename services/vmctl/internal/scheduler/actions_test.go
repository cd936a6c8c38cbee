package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/errs"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// TestActions runs every action on a running machine through the bus, the
// real agent and pdisk's stand-in, with the refusals users see.
func TestActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	root := uuid.NewString()
	id := e.mustCreate(map[string]any{"image": root, "volatileDisks": []int{1}})
	e.waitState(id, machine.Running)
	domain := func() hypervisor.State {
		t.Helper()
		st, err := e.hv.State(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// stop, start, restart.
	if err := e.act(id, scheduler.ActionStop, nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if m := e.machine(id); m.DetailedState != machine.StoppedD || m.State != machine.Stopped || domain() != hypervisor.Shutoff {
		t.Errorf("after stop: %s/%s, domain %v", m.DetailedState, m.State, domain())
	}
	wantCode(t, "stop a stopped machine", e.act(id, scheduler.ActionStop, nil), errs.Conflict, "Machine 1 is Stopped", "Running")
	wantCode(t, "restart a stopped machine", e.act(id, scheduler.ActionRestart, nil), errs.Conflict, "Machine 1 is Stopped")
	wantCode(t, "attach to a stopped machine", e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": uuid.NewString()}),
		errs.Conflict, "hot-plugged into running machines")
	if err := e.act(id, scheduler.ActionStart, nil); err != nil {
		t.Fatalf("start: %v", err)
	}
	if m := e.machine(id); m.DetailedState != machine.Running || domain() != hypervisor.Running {
		t.Errorf("after start: %s, domain %v", m.DetailedState, domain())
	}
	wantCode(t, "start a running machine", e.act(id, scheduler.ActionStart, nil), errs.Conflict, "Machine 1 is Running", "Stopped")
	if err := e.act(id, scheduler.ActionRestart, nil); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if e.state(id) != machine.Running || e.hv.count(id, "reboot") != 1 || e.hv.count(id, "shutdown") != 1 || e.hv.count(id, "start") != 2 {
		t.Errorf("after restart: %s; the agent was asked %v", e.state(id), e.hv.callsOf(id))
	}
	// A CIMI Action body naming the action works as a plain body.
	if err := e.act(id, scheduler.ActionRestart, map[string]any{"action": "http://schemas.dmtf.org/cimi/2/action/restart"}); err != nil {
		t.Errorf("restart with a CIMI Action body: %v", err)
	}

	// attach_volume: pdisk records it as hot-plugged on a free device,
	// the agent plugs pdisk's path in, the machine lists it.
	vol := uuid.NewString()
	if err := e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": vol}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	m := e.machine(id)
	var plugged machine.Disk
	for _, d := range m.Disks {
		if d.Volume == "Volume/"+vol {
			plugged = d
		}
	}
	used := map[string]int{}
	for _, d := range m.Disks {
		used[d.Device]++
	}
	if !plugged.HotPlugged || plugged.Role != machine.RolePersistent || used[plugged.Device] != 1 || !strings.HasPrefix(plugged.Device, "vd") {
		t.Fatalf("after attach: disks %+v", m.Disks)
	}
	var attach *volumev1.AttachVolume
	for _, c := range e.pdisk.commands(id) {
		if a, ok := c.msg.(*volumev1.AttachVolume); ok && a.GetUuid() == vol {
			attach = a
		}
	}
	if attach == nil || !attach.GetHotPlugged() || attach.GetDevice() != plugged.Device || attach.GetMachineUuid() != id {
		t.Errorf("pdisk was asked %v", attach)
	}
	if want := "attach " + plugged.Device + " /var/lib/pdisk/" + vol + ".qcow2"; !slices.Contains(e.hv.callsOf(id), want) {
		t.Errorf("the agent was asked %v, want %q", e.hv.callsOf(id), want)
	}
	// Attaching it again changes nothing; the "Volume/" prefix is
	// understood.
	before := len(e.pdisk.commands(id))
	if err := e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": "Volume/" + vol}); err != nil {
		t.Errorf("attach again: %v", err)
	}
	if n := len(e.pdisk.commands(id)); n != before || len(e.machine(id).Disks) != len(m.Disks) {
		t.Errorf("attaching again sent %d pdisk commands and left disks %+v", n-before, e.machine(id).Disks)
	}

	// pdisk's refusal reaches the user as it is, and nothing is plugged.
	taken := uuid.NewString()
	e.pdisk.setRefuse(func(c pdiskCmd) error {
		if c.volume == taken {
			return errs.Errorf(errs.Conflict, "Volume %s is in use by machine 7.", taken)
		}
		return nil
	})
	wantCode(t, "attach a volume in use", e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": taken}),
		errs.Conflict, "Volume "+taken+" is in use by machine 7.")
	for _, c := range e.hv.callsOf(id) {
		if strings.Contains(c, taken) {
			t.Errorf("the agent plugged the refused volume in: %v", c)
		}
	}
	if len(e.machine(id).Disks) != len(m.Disks) {
		t.Errorf("the refused volume is listed: %+v", e.machine(id).Disks)
	}

	// Bad bodies.
	for _, body := range []map[string]any{{}, {"volume": "nope"}, {"volume": 42}, {"volume": strings.ToUpper(vol)}, {"volumes": vol}} {
		wantCode(t, fmt.Sprintf("attach %v", body), e.act(id, scheduler.ActionAttachVolume, body), errs.Invalid, "volume uuid")
		wantCode(t, fmt.Sprintf("detach %v", body), e.act(id, scheduler.ActionDetachVolume, body), errs.Invalid, "volume uuid")
	}

	// detach_volume: a launch disk stays; a volume the machine does not
	// hold is not found; the hot-plugged one goes.
	wantCode(t, "detach the root disk", e.act(id, scheduler.ActionDetachVolume, map[string]any{"volume": root}), errs.Conflict, "Disk have not been hot-plugged")
	wantCode(t, "detach another volume", e.act(id, scheduler.ActionDetachVolume, map[string]any{"volume": uuid.NewString()}), errs.NotFound, "does not hold volume")
	if err := e.act(id, scheduler.ActionDetachVolume, map[string]any{"volume": vol}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	for _, d := range e.machine(id).Disks {
		if d.Volume == "Volume/"+vol {
			t.Errorf("detached volume still listed: %+v", d)
		}
	}
	if !slices.Contains(e.hv.callsOf(id), "detach "+plugged.Device) {
		t.Errorf("the agent was asked %v", e.hv.callsOf(id))
	}
	if held := e.pdisk.heldBy(id); slices.Contains(held, vol) {
		t.Errorf("pdisk still has %s attached", vol)
	}
	var detach *volumev1.DetachVolume
	for _, c := range e.pdisk.commands(id) {
		if d, ok := c.msg.(*volumev1.DetachVolume); ok && d.GetUuid() == vol {
			detach = d
		}
	}
	if detach == nil || !detach.GetHotUnplug() {
		t.Errorf("pdisk was asked %v", detach)
	}

	// shutdown with save: the root disk is captured for the owner with
	// the title, then the machine ends.
	if err := e.act(id, scheduler.ActionShutdown, map[string]any{"save": map[string]any{"title": "my image", "comment": "after setup"}}); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m = e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	var capture *volumev1.CaptureVolume
	for _, c := range e.pdisk.commands("") {
		if cv, ok := c.msg.(*volumev1.CaptureVolume); ok && cv.GetUuid() == root {
			capture = cv
		}
	}
	if capture == nil || capture.GetTag() != "my image" || capture.GetDescription() != "after setup" || capture.GetOwner() != "alice" ||
		m.SavedImage != "Volume/"+capture.GetNewUuid() || m.Save == nil || m.Save.Title != "my image" {
		t.Errorf("saved: capture %v, machine savedVolume %q save %+v", capture, m.SavedImage, m.Save)
	}
	e.checkReleased(id)
	for _, a := range scheduler.Actions {
		want := errs.Conflict
		if a == scheduler.ActionDetachVolume {
			want = errs.NotFound // it holds the volume no more
		}
		wantCode(t, a+" on a done machine", e.act(id, a, map[string]any{"volume": vol}), want)
	}
}

// TestActionsRefusedInState runs each action on a machine in each state
// the action does not apply to: a conflict that names the machine's state,
// before anything is asked of the agent or pdisk (none runs here).
func TestActionsRefusedInState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	kind := e.sched.Kind()
	allowed := map[string][]machine.Detailed{
		scheduler.ActionStop:         {machine.Running},
		scheduler.ActionStart:        {machine.StoppedD},
		scheduler.ActionRestart:      {machine.Running},
		scheduler.ActionShutdown:     {machine.Running, machine.StoppedD, machine.UnknownD},
		scheduler.ActionAttachVolume: {machine.Running},
	}
	all := []machine.Detailed{machine.Pending, machine.Prolog, machine.Boot, machine.Running, machine.Shutdown, machine.Epilog,
		machine.Done, machine.Failed, machine.UnknownD, machine.StoppedD}
	if len(kind.Actions) != len(scheduler.Actions) {
		t.Errorf("the kind has actions %v, the gateway's list is %v", kind.Actions, scheduler.Actions)
	}
	for action, ok := range allowed {
		for _, st := range all {
			if slices.Contains(ok, st) {
				continue
			}
			m := &machine.Machine{ID: machine.ID(uuid.NewString()), VMID: 42, Owner: "alice", Host: "Host/" + hostID,
				Disks: []machine.Disk{{Role: machine.RoleRoot, Device: "vda", Volume: "Volume/" + uuid.NewString()}}}
			m.UUID = strings.TrimPrefix(m.ID, "Machine/")
			m.SetState(st, "", time.Now())
			doc := toDoc(t, m)
			ctx, cancel := context.WithTimeout(e.ctx, time.Second)
			_, err := kind.Actions[action](ctx, cimi.Identity{User: "alice"}, doc, map[string]any{"volume": uuid.NewString()})
			cancel()
			wantCode(t, fmt.Sprintf("%s on a %s machine", action, st), err, errs.Conflict, "Machine 42 is "+string(st))
		}
	}
	// Detaching depends on the volume, not the state: a launch disk never
	// leaves, whatever the state.
	for _, st := range all {
		vol := uuid.NewString()
		m := &machine.Machine{ID: machine.ID(uuid.NewString()), VMID: 42, Owner: "alice",
			Disks: []machine.Disk{{Role: machine.RoleRoot, Device: "vda", Volume: "Volume/" + vol}}}
		m.SetState(st, "", time.Now())
		_, err := kind.Actions[scheduler.ActionDetachVolume](e.ctx, cimi.Identity{User: "alice"}, toDoc(t, m), map[string]any{"volume": vol})
		wantCode(t, "detach a launch disk of a "+string(st)+" machine", err, errs.Conflict, "Disk have not been hot-plugged")
	}
}

// toDoc is m as the resource framework hands documents to hooks.
func toDoc(t *testing.T, m *machine.Machine) map[string]any {
	t.Helper()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDeafGuest: a guest that ignores the power button is powered off
// once shutdown-timeout has passed, by stop and by shutdown alike, and the
// machine's message says so.
func TestDeafGuest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	e.configure(func(s *settings.Settings) { s.ShutdownTimeout = config.Duration(time.Second) })
	e.hv.mu.Lock()
	e.hv.deaf = true
	e.hv.mu.Unlock()
	id := e.mustCreate(map[string]any{"image": uuid.NewString()})
	e.waitState(id, machine.Running)

	if err := e.act(id, scheduler.ActionStop, nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	m := e.machine(id)
	if st, err := e.hv.State(e.ctx, id); m.DetailedState != machine.StoppedD || err != nil || st != hypervisor.Shutoff {
		t.Errorf("after stop: %s, domain %v %v", m.DetailedState, st, err)
	}
	if !strings.Contains(m.StateMessage, "did not power off within 1s") {
		t.Errorf("a stopped deaf guest says %q, want the forced power-off named", m.StateMessage)
	}
	if got := strings.Join(e.hv.callsOf(id), ","); !strings.HasSuffix(got, "shutdown,destroy") {
		t.Errorf("the agent was asked %s, want a shutdown then a destroy", got)
	}

	if err := e.act(id, scheduler.ActionStart, nil); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := e.act(id, scheduler.ActionShutdown, nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m = e.waitState(id, machine.Done)
	if !strings.Contains(m.StateMessage, "did not power off within 1s") {
		t.Errorf("a deaf guest shut down says %q, want the forced power-off named", m.StateMessage)
	}
	if st, err := e.hv.State(e.ctx, id); err != nil || st != hypervisor.Missing {
		t.Errorf("the domain of a Done machine: %v %v", st, err)
	}
}
