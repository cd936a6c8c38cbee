package controller_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// lastSeq is the sequence of the last command JetStream stored.
func (e *env) lastSeq() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), bus.CommandsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestDuplicateSend: a command sent twice under one id (a sender
// retrying after a lost acknowledgement) is stored, handled and
// announced once.
func TestDuplicateSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id, cmdID := uuid.NewString(), uuid.NewString()
	before := e.lastSeq()
	for range 2 {
		e.start(command{actor: alice, subject: subject.CmdVolumeCreate, id: cmdID, msg: &volumev1.CreateVolume{Uuid: id, SizeGib: 1}})
	}
	if n := e.lastSeq() - before; n != 1 {
		t.Errorf("%d commands stored; want 1", n)
	}
	if o := e.wait(cmdID); !o.ok() {
		t.Fatalf("create: %s %q", o.code, o.message)
	}
	// Another command after it, so that a second delivery would have
	// come by now.
	e.create(alice, `{"size": 1}`)
	if n := e.delivered(cmdID); n != 1 {
		t.Errorf("handled %d times; want once", n)
	}
	if n := e.terminals(cmdID); n != 1 {
		t.Errorf("%d terminal events; want 1", n)
	}
	if n := len(e.usageOf(id, subject.EvtVolumeCreated)); n != 1 {
		t.Errorf("%d VolumeCreated events; want 1", n)
	}
	if got := e.ledger("alice"); len(got) != 2 || got[id] != 1 {
		t.Errorf("alice's ledger: %v", got)
	}
}

// TestRedelivery: every command whose first delivery "crashed" after
// doing its work (no acknowledgement) is delivered again, finds its work
// done, finishes, and announces every usage event once.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	img := serveImage(t, 2<<20, 64<<10)
	// again sends c with a crash after its first delivery and checks that
	// it succeeded on the second.
	again := func(what string, c command) {
		t.Helper()
		c.crash = true
		o := e.do(c)
		if !o.ok() {
			t.Fatalf("%s: %s %q", what, o.code, o.message)
		}
		if n := e.delivered(o.id); n != 2 {
			t.Fatalf("%s: delivered %d times; want 2", what, n)
		}
	}
	count := func(what, id, subj string, want int) {
		t.Helper()
		if n := len(e.usageOf(id, subj)); n != want {
			t.Errorf("%s: %d %s events; want %d", what, n, subj, want)
		}
	}

	disk := uuid.NewString()
	again("CIMI create", cimiCommand(alice, subject.VerbCimiCreate, disk, `{"size": 2, "tag": "ONCE"}`))
	if v := e.mustDoc(disk); v.Tag != "ONCE" || v.Size != 2 {
		t.Errorf("created: %+v", v)
	}
	count("CIMI create", disk, subject.EvtVolumeCreated, 1)
	again("CIMI edit", cimiCommand(alice, subject.VerbCimiEdit, disk, `{"tag": "TWICE"}`, "tag"))
	if v := e.mustDoc(disk); v.Tag != "TWICE" {
		t.Errorf("edited: %+v", v)
	}

	machine := uuid.NewString()
	again("attach", command{actor: alice, subject: subject.CmdVolumeAttach, msg: &volumev1.AttachVolume{Uuid: disk, MachineUuid: machine}})
	count("attach", disk, subject.EvtVolumeAttached, 1)
	again("release", command{actor: admin, subject: subject.CmdVolumeRelease, msg: &volumev1.ReleaseVolume{Uuid: disk, MachineUuid: machine}})
	count("release", disk, subject.EvtVolumeDetached, 1)
	if v := e.mustDoc(disk); v.State != volume.Available || len(v.Attachments) != 0 {
		t.Errorf("released: %+v", v)
	}

	copied := uuid.NewString()
	again("capture", command{actor: alice, subject: subject.CmdVolumeCapture, msg: &volumev1.CaptureVolume{Uuid: disk, NewUuid: copied}})
	count("capture", copied, subject.EvtVolumeCreated, 1)
	again("CIMI delete", cimiCommand(alice, subject.VerbCimiDelete, disk, ""))
	count("CIMI delete", disk, subject.EvtVolumeDeleted, 1)
	again("DeleteVolume", command{actor: alice, subject: subject.CmdVolumeDelete, msg: &volumev1.DeleteVolume{Uuid: copied}})
	count("DeleteVolume", copied, subject.EvtVolumeDeleted, 1)

	volatile := uuid.NewString()
	again("volatile create", command{actor: alice, subject: subject.CmdVolumeCreate, msg: &volumev1.CreateVolume{Uuid: volatile, SizeGib: 1, VolatileForMachineUuid: machine}})
	count("volatile create", volatile, subject.EvtVolumeCreated, 1)
	count("volatile create", volatile, subject.EvtVolumeAttached, 1)
	again("volatile release", command{actor: admin, subject: subject.CmdVolumeRelease, msg: &volumev1.ReleaseVolume{Uuid: volatile, MachineUuid: machine}})
	count("volatile release", volatile, subject.EvtVolumeDetached, 1)
	count("volatile release", volatile, subject.EvtVolumeDeleted, 1)

	live := uuid.NewString()
	again("get image", command{actor: alice, subject: subject.CmdVolumeGetImage, msg: getImage(img, "IMG", live, machine)})
	count("get image", live, subject.EvtVolumeAttached, 1)
	if o := e.mustDoc(volume.OriginUUID("IMG")); o.Count != 1 {
		t.Errorf("origin counts %d snapshots; want 1", o.Count)
	}

	if got := e.stored(); len(got) != 2 {
		t.Errorf("storage: %v; want the origin and its snapshot", got)
	}
	if got := e.ledger("alice"); len(got) != 0 {
		t.Errorf("alice's ledger: %v; want nothing", got)
	}
}
