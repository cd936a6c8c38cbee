package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/volume"
)

func TestAttachBookkeeping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := e.create(alice, `{"size": 1}`)
	ma, mb := uuid.NewString(), uuid.NewString()

	attach := &volumev1.AttachVolume{Uuid: id, MachineUuid: ma, Device: "vdb"}
	if o := e.typed(alice, subject.CmdVolumeAttach, attach); !o.ok() {
		t.Fatalf("attach: %s %q", o.code, o.message)
	}
	v := e.mustDoc(id)
	if v.State != volume.InUse || v.Count != 1 || v.Machine != "Machine/"+ma || v.Device != "vdb" ||
		len(v.Attachments) != 1 || v.Attachments[0].HotPlugged {
		t.Fatalf("after the attach: %+v", v)
	}
	// The same attachment again (vmctl retrying with a new command): no
	// change, and billing hears of one attachment only.
	if o := e.typed(alice, subject.CmdVolumeAttach, attach); !o.ok() {
		t.Fatalf("attach again: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); len(v.Attachments) != 1 || v.Count != 1 {
		t.Errorf("after attaching twice: %+v", v)
	}
	if got := e.usageOf(id, subject.EvtVolumeAttached); len(got) != 1 || got[0].machine != ma || got[0].owner != "alice" || got[0].size != 1 {
		t.Errorf("VolumeAttached events: %+v; want one for %s", got, ma)
	}

	// Attached: no delete, no second machine, no hot unplug.
	for _, tt := range []struct {
		name string
		o    func() outcome
		code errs.Code
		msg  string
	}{
		{"CIMI delete", func() outcome { return e.cimi(alice, subject.VerbCimiDelete, id, "") }, errs.Conflict, ma},
		{"DeleteVolume", func() outcome {
			return e.typed(alice, subject.CmdVolumeDelete, &volumev1.DeleteVolume{Uuid: id})
		}, errs.Conflict, ma},
		{"attach elsewhere", func() outcome {
			return e.typed(alice, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: id, MachineUuid: mb})
		}, errs.Conflict, ma},
		{"hot unplug", func() outcome {
			return e.typed(alice, subject.CmdVolumeDetach, &volumev1.DetachVolume{Uuid: id, MachineUuid: ma, HotUnplug: true})
		}, errs.Conflict, "Disk have not been hot-plugged"},
		{"bob detaches", func() outcome {
			return e.typed(bob, subject.CmdVolumeDetach, &volumev1.DetachVolume{Uuid: id, MachineUuid: ma})
		}, errs.NotFound, id},
	} {
		if o := tt.o(); o.code != tt.code || !strings.Contains(o.message, tt.msg) {
			t.Errorf("%s: %s %q; want %s naming %s", tt.name, o.code, o.message, tt.code, tt.msg)
		}
	}
	if v := e.mustDoc(id); v.State != volume.InUse || len(v.Attachments) != 1 {
		t.Fatalf("refusals changed the volume: %+v", v)
	}

	// The machine ends: the volume is available again.
	if o := e.typed(alice, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: id, MachineUuid: ma}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	v = e.mustDoc(id)
	if v.State != volume.Available || v.Count != 0 || v.Machine != "" || v.Device != "" || len(v.Attachments) != 0 {
		t.Errorf("after the release: %+v", v)
	}
	if got := e.usageOf(id, subject.EvtVolumeDetached); len(got) != 1 || got[0].machine != ma {
		t.Errorf("VolumeDetached events: %+v", got)
	}

	// Hot-plugged into a running machine, it may leave it running.
	if o := e.typed(alice, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: id, MachineUuid: mb, HotPlugged: true}); !o.ok() {
		t.Fatalf("hot plug: %s %q", o.code, o.message)
	}
	if o := e.typed(alice, subject.CmdVolumeDetach, &volumev1.DetachVolume{Uuid: id, MachineUuid: mb, HotUnplug: true}); !o.ok() {
		t.Fatalf("hot unplug: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); v.State != volume.Available || len(v.Attachments) != 0 {
		t.Errorf("after the hot unplug: %+v", v)
	}
	if a, d := len(e.usageOf(id, subject.EvtVolumeAttached)), len(e.usageOf(id, subject.EvtVolumeDetached)); a != 2 || d != 2 {
		t.Errorf("%d attach and %d detach events; want 2 and 2", a, d)
	}
	if o := e.cimi(alice, subject.VerbCimiDelete, id, ""); !o.ok() {
		t.Errorf("delete once detached: %s %q", o.code, o.message)
	}
}

func TestReadOnlyAttachesToMany(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := uuid.NewString()
	create := &volumev1.CreateVolume{Uuid: id, SizeGib: 1, Type: volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READONLY}
	if o := e.typed(alice, subject.CmdVolumeCreate, create); !o.ok() {
		t.Fatalf("create: %s %q", o.code, o.message)
	}
	ma, mb := uuid.NewString(), uuid.NewString()
	for _, m := range []string{ma, mb} {
		if o := e.typed(alice, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: id, MachineUuid: m}); !o.ok() {
			t.Fatalf("attach to %s: %s %q", m, o.code, o.message)
		}
	}
	if v := e.mustDoc(id); v.Type != volume.DataImageRawReadOnly || v.State != volume.InUse || v.Count != 2 || len(v.Attachments) != 2 {
		t.Fatalf("attached twice: %+v", v)
	}
	// Private: bob's machines cannot have it.
	if o := e.typed(bob, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: id, MachineUuid: uuid.NewString()}); o.code != errs.NotFound {
		t.Errorf("bob attaches alice's private disk: %s %q", o.code, o.message)
	}
	if o := e.typed(alice, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: id, MachineUuid: ma}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); v.State != volume.InUse || v.Count != 1 || v.Machine != "Machine/"+mb {
		t.Errorf("released by one of two: %+v", v)
	}
	if o := e.typed(alice, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: id, MachineUuid: mb}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); v.State != volume.Available || v.Count != 0 {
		t.Errorf("released by both: %+v", v)
	}
}

func TestVolatileDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id, machine := uuid.NewString(), uuid.NewString()
	create := &volumev1.CreateVolume{Uuid: id, SizeGib: 2, Tag: "scratch", VolatileForMachineUuid: machine}
	if o := e.typed(alice, subject.CmdVolumeCreate, create); !o.ok() || len(o.affected) != 1 || o.affected[0] != volume.ID(id) {
		t.Fatalf("create: %+v", o)
	}
	v := e.mustDoc(id)
	if !v.Volatile || v.State != volume.InUse || v.Owner != "alice" || len(v.Attachments) != 1 ||
		v.Attachments[0].Machine != "Machine/"+machine || v.Attachments[0].HotPlugged {
		t.Fatalf("volatile disk: %+v", v)
	}
	if _, ok := e.storage(id); !ok {
		t.Fatal("no storage")
	}
	if c, a := e.usageOf(id, subject.EvtVolumeCreated), e.usageOf(id, subject.EvtVolumeAttached); len(c) != 1 || len(a) != 1 || a[0].machine != machine {
		t.Errorf("usage events: created %+v, attached %+v", c, a)
	}
	if got := e.ledger("alice"); got[id] != 2 {
		t.Errorf("alice's ledger: %v", got)
	}
	// Not detachable while the machine runs, not deletable.
	if o := e.typed(alice, subject.CmdVolumeDetach, &volumev1.DetachVolume{Uuid: id, MachineUuid: machine, HotUnplug: true}); o.code != errs.Conflict {
		t.Errorf("hot unplug of a volatile disk: %s %q", o.code, o.message)
	}
	// The machine ends: the disk goes with it.
	if o := e.typed(admin, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: id, MachineUuid: machine}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	if e.doc(id) != nil {
		t.Error("the document of a released volatile disk is still there")
	}
	if _, ok := e.storage(id); ok {
		t.Error("the storage of a released volatile disk is still there")
	}
	if d, del := e.usageOf(id, subject.EvtVolumeDetached), e.usageOf(id, subject.EvtVolumeDeleted); len(d) != 1 || len(del) != 1 || del[0].size != 2 || del[0].owner != "alice" {
		t.Errorf("usage events: detached %+v, deleted %+v", d, del)
	}
	if got := e.ledger("alice"); len(got) != 0 {
		t.Errorf("alice's ledger still counts the disk: %v", got)
	}
	// Released again (vmctl retrying): nothing left to do, not an error.
	if o := e.typed(admin, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: id, MachineUuid: machine}); !o.ok() {
		t.Errorf("second release: %s %q", o.code, o.message)
	}
}

func TestTypedCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	for _, tt := range []struct {
		name string
		msg  *volumev1.CreateVolume
		code errs.Code
	}{
		{"size 0", &volumev1.CreateVolume{SizeGib: 0}, errs.Invalid},
		{"size 2000", &volumev1.CreateVolume{SizeGib: 2000}, errs.Invalid},
		{"live type", &volumev1.CreateVolume{SizeGib: 1, Type: volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_LIVE}, errs.Invalid},
		{"origin type", &volumev1.CreateVolume{SizeGib: 1, Type: volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_ORIGIN}, errs.Invalid},
		{"huge tag", &volumev1.CreateVolume{SizeGib: 1, Tag: strings.Repeat("t", 300)}, errs.Invalid},
		{"for someone else", &volumev1.CreateVolume{SizeGib: 1, Owner: "bob"}, errs.Forbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			tt.msg.Uuid = id
			if o := e.typed(alice, subject.CmdVolumeCreate, tt.msg); o.code != tt.code {
				t.Errorf("%s %q; want %s", o.code, o.message, tt.code)
			}
			if _, ok := e.storage(id); ok || e.doc(id) != nil {
				t.Error("a refused create left something")
			}
		})
	}
	// An administrator makes volumes for users.
	id := uuid.NewString()
	if o := e.typed(admin, subject.CmdVolumeCreate, &volumev1.CreateVolume{Uuid: id, SizeGib: 1, Owner: "bob"}); !o.ok() {
		t.Fatalf("admin creates for bob: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); v.Owner != "bob" || !sameACL(t, v.ACL, "bob", volume.Private) {
		t.Errorf("bob's volume: %+v", v)
	}
	if got := e.ledger("bob"); got[id] != 1 {
		t.Errorf("bob's ledger: %v", got)
	}
}

func TestUpdateVolume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := e.create(alice, `{"size": 1, "tag": "OLD", "description": "kept"}`)
	tag, size := "NEW", uint32(3)
	o := e.typed(alice, subject.CmdVolumeUpdate, &volumev1.UpdateVolume{Uuid: id, Tag: &tag, SizeGib: &size, Visibility: volumev1.Visibility_VISIBILITY_PUBLIC})
	if !o.ok() {
		t.Fatalf("update: %s %q", o.code, o.message)
	}
	v := e.mustDoc(id)
	if v.Tag != "NEW" || v.Description != "kept" || v.Size != 3 || v.Capacity != 3<<20 || v.Visibility != volume.Public || !sameACL(t, v.ACL, "alice", volume.Public) {
		t.Errorf("after the update: %+v", v)
	}
	if bv, _ := e.storage(id); bv.Size != 3<<30 {
		t.Errorf("storage after growing: %d bytes", bv.Size)
	}
	if got := e.ledger("alice"); got[id] != 3 {
		t.Errorf("alice's ledger: %v", got)
	}
	small := uint32(2)
	if o := e.typed(alice, subject.CmdVolumeUpdate, &volumev1.UpdateVolume{Uuid: id, SizeGib: &small}); o.code != errs.Invalid {
		t.Errorf("shrink: %s %q", o.code, o.message)
	}
	if o := e.typed(bob, subject.CmdVolumeUpdate, &volumev1.UpdateVolume{Uuid: id, Tag: &tag}); o.code != errs.Forbidden {
		t.Errorf("bob updates: %s %q", o.code, o.message)
	}
}

// TestImageVolumes: the life of a machine's disk from the image cache.
func TestImageVolumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	img := serveImage(t, 4<<20, 1<<20)
	start := time.Now().UTC().Truncate(time.Second)
	e.clock.Freeze(start)
	live, machine := uuid.NewString(), uuid.NewString()
	origin := volume.OriginUUID("IMG")

	if o := e.typed(alice, subject.CmdVolumeGetImage, getImage(img, "IMG", live, machine)); !o.ok() {
		t.Fatalf("get image: %s %q", o.code, o.message)
	}
	v := e.mustDoc(live)
	if v.Type != volume.MachineImageLive || v.Owner != "alice" || v.Origin != origin || v.State != volume.InUse ||
		len(v.Attachments) != 1 || v.Attachments[0].Machine != "Machine/"+machine {
		t.Fatalf("live volume: %+v", v)
	}
	if o := e.mustDoc(origin); o.Type != volume.MachineImageOrigin || o.State != volume.Available || o.Count != 1 {
		t.Fatalf("origin: %+v", o)
	}
	if bv, ok := e.storage(live); !ok || bv.Origin != origin {
		t.Fatalf("live storage: %+v %v", bv, ok)
	}
	sameContent(t, v.Path, img.path)
	if got := e.usageOf(live, subject.EvtVolumeAttached); len(got) != 1 {
		t.Errorf("VolumeAttached events: %+v", got)
	}
	if got := e.ledger("alice"); len(got) != 0 {
		t.Errorf("image disks count against the quota: %v", got)
	}

	// Capture: a standalone copy, alice's, of the same content.
	captured := uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeCapture, &volumev1.CaptureVolume{Uuid: live, NewUuid: captured, Tag: "saved"}); !o.ok() {
		t.Fatalf("capture: %s %q", o.code, o.message)
	}
	c := e.mustDoc(captured)
	if c.Type != volume.DataImageRawReadWrite || c.Owner != "alice" || c.State != volume.Available || c.Origin != "" || c.Tag != "saved" || c.Size != v.Size {
		t.Errorf("captured volume: %+v", c)
	}
	if bv, ok := e.storage(captured); !ok || bv.Origin != "" {
		t.Errorf("captured storage: %+v %v", bv, ok)
	}
	sameContent(t, c.Path, img.path)
	if got := e.ledger("alice"); len(got) != 1 || got[captured] != c.Size {
		t.Errorf("alice's ledger: %v; want the captured volume", got)
	}
	if got := e.usageOf(captured, subject.EvtVolumeCreated); len(got) != 1 {
		t.Errorf("VolumeCreated events of the capture: %+v", got)
	}

	// The machine ends: its disk is quarantined.
	q := e.settings.Load().Quarantine.D()
	if o := e.typed(admin, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: live, MachineUuid: machine}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	v = e.mustDoc(live)
	until := start.Add(q)
	if v.State != volume.Quarantined || !volume.ParseStamp(v.Quarantine).Equal(until) || len(v.Attachments) != 0 {
		t.Fatalf("released: %+v; want QUARANTINED until %s", v, until)
	}
	// A later release (vmctl retrying) does not put the end off.
	e.clock.Advance(time.Minute)
	if o := e.typed(admin, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: live, MachineUuid: machine}); !o.ok() {
		t.Fatalf("release again: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(live); !volume.ParseStamp(v.Quarantine).Equal(until) {
		t.Errorf("released again: quarantine until %s; want %s", v.Quarantine, until)
	}
	// Nor can a machine have it again.
	if o := e.typed(alice, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: live, MachineUuid: uuid.NewString()}); o.code != errs.Conflict {
		t.Errorf("attach a quarantined volume: %s %q", o.code, o.message)
	}

	ctx := context.Background()
	ctl := e.r().ctl
	e.clock.Freeze(until.Add(-time.Second))
	if n, err := ctl.Tidy(ctx); err != nil || n != 0 {
		t.Fatalf("tidy before the end of the quarantine: %d, %v", n, err)
	}
	if e.doc(live) == nil {
		t.Fatal("deleted before the end of its quarantine")
	}
	e.clock.Freeze(until)
	if n, err := ctl.Tidy(ctx); err != nil || n != 1 {
		t.Fatalf("tidy at the end of the quarantine: %d, %v", n, err)
	}
	if _, ok := e.storage(live); ok || e.doc(live) != nil {
		t.Fatal("the quarantined volume is still there")
	}
	if got := e.usageOf(live, subject.EvtVolumeDeleted); len(got) != 1 || got[0].owner != "alice" {
		t.Errorf("VolumeDeleted events: %+v", got)
	}
	o := e.mustDoc(origin)
	if o.Count != 0 || o.State != volume.Available {
		t.Fatalf("origin after its snapshot went: %+v", o)
	}
	if _, ok := e.storage(origin); !ok {
		t.Fatal("the origin went before its idle time")
	}

	// Unused for CacheIdle: evicted.
	e.clock.Freeze(until.Add(e.settings.Load().CacheIdle.D()))
	if _, err := ctl.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.storage(origin); ok || e.doc(origin) != nil {
		t.Error("an idle origin was not evicted")
	}
	// The captured volume never depended on it.
	if _, ok := e.storage(captured); !ok {
		t.Fatal("the captured volume went with the origin")
	}
	sameContent(t, c.Path, img.path)
	if got := e.stored(); len(got) != 1 || got[0] != captured {
		t.Errorf("storage left: %v; want only the captured volume", got)
	}
}

// TestCaptureOwner: a capture by the system or an administrator naming
// no owner belongs to the owner of the source; a user's capture is the
// user's own.
func TestCaptureOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	src := e.create(alice, `{"size": 1, "visibility": "PUBLIC"}`)
	for _, tt := range []struct {
		name  string
		actor string
		owner string // the owner named in the command
		want  string
		code  errs.Code
	}{
		{"system", "", "", "alice", ""},
		{"alice", "alice", "", "alice", ""},
		{"bob for himself", "bob", "", "bob", ""},
		{"bob for alice", "bob", "alice", "", errs.Forbidden},
		{"admin", "admin", "", "alice", ""},
		{"admin for carol", "admin", "carol", "carol", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			actor := map[string]*commonv1.Actor{"": nil, "alice": alice, "bob": bob, "admin": admin}[tt.actor]
			id := uuid.NewString()
			o := e.do(command{actor: actor, subject: subject.CmdVolumeCapture, msg: &volumev1.CaptureVolume{Uuid: src, NewUuid: id, Owner: tt.owner}})
			if o.code != tt.code {
				t.Fatalf("capture: %s %q; want %q", o.code, o.message, tt.code)
			}
			if tt.code != "" {
				if _, ok := e.storage(id); ok || e.doc(id) != nil {
					t.Error("a refused capture left something")
				}
				return
			}
			if v := e.mustDoc(id); v.Owner != tt.want || !sameACL(t, v.ACL, tt.want, volume.Private) {
				t.Errorf("captured volume: owner %q, acl %s; want %s's", v.Owner, v.ACL, tt.want)
			}
			if got := e.ledger(tt.want); got[id] != 1 {
				t.Errorf("%s's ledger: %v", tt.want, got)
			}
		})
	}

	// What a capture is refused for, leaving nothing behind.
	private := e.create(alice, `{"size": 1}`)
	for _, tt := range []struct {
		name string
		msg  *volumev1.CaptureVolume
		code errs.Code
	}{
		{"huge tag", &volumev1.CaptureVolume{Uuid: src, Tag: strings.Repeat("t", 300)}, errs.Invalid},
		{"huge description", &volumev1.CaptureVolume{Uuid: src, Description: strings.Repeat("d", 5000)}, errs.Invalid},
		{"control characters", &volumev1.CaptureVolume{Uuid: src, Description: "a\x00b"}, errs.Invalid},
		{"origin type", &volumev1.CaptureVolume{Uuid: src, Type: volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_ORIGIN}, errs.Invalid},
		{"unseen source", &volumev1.CaptureVolume{Uuid: private}, errs.NotFound},
		{"no source", &volumev1.CaptureVolume{Uuid: uuid.NewString()}, errs.NotFound},
	} {
		id := uuid.NewString()
		tt.msg.NewUuid = id
		if o := e.typed(bob, subject.CmdVolumeCapture, tt.msg); o.code != tt.code {
			t.Errorf("%s: %s %q; want %s", tt.name, o.code, o.message, tt.code)
		}
		if _, ok := e.storage(id); ok || e.doc(id) != nil {
			t.Errorf("%s: a refused capture left something", tt.name)
		}
	}
	if got := e.ledger("bob"); len(got) != 1 {
		t.Errorf("bob's ledger: %v; want his one capture", got)
	}
}

// TestDeleteTwiceCountsOnce: two replicas' janitors that read the same
// quarantined disk both delete it; its origin counts the end of the
// snapshot once, not twice.
func TestDeleteTwiceCountsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	img := serveImage(t, 2<<20, 64<<10)
	first, second := uuid.NewString(), uuid.NewString()
	for _, id := range []string{first, second} {
		if o := e.typed(alice, subject.CmdVolumeGetImage, getImage(img, "IMG", id, "")); !o.ok() {
			t.Fatalf("get image: %s %q", o.code, o.message)
		}
	}
	origin := volume.OriginUUID("IMG")
	if o := e.mustDoc(origin); o.Count != 2 {
		t.Fatalf("origin counts %d snapshots; want 2", o.Count)
	}
	ctx := context.Background()
	d, err := e.vols.Get(ctx, volume.ID(first))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range e.replicas {
		v, err := volume.Decode(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ctl.Delete(ctx, v, d.Revision, fmt.Sprintf("%s.janitor-%d", first, i)); err != nil {
			t.Errorf("%s deletes: %v", r.name, err)
		}
	}
	if e.doc(first) != nil {
		t.Fatal("not deleted")
	}
	if o := e.mustDoc(origin); o.Count != 1 {
		t.Errorf("origin counts %d snapshots; want 1 (%s remains)", o.Count, second)
	}
	if got := e.usageOf(first, subject.EvtVolumeDeleted); len(got) != 1 {
		t.Errorf("VolumeDeleted events: %+v", got)
	}
}
