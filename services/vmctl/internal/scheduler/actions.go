package scheduler

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// Action names of the Machine kind (CIMI.md).
const (
	ActionStop         = "stop"
	ActionStart        = "start"
	ActionRestart      = "restart"
	ActionShutdown     = "shutdown"
	ActionAttachVolume = "attach_volume"
	ActionDetachVolume = "detach_volume"
)

// Actions lists them, for the gateway's kinds table.
var Actions = []string{ActionStop, ActionStart, ActionRestart, ActionShutdown, ActionAttachVolume, ActionDetachVolume}

type actionFunc = func(ctx context.Context, who cimi.Identity, current, body map[string]any) (map[string]any, error)

// actions are the Machine kind's actions. Each does its work with the
// agent and pdisk before it returns the new document, so that a refusal
// (a disk held elsewhere, a launch disk that cannot leave) reaches the
// user as the answer.
func (s *Scheduler) actions() map[string]actionFunc {
	return map[string]actionFunc{
		ActionStop:         s.stop,
		ActionStart:        s.power(machine.StoppedD, subject.VerbStartDomain, machine.Running),
		ActionRestart:      s.power(machine.Running, subject.VerbRebootDomain, machine.Running),
		ActionShutdown:     s.shutdown,
		ActionAttachVolume: s.attachVolume,
		ActionDetachVolume: s.detachVolume,
	}
}

// commandOf returns the id of the action's command, to derive step ids.
func commandOf(ctx context.Context) string { return bus.MetaFrom(ctx).GetCommandId() }

func hostOf(m *machine.Machine) string { return strings.TrimPrefix(m.Host, hosts.DocumentID("")) }

// power is an action that asks the agent for verb on a machine in state
// from, which then is in state to.
func (s *Scheduler) power(from machine.Detailed, verb string, to machine.Detailed) actionFunc {
	return func(ctx context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
		m, err := fromMap(current)
		if err != nil {
			return nil, err
		}
		if m.DetailedState != from {
			return nil, errs.Errorf(errs.Conflict, "Machine %d is %s; it must be %s for this.", m.VMID, m.DetailedState, from)
		}
		cmdID := stepID(m.UUID, verb+"-"+commandOf(ctx))
		var err2 error
		switch verb {
		case subject.VerbStartDomain:
			_, err2 = s.call(ctx, subject.HostCommand(hostOf(m), verb), cmdID, &machinev1.StartDomain{MachineUuid: m.UUID})
		case subject.VerbRebootDomain:
			_, err2 = s.call(ctx, subject.HostCommand(hostOf(m), verb), cmdID, &machinev1.RebootDomain{MachineUuid: m.UUID})
		}
		if err2 != nil {
			return nil, err2
		}
		m.SetState(to, "", s.cfg.Now())
		return toMap(m)
	}
}

// stop powers a running machine off (Stopped), through its guest when the
// guest obeys the power button within the shutdown-timeout setting, at
// once otherwise, which its stateMessage then says.
func (s *Scheduler) stop(ctx context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
	m, err := fromMap(current)
	if err != nil {
		return nil, err
	}
	if m.DetailedState != machine.Running {
		return nil, errs.Errorf(errs.Conflict, "Machine %d is %s; it must be %s for this.", m.VMID, m.DetailedState, machine.Running)
	}
	step := subject.VerbShutdownDomain + "-" + commandOf(ctx)
	note, err := s.powerOff(ctx, m, step)
	if err != nil {
		return nil, err
	}
	if note != "" {
		_, err := s.call(ctx, subject.HostCommand(hostOf(m), subject.VerbDestroyDomain), stepID(m.UUID, step+"-destroy"),
			&machinev1.DestroyDomain{MachineUuid: m.UUID})
		if err != nil && errs.CodeOf(err) != errs.NotFound {
			return nil, err
		}
	}
	m.SetState(machine.StoppedD, note, s.cfg.Now())
	return toMap(m)
}

// powerOff presses the power button of m's guest and waits, up to the
// shutdown-timeout setting, for the guest to power off. A guest that does
// not still runs: powerOff logs it and returns a note for the machine's
// stateMessage, and the caller powers the domain off at once.
func (s *Scheduler) powerOff(ctx context.Context, m *machine.Machine, step string) (string, error) {
	within := s.cfg.Settings().ShutdownTimeout.D()
	// The agent answers within its wait; the step wait is for the rest.
	o, err := s.callWithin(ctx, within+s.cfg.StepWait, subject.HostCommand(hostOf(m), subject.VerbShutdownDomain), stepID(m.UUID, step),
		&machinev1.ShutdownDomain{MachineUuid: m.UUID, Timeout: durationpb.New(within)})
	if errs.CodeOf(o.Err) != errs.Timeout {
		// Done, refused, or no answer at all (an agent that does not
		// answer cannot power the domain off either): the action says so.
		return "", err
	}
	s.log.Warn("the guest did not power off in time; powering it off", "machine", m.UUID, "vm", m.VMID, "timeout", within, "reason", err)
	return fmt.Sprintf("the guest did not power off within %s of the power button, so it was powered off", within), nil
}

// shutdown asks the guest to power off and waits for it (see powerOff),
// then ends the machine (Epilog, then Done), saving its root disk first
// when asked. The teardown destroys the domain whether the guest powered
// off or not.
func (s *Scheduler) shutdown(ctx context.Context, _ cimi.Identity, current, body map[string]any) (map[string]any, error) {
	m, err := fromMap(current)
	if err != nil {
		return nil, err
	}
	if m.DetailedState != machine.Running && m.DetailedState != machine.StoppedD && m.DetailedState != machine.UnknownD {
		return nil, errs.Errorf(errs.Conflict, "Machine %d is %s; only a running or stopped machine shuts down.", m.VMID, m.DetailedState)
	}
	if save, ok := body["save"].(map[string]any); ok {
		m.Save = &machine.Save{}
		m.Save.Title, _ = save["title"].(string)
		m.Save.Comment, _ = save["comment"].(string)
		m.Save.Author, _ = save["author"].(string)
		m.Save.AuthorEmail, _ = save["authorEmail"].(string)
		m.Save.ImageVersion, _ = save["imageVersion"].(string)
	}
	message := "shut down"
	if m.DetailedState == machine.Running {
		note, err := s.powerOff(ctx, m, "shutdown-"+commandOf(ctx))
		if err != nil {
			return nil, err
		}
		if note != "" {
			message += "; " + note
		}
	}
	m.SetState(machine.Epilog, message, s.cfg.Now())
	return toMap(m)
}

// volumeOf reads the volume uuid of an attach or detach body.
func volumeOf(body map[string]any) (string, error) {
	v, _ := body["volume"].(string)
	v = strings.TrimPrefix(strings.TrimSpace(v), "Volume/")
	if err := machine.CheckUUID(v); err != nil {
		return "", errs.Errorf(errs.Invalid, "Give the volume to attach or detach as \"volume\": a volume uuid.")
	}
	return v, nil
}

// attachVolume hot-plugs a persistent volume into a running machine.
func (s *Scheduler) attachVolume(ctx context.Context, _ cimi.Identity, current, body map[string]any) (map[string]any, error) {
	m, err := fromMap(current)
	if err != nil {
		return nil, err
	}
	vol, err := volumeOf(body)
	if err != nil {
		return nil, err
	}
	if m.DetailedState != machine.Running {
		return nil, errs.Errorf(errs.Conflict, "Machine %d is %s; volumes are hot-plugged into running machines.", m.VMID, m.DetailedState)
	}
	for _, d := range m.Disks {
		if d.Volume == "Volume/"+vol {
			return current, nil // attached already
		}
	}
	device := nextDevice(m.Disks)
	step := stepID(m.UUID, "attach-"+vol+"-"+commandOf(ctx))
	if _, err := s.callAs(ctx, owner(m), subject.CmdVolumeAttach, step+"-pdisk",
		&volumev1.AttachVolume{Uuid: vol, MachineUuid: m.UUID, Device: device, HotPlugged: true}); err != nil {
		return nil, err
	}
	turl, format, err := s.volume(ctx, "Volume/"+vol)
	if err != nil {
		return nil, err
	}
	f := machinev1.DiskFormat_DISK_FORMAT_QCOW2
	if format == "raw" {
		f = machinev1.DiskFormat_DISK_FORMAT_RAW
	}
	if _, err := s.call(ctx, subject.HostCommand(hostOf(m), subject.VerbHotplugDisk), step+"-agent",
		&machinev1.HotplugDisk{MachineUuid: m.UUID, Disk: &machinev1.DomainDisk{Device: device, Turl: turl, Format: f, VolumeUuid: vol}}); err != nil {
		// Give the volume back: the machine does not hold it.
		_, _ = s.callAs(context.WithoutCancel(ctx), owner(m), subject.CmdVolumeDetach, step+"-undo",
			&volumev1.DetachVolume{Uuid: vol, MachineUuid: m.UUID, HotUnplug: true})
		return nil, err
	}
	m.Disks = append(m.Disks, machine.Disk{Role: machine.RolePersistent, Volume: "Volume/" + vol, Device: device, HotPlugged: true})
	return toMap(m)
}

// detachVolume unplugs a hot-plugged volume from a running or stopped
// machine.
func (s *Scheduler) detachVolume(ctx context.Context, _ cimi.Identity, current, body map[string]any) (map[string]any, error) {
	m, err := fromMap(current)
	if err != nil {
		return nil, err
	}
	vol, err := volumeOf(body)
	if err != nil {
		return nil, err
	}
	i := -1
	for j, d := range m.Disks {
		if d.Volume == "Volume/"+vol {
			i = j
		}
	}
	if i < 0 {
		return nil, errs.Errorf(errs.NotFound, "Machine %d does not hold volume %s.", m.VMID, vol)
	}
	d := m.Disks[i]
	if !d.HotPlugged {
		return nil, errs.Errorf(errs.Conflict, "Disk have not been hot-plugged: volume %s came with machine %d and stays until it ends.", vol, m.VMID)
	}
	step := stepID(m.UUID, "detach-"+vol+"-"+commandOf(ctx))
	// A stopped machine's domain keeps its definition: the disk leaves it
	// too, or the machine would get the volume back at its next start.
	if m.DetailedState == machine.Running || m.DetailedState == machine.StoppedD {
		if _, err := s.call(ctx, subject.HostCommand(hostOf(m), subject.VerbUnplugDisk), step+"-agent",
			&machinev1.UnplugDisk{MachineUuid: m.UUID, Device: d.Device}); err != nil {
			return nil, err
		}
	}
	if _, err := s.callAs(ctx, owner(m), subject.CmdVolumeDetach, step+"-pdisk",
		&volumev1.DetachVolume{Uuid: vol, MachineUuid: m.UUID, HotUnplug: true}); err != nil && errs.CodeOf(err) != errs.NotFound {
		return nil, err
	}
	m.Disks = append(m.Disks[:i:i], m.Disks[i+1:]...)
	return toMap(m)
}

// nextDevice returns the first free virtio device name.
func nextDevice(disks []machine.Disk) string {
	used := map[string]bool{}
	for _, d := range disks {
		used[d.Device] = true
	}
	for c := 'b'; c <= 'z'; c++ {
		if dev := fmt.Sprintf("vd%c", c); !used[dev] {
			return dev
		}
	}
	return "vdz"
}
