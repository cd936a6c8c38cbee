package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// diskSpace names the uuids of the volumes a machine's disks get, derived
// from the machine uuid and the disk, so that a resumed step asks pdisk
// for the same volume.
var diskSpace = uuid.MustParse("3f1d8f4e-2b7a-5c39-8d0e-6a4b1c9e7f21")

func diskUUID(machineUUID, role string, i int) string {
	return uuid.NewSHA1(diskSpace, fmt.Appendf(nil, "%s/%s/%d", machineUUID, role, i)).String()
}

// Handle carries out the scheduler's own commands: deploy and teardown.
func (s *Scheduler) Handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	var ref commonv1.ResourceRef
	if err := cmd.Decode(&ref); err != nil {
		return bus.Result{}, bus.Permanent(err)
	}
	_, id, err := cimi.SplitID(ref.GetId())
	if err != nil {
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "%q is not a machine id.", ref.GetId()))
	}
	switch {
	case strings.HasSuffix(cmd.Subject(), "."+VerbDeploy):
		err = s.deploy(ctx, id, cmd.Deliveries() < placeAttempts)
	case strings.HasSuffix(cmd.Subject(), "."+VerbTeardown):
		err = s.teardown(ctx, id, machine.Done, "")
	default:
		err = errs.Errorf(errs.Invalid, "vmctl has no command %s.", cmd.Subject())
	}
	if err != nil {
		return bus.Result{}, bus.Settle(err)
	}
	return bus.Result{Affected: []string{machine.ID(id)}}, nil
}

// load reads a machine.
func (s *Scheduler) load(ctx context.Context, id string) (*machine.Machine, uint64, error) {
	doc, err := s.cfg.Machines.Get(ctx, machine.ID(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, errs.Errorf(errs.NotFound, "Machine %s does not exist.", id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("vmctl: read machine %s: %w", id, err)
	}
	m, err := machine.Decode(doc.Body)
	return m, doc.Revision, err
}

// save writes m at revision rev and announces the change; a conflict
// means someone else moved the machine: the caller reads it again.
func (s *Scheduler) save(ctx context.Context, m *machine.Machine, rev uint64) error {
	m.Updated = m.StateChanged
	body, err := m.Encode()
	if err != nil {
		return err
	}
	if _, err := s.cfg.Machines.Put(ctx, machine.ID(m.UUID), body, rev); err != nil {
		return fmt.Errorf("vmctl: write machine %s: %w", m.UUID, err)
	}
	v := *m
	v.Command = ""
	data, _ := json.Marshal(&v)
	ev := &cimiv1.ResourceChanged{Kind: machine.Kind, Id: machine.ID(m.UUID), Json: data}
	msgID := fmt.Sprintf("%s.%d", m.UUID, rev+1)
	if err := s.cfg.Bus.Publish(ctx, subject.Event(subject.Vmctl, subject.ResourceMachine, subject.EventUpdated), ev, msgID); err != nil {
		s.log.Warn("cannot announce a machine's change", "machine", m.UUID, "error", err)
	}
	// For billing and monitoring: owner, type, cpu, memory, host.
	sc := &machinev1.MachineStateChanged{Machine: m.Proto(), ChangedAt: timestamppb.New(s.cfg.Now())}
	if err := s.cfg.Bus.Publish(ctx, subject.EvtMachineStateChanged, sc, msgID+".state"); err != nil {
		s.log.Warn("cannot announce a machine's state", "machine", m.UUID, "error", err)
	}
	return nil
}

// placeAttempts is how many deliveries of a deploy may find no host with
// room before the machine fails: it stays Pending meanwhile (the bus
// backs off 1 s, 5 s, 30 s, 1 min between them), as a host may come back
// or another machine end.
const placeAttempts = 5

// deploy moves a machine from Pending to Running, one state at a time.
// mayWait says whether a machine no host can take now may stay Pending.
func (s *Scheduler) deploy(ctx context.Context, id string, mayWait bool) error {
	for {
		m, rev, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		var next machine.Detailed
		var stepErr error
		switch m.DetailedState {
		case machine.Pending:
			next, stepErr = s.place(ctx, m)
			if mayWait && errs.CodeOf(stepErr) == errs.Conflict {
				s.log.Info("no host can take the machine yet; it stays Pending", "machine", id, "vm", m.VMID, "reason", stepErr)
				return errs.Wrap(errs.Unavailable, stepErr, errs.MessageOf(stepErr))
			}
		case machine.Prolog:
			next, stepErr = s.prolog(ctx, m)
		case machine.Boot:
			next, stepErr = s.boot(ctx, m)
		default:
			return nil // running, ending or ended: nothing to deploy
		}
		if errors.Is(stepErr, errEnded) {
			return nil
		}
		if stepErr != nil {
			if bus.Transient(stepErr) {
				return stepErr
			}
			s.log.Info("machine failed", "machine", id, "vm", m.VMID, "state", m.DetailedState, "reason", stepErr)
			return s.teardown(ctx, id, machine.Failed, errs.MessageOf(stepErr))
		}
		m.SetState(next, "", s.cfg.Now())
		if err := s.save(ctx, m, rev); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				return err
			}
			// Killed meanwhile, or another replica moved it. A placement
			// the document never recorded is given back at once when the
			// machine ended (its teardown did not see it).
			if next == machine.Prolog && s.ended(ctx, m.UUID) {
				if err := s.cfg.Hosts.Release(ctx, strings.TrimPrefix(m.Host, hosts.DocumentID("")), m.UUID); err != nil && errs.CodeOf(err) != errs.NotFound {
					return err
				}
			}
			continue
		}
		s.cfg.Crash("vmctl.scheduler.saved-" + string(next))
	}
}

// place reserves room on a host.
func (s *Scheduler) place(ctx context.Context, m *machine.Machine) (machine.Detailed, error) {
	host, err := s.cfg.Hosts.Place(ctx, m.UUID, m.CPU, m.Memory>>10)
	if err != nil {
		return "", err
	}
	m.Host = hosts.DocumentID(host)
	return machine.Prolog, nil
}

// owner is the identity pdisk sees: the machine's owner.
func owner(m *machine.Machine) *commonv1.Actor {
	return &commonv1.Actor{User: m.Owner, Roles: []string{cimi.RoleUser}}
}

// hostLocal reports whether the agent makes disk d beside the domain
// (swap, context) rather than pdisk.
func hostLocal(d machine.Disk) bool {
	return d.Role == machine.RoleSwap || d.Role == machine.RoleContext
}

// prolog gathers the disks from pdisk. Its steps are numbered over the
// pdisk disks only, from disk-0 for the root disk, so that a swap disk
// does not shift them.
func (s *Scheduler) prolog(ctx context.Context, m *machine.Machine) (machine.Detailed, error) {
	n := 0
	for i := range m.Disks {
		d := &m.Disks[i]
		if hostLocal(*d) {
			continue
		}
		step := fmt.Sprintf("disk-%d", n)
		n++
		var subj string
		var msg proto.Message
		switch {
		case d.Role == machine.RoleRoot && (m.Image.URL != "" || m.Image.FromMarketplace()):
			d.Volume = "Volume/" + diskUUID(m.UUID, d.Role, i)
			subj, msg = subject.CmdVolumeGetImage, getImage(m, d, m.Image, volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_LIVE)
		case d.Image != nil:
			d.Volume = "Volume/" + diskUUID(m.UUID, d.Role, i)
			subj, msg = subject.CmdVolumeGetImage, getImage(m, d, *d.Image, volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READONLY)
		case d.Role == machine.RoleVolatile:
			d.Volume = "Volume/" + diskUUID(m.UUID, d.Role, i)
			subj, msg = subject.CmdVolumeCreate, &volumev1.CreateVolume{
				Uuid: strings.TrimPrefix(d.Volume, "Volume/"), SizeGib: uint32(d.SizeMiB >> 10), Owner: m.Owner,
				VolatileForMachineUuid: m.UUID, Tag: fmt.Sprintf("volatile disk of machine %d", m.VMID),
			}
		case d.Volume != "":
			subj, msg = subject.CmdVolumeAttach, &volumev1.AttachVolume{
				Uuid: strings.TrimPrefix(d.Volume, "Volume/"), MachineUuid: m.UUID, Device: d.Device,
			}
		default:
			return "", errs.Errorf(errs.Invalid, "The %s disk %s has no source this cloud can use.", d.Role, d.Device)
		}
		if _, err := s.callAs(ctx, owner(m), subj, stepID(m.UUID, step), msg); err != nil {
			return "", err
		}
		if s.ended(ctx, m.UUID) {
			// Killed while pdisk worked: the teardown may have released
			// this disk before pdisk made it.
			_, err := s.callAs(ctx, owner(m), subject.CmdVolumeRelease, stepID(m.UUID, "undo-"+step),
				&volumev1.ReleaseVolume{Uuid: strings.TrimPrefix(d.Volume, "Volume/"), MachineUuid: m.UUID})
			if err != nil && errs.CodeOf(err) != errs.NotFound {
				return "", err
			}
			return "", errEnded
		}
		s.cfg.Crash("vmctl.scheduler." + step)
	}
	return machine.Boot, nil
}

// getImage is the pdisk command that gives disk d of m a copy-on-write
// volume of img, of type typ: an image URL goes to the cache under its
// SHA-1; a Marketplace entry under its identifier, from its http(s)
// locations in order or from the volume holding it (pdisk checks size and
// SHA-1 whichever it reads).
func getImage(m *machine.Machine, d *machine.Disk, img machine.Image, typ volumev1.VolumeType) *volumev1.GetImageVolume {
	msg := &volumev1.GetImageVolume{
		Uuid: strings.TrimPrefix(d.Volume, "Volume/"), Bytes: uint64(img.Bytes), Sha1: img.SHA1,
		Owner: m.Owner, MachineUuid: m.UUID, Type: typ,
	}
	if img.FromMarketplace() {
		msg.ImageId, msg.Urls, msg.SourceVolumeUuid = img.Identifier, img.Locations, img.FromVolume
	} else {
		msg.ImageId, msg.Urls = "sha1-"+img.SHA1, []string{img.URL}
	}
	return msg
}

// errEnded stops a deploy whose machine was killed meanwhile, once it has
// undone its last step.
var errEnded = errors.New("vmctl: the machine ended while it was being deployed")

// ended says whether a machine being deployed was killed or failed
// meanwhile; a machine that cannot be read is taken as still deploying
// (its next save will tell).
func (s *Scheduler) ended(ctx context.Context, id string) bool {
	m, _, err := s.load(ctx, id)
	if err != nil {
		return false
	}
	switch m.DetailedState {
	case machine.Pending, machine.Prolog, machine.Boot:
		return false
	}
	return true
}

// undoBoot destroys a domain defined or started for a machine killed
// meanwhile: the teardown may have looked for it before it existed.
func (s *Scheduler) undoBoot(ctx context.Context, m *machine.Machine, host, step string) error {
	_, err := s.call(ctx, subject.HostCommand(host, subject.VerbDestroyDomain), stepID(m.UUID, "undo-"+step),
		&machinev1.DestroyDomain{MachineUuid: m.UUID, Undefine: true})
	if err != nil && errs.CodeOf(err) != errs.NotFound {
		return err
	}
	return errEnded
}

// callAs is call with an actor.
func (s *Scheduler) callAs(ctx context.Context, actor *commonv1.Actor, subj, commandID string, msg proto.Message) (bus.Outcome, error) {
	return s.call(bus.WithActor(ctx, actor), subj, commandID, msg)
}

// volumeInfo is what the scheduler reads of a pdisk volume document:
// where the volume is and, for a captured one, what a Marketplace entry
// of it says.
type volumeInfo struct {
	TURL       string `json:"turl"`
	Path       string `json:"path"`
	Format     string `json:"format"`
	Bytes      int64  `json:"bytes"`
	SHA1       string `json:"sha1"`
	Identifier string `json:"identifier"`
}

// volumeDoc reads a volume's document through pdisk's CIMI get.
func (s *Scheduler) volumeDoc(ctx context.Context, id string) (volumeInfo, error) {
	var doc cimiv1.ResourceDocument
	req := &cimiv1.GetResourceRequest{Id: id}
	if err := s.cfg.Bus.Request(ctx, subject.CimiQuery(subject.Pdisk, subject.OpCimiGet), &commonv1.Actor{Roles: []string{cimi.RoleAdmin}}, req, &doc); err != nil {
		return volumeInfo{}, err
	}
	var v volumeInfo
	if err := json.Unmarshal(doc.GetJson(), &v); err != nil {
		return volumeInfo{}, err
	}
	return v, nil
}

// volume reads where pdisk keeps a volume.
func (s *Scheduler) volume(ctx context.Context, id string) (turl, format string, err error) {
	v, err := s.volumeDoc(ctx, id)
	if err != nil {
		return "", "", err
	}
	if v.Path != "" {
		v.TURL = "file://" + v.Path
	}
	return v.TURL, v.Format, nil
}

// boot defines and starts the domain on the machine's host.
func (s *Scheduler) boot(ctx context.Context, m *machine.Machine) (machine.Detailed, error) {
	spec := &machinev1.DomainSpec{Cpu: uint32(m.CPU), MemoryMib: uint32(m.Memory >> 10), Hostname: m.Hostname}
	for _, d := range m.Disks {
		if d.Role == machine.RoleSwap {
			spec.SwapMib, spec.SwapDevice = uint32(d.SizeMiB), d.Device
		}
		if hostLocal(d) {
			continue
		}
		turl, format, err := s.volume(ctx, d.Volume)
		if err != nil {
			return "", err
		}
		f := machinev1.DiskFormat_DISK_FORMAT_QCOW2
		if format == "raw" {
			f = machinev1.DiskFormat_DISK_FORMAT_RAW
		}
		spec.Disks = append(spec.Disks, &machinev1.DomainDisk{Device: d.Device, Turl: turl, Format: f, ReadOnly: d.ReadOnly, VolumeUuid: strings.TrimPrefix(d.Volume, "Volume/")})
	}
	for _, n := range m.Interfaces {
		spec.Interfaces = append(spec.Interfaces, &machinev1.DomainInterface{Mac: n.MAC, Ip: n.IP})
	}
	lease := addresses.Lease{IP: m.IP}
	for _, l := range s.leaseOf(ctx, m.UUID) {
		lease = l
	}
	ds, err := diskSpec(m.Context, lease, m.Hostname, m.UUID)
	if err != nil {
		return "", err
	}
	specJSON, err := json.Marshal(ds)
	if err != nil {
		return "", err
	}
	spec.Context = &machinev1.DomainContext{DiskSpec: specJSON}
	host := strings.TrimPrefix(m.Host, hosts.DocumentID(""))
	define := &machinev1.DefineDomain{MachineUuid: m.UUID, Spec: spec}
	if _, err := s.call(ctx, subject.HostCommand(host, subject.VerbDefineDomain), stepID(m.UUID, "define"), define); err != nil {
		return "", err
	}
	if s.ended(ctx, m.UUID) {
		return "", s.undoBoot(ctx, m, host, "define")
	}
	s.cfg.Crash("vmctl.scheduler.defined")
	_, err = s.call(ctx, subject.HostCommand(host, subject.VerbStartDomain), stepID(m.UUID, "start"), &machinev1.StartDomain{MachineUuid: m.UUID})
	if errs.CodeOf(err) == errs.NotFound {
		// The host forgot the definition between the two steps: its
		// agent restarted on a hypervisor that keeps no domains (the test
		// driver), or an administrator removed it. Defined again, once.
		if _, err = s.call(ctx, subject.HostCommand(host, subject.VerbDefineDomain), stepID(m.UUID, "define-again"), define); err == nil {
			_, err = s.call(ctx, subject.HostCommand(host, subject.VerbStartDomain), stepID(m.UUID, "start-again"), &machinev1.StartDomain{MachineUuid: m.UUID})
		}
	}
	if err != nil {
		return "", err
	}
	if s.ended(ctx, m.UUID) {
		return "", s.undoBoot(ctx, m, host, "start")
	}
	s.cfg.Crash("vmctl.scheduler.started")
	return machine.Running, nil
}

// leaseOf returns the leases of a machine (for the context disk's network).
func (s *Scheduler) leaseOf(ctx context.Context, id string) []addresses.Lease {
	held, err := s.cfg.Leases.Of(ctx, id)
	if err != nil {
		return nil
	}
	return held
}

// teardown destroys the domain and gives everything back, then leaves the
// machine in end (Done, or Failed with reason).
func (s *Scheduler) teardown(ctx context.Context, id string, end machine.Detailed, reason string) error {
	m, rev, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if m.DetailedState == machine.Done || (m.DetailedState == machine.Failed && end == machine.Failed) {
		return nil
	}
	if m.Host != "" {
		host := strings.TrimPrefix(m.Host, hosts.DocumentID(""))
		_, err := s.call(ctx, subject.HostCommand(host, subject.VerbDestroyDomain), stepID(m.UUID, "destroy"),
			&machinev1.DestroyDomain{MachineUuid: m.UUID, Undefine: true})
		if err != nil && errs.CodeOf(err) != errs.NotFound {
			return err
		}
		s.cfg.Crash("vmctl.scheduler.destroyed")
	}
	if m.Save != nil && m.SavedImage == "" && end == machine.Done && len(m.Disks) > 0 && m.Disks[0].Volume != "" {
		// Saved during Epilog, once the guest no longer writes: a copy of
		// the root disk that does not depend on the cached image.
		saved := diskUUID(m.UUID, "saved", 0)
		if _, err := s.callAs(ctx, owner(m), subject.CmdVolumeCapture, stepID(m.UUID, "save"), &volumev1.CaptureVolume{
			Uuid: strings.TrimPrefix(m.Disks[0].Volume, "Volume/"), NewUuid: saved, Owner: m.Owner,
			Tag: m.Save.Title, Description: m.Save.Comment,
		}); err != nil {
			return err
		}
		s.cfg.Crash("vmctl.scheduler.captured")
		m.SavedImage = "Volume/" + saved
	}
	draftNote := ""
	if m.SavedImage != "" && m.SavedIdentifier == "" && end == machine.Done {
		// The saved image becomes a draft entry its owner signs later. A
		// draft that cannot be made leaves the volume to its owner and
		// the machine's end to go on: the state message says so.
		id, err := s.draft(ctx, m)
		if err != nil && ctx.Err() != nil {
			return err // stopping: the redelivered teardown asks again
		}
		if err != nil {
			s.log.Warn("the saved image has no Marketplace draft", "machine", m.UUID, "vm", m.VMID, "volume", m.SavedImage, "error", err)
			draftNote = fmt.Sprintf("the root disk was saved in %s, but no Marketplace draft was made of it: %s", m.SavedImage, strings.TrimSuffix(errs.MessageOf(err), "."))
		}
		m.SavedIdentifier = id
		s.cfg.Crash("vmctl.scheduler.drafted")
	}
	for i, d := range m.Disks {
		if d.Volume == "" || m.Host == "" {
			continue // never placed: pdisk gave it nothing
		}
		_, err := s.callAs(ctx, owner(m), subject.CmdVolumeRelease, stepID(m.UUID, fmt.Sprintf("release-%d", i)),
			&volumev1.ReleaseVolume{Uuid: strings.TrimPrefix(d.Volume, "Volume/"), MachineUuid: m.UUID})
		if err != nil && errs.CodeOf(err) != errs.NotFound {
			return err
		}
	}
	s.cfg.Crash("vmctl.scheduler.released")
	if err := s.cfg.Leases.Release(ctx, m.UUID); err != nil {
		return err
	}
	s.cfg.Crash("vmctl.scheduler.unleased")
	if m.Host != "" {
		if err := s.cfg.Hosts.Release(ctx, strings.TrimPrefix(m.Host, hosts.DocumentID("")), m.UUID); err != nil && errs.CodeOf(err) != errs.NotFound {
			return err
		}
	}
	if reason == "" && m.DetailedState == machine.Epilog {
		// Why it ended ("killed", "shut down", and whether its guest
		// had to be powered off) stays with the Done machine.
		reason = m.StateMessage
	}
	if draftNote != "" && !strings.Contains(reason, draftNote) {
		reason += "; " + draftNote
	}
	m.SetState(end, reason, s.cfg.Now())
	if err := s.save(ctx, m, rev); errors.Is(err, store.ErrConflict) {
		return s.teardown(ctx, id, end, reason)
	} else if err != nil {
		return err
	}
	return nil
}
