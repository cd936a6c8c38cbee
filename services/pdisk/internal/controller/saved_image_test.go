package controller_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// sha1sum runs Debian's sha1sum on path: the SHA-1 pdisk records must be
// the one anyone computes from the file.
func sha1sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha1sum", path).Output()
	if err != nil {
		t.Fatalf("sha1sum %s: %v", path, err)
	}
	return strings.Fields(string(out))[0]
}

// fileSize is the size of path in bytes, as stat(1) says.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%s", path).Output()
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCaptureFingerprint: a capture records the new volume's size in
// bytes and SHA-1 as stored (what sha1sum says of its file) and the
// Marketplace identifier of that SHA-1; a redelivered capture keeps them.
func TestCaptureFingerprint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	img := serveImage(t, 4<<20, 1<<20)
	live, machine := uuid.NewString(), uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeGetImage, getImage(img, "IMG", live, machine)); !o.ok() {
		t.Fatalf("get image: %s %q", o.code, o.message)
	}
	captured := uuid.NewString()
	cmd := command{actor: alice, subject: subject.CmdVolumeCapture, msg: &volumev1.CaptureVolume{Uuid: live, NewUuid: captured, Tag: "saved"}}
	cmd.id = uuid.NewString()
	if o := e.do(cmd); !o.ok() {
		t.Fatalf("capture: %s %q", o.code, o.message)
	}
	c := e.mustDoc(captured)
	if c.SHA1 == "" || c.SHA1 != sha1sum(t, c.Path) {
		t.Errorf("captured volume: SHA-1 %q, sha1sum says %s", c.SHA1, sha1sum(t, c.Path))
	}
	if c.Bytes != fileSize(t, c.Path) {
		t.Errorf("captured volume: %d bytes, its file has %d", c.Bytes, fileSize(t, c.Path))
	}
	if len(c.Identifier) != 27 || strings.HasPrefix(c.Identifier, "snapshot:") {
		t.Errorf("captured volume: identifier %q, want a Marketplace identifier", c.Identifier)
	}
	sameContent(t, c.Path, img.path)
	// Read through CIMI, as vmctl does.
	doc, code := e.get(admin, captured)
	if code != "" || doc["sha1"] != c.SHA1 || doc["identifier"] != c.Identifier {
		t.Errorf("CIMI view of the capture: %v %v", doc, code)
	}

	// The same command again (vmctl resuming its teardown): same volume.
	if o := e.do(cmd); !o.ok() {
		t.Fatalf("capture again: %s %q", o.code, o.message)
	}
	if again := e.mustDoc(captured); again.SHA1 != c.SHA1 || again.Bytes != c.Bytes || again.Identifier != c.Identifier {
		t.Errorf("after a redelivery: %+v; before: %+v", again, c)
	}
}

// TestImageFromVolume: an image kept in a volume (a capture's draft, a
// "pdisk:<uuid>" location) gives machines copy-on-write disks like a
// download: copied into the cache once, checked by size and SHA-1, for
// those who may see the volume, while no machine writes to it.
func TestImageFromVolume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	img := serveImage(t, 4<<20, 1<<20)
	live, machine := uuid.NewString(), uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeGetImage, getImage(img, "IMG", live, machine)); !o.ok() {
		t.Fatalf("get image: %s %q", o.code, o.message)
	}
	saved := uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeCapture, &volumev1.CaptureVolume{Uuid: live, NewUuid: saved}); !o.ok() {
		t.Fatalf("capture: %s %q", o.code, o.message)
	}
	s := e.mustDoc(saved)
	fromSaved := func(disk, machine string, typ volumev1.VolumeType) *volumev1.GetImageVolume {
		return &volumev1.GetImageVolume{Uuid: disk, ImageId: s.Identifier, SourceVolumeUuid: saved, Bytes: uint64(s.Bytes), Sha1: s.SHA1,
			MachineUuid: machine, Type: typ}
	}

	// Refusals first, leaving nothing in the cache.
	for _, tt := range []struct {
		name  string
		actor string
		msg   func(disk string) *volumev1.GetImageVolume
		code  errs.Code
		says  string
	}{
		{"not bob's", "bob", func(d string) *volumev1.GetImageVolume { return fromSaved(d, uuid.NewString(), 0) }, errs.NotFound, "not yours"},
		{"wrong SHA-1", "alice", func(d string) *volumev1.GetImageVolume {
			m := fromSaved(d, uuid.NewString(), 0)
			m.ImageId, m.Sha1 = "OTHER", "0123456789abcdef0123456789abcdef01234567"
			return m
		}, errs.Invalid, "expected SHA-1 0123456789abcdef0123456789abcdef01234567, got " + s.SHA1},
		{"wrong size", "alice", func(d string) *volumev1.GetImageVolume {
			m := fromSaved(d, uuid.NewString(), 0)
			m.ImageId, m.Bytes = "SHORT", uint64(s.Bytes-1)
			return m
		}, errs.Invalid, "expected"},
		{"a cache disk", "alice", func(d string) *volumev1.GetImageVolume {
			m := fromSaved(d, uuid.NewString(), 0)
			m.ImageId, m.SourceVolumeUuid = "LIVE", live
			return m
		}, errs.Invalid, "image cache"},
	} {
		disk := uuid.NewString()
		actor := map[string]*commonv1.Actor{"alice": alice, "bob": bob}[tt.actor]
		o := e.typed(actor, subject.CmdVolumeGetImage, tt.msg(disk))
		if o.code != tt.code || !strings.Contains(o.message, tt.says) {
			t.Errorf("%s: %s %q; want %s saying %q", tt.name, o.code, o.message, tt.code, tt.says)
		}
		if e.doc(disk) != nil {
			t.Errorf("%s: a refused get_image made volume %s", tt.name, disk)
		}
	}
	if e.doc(volume.OriginUUID(s.Identifier)) != nil {
		t.Fatal("bob's refused request cached alice's image")
	}

	// A machine's root disk from the saved image.
	root, m1 := uuid.NewString(), uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeGetImage, fromSaved(root, m1, 0)); !o.ok() {
		t.Fatalf("get image from a volume: %s %q", o.code, o.message)
	}
	v := e.mustDoc(root)
	origin := e.mustDoc(volume.OriginUUID(s.Identifier))
	if v.Type != volume.MachineImageLive || v.Origin != origin.UUID || origin.SHA1 != s.SHA1 || origin.Identifier != s.Identifier {
		t.Fatalf("root disk %+v of origin %+v", v, origin)
	}
	if bv, ok := e.storage(root); !ok || bv.Origin != origin.UUID {
		t.Fatalf("root disk storage: %+v %v", bv, ok)
	}
	sameContent(t, v.Path, img.path)

	// A read-only data disk from it: a copy-on-write disk typed read-only,
	// which ends with its machine like any image disk, and counts in no
	// quota.
	ro, m2 := uuid.NewString(), uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeGetImage, fromSaved(ro, m2, volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READONLY)); !o.ok() {
		t.Fatalf("read-only disk from a volume: %s %q", o.code, o.message)
	}
	if r := e.mustDoc(ro); r.Type != volume.DataImageRawReadOnly || r.Origin == "" || r.State != volume.InUse {
		t.Fatalf("read-only disk: %+v", r)
	}
	if got := e.ledger("alice"); len(got) != 1 || got[saved] == 0 {
		t.Errorf("alice's ledger: %v; want the saved volume only", got)
	}
	if o := e.typed(admin, subject.CmdVolumeRelease, &volumev1.ReleaseVolume{Uuid: ro, MachineUuid: m2}); !o.ok() {
		t.Fatalf("release: %s %q", o.code, o.message)
	}
	if r := e.mustDoc(ro); r.State != volume.Quarantined {
		t.Errorf("a released read-only image disk is %s; want QUARANTINED like the other image disks", r.State)
	}

	// While a machine writes to the volume, it is no image source.
	if o := e.typed(alice, subject.CmdVolumeAttach, &volumev1.AttachVolume{Uuid: saved, MachineUuid: uuid.NewString()}); !o.ok() {
		t.Fatalf("attach: %s %q", o.code, o.message)
	}
	busy := fromSaved(uuid.NewString(), uuid.NewString(), 0)
	busy.ImageId = "BUSY"
	if o := e.typed(alice, subject.CmdVolumeGetImage, busy); o.code != errs.Conflict || !strings.Contains(o.message, "read-write") {
		t.Errorf("image from a volume in use: %s %q", o.code, o.message)
	}
	// With a web location too, that is used instead.
	busy.Uuid, busy.Urls, busy.Bytes, busy.Sha1 = uuid.NewString(), []string{img.url}, uint64(img.bytes), img.sha1
	if o := e.typed(alice, subject.CmdVolumeGetImage, busy); !o.ok() {
		t.Errorf("image from a busy volume with a web location: %s %q", o.code, o.message)
	}
}
