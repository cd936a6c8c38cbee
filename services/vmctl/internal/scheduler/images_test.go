package scheduler_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	marketplacev1 "stratuslab.dev/proto/stratus/marketplace/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// getImages returns the get_image commands pdisk had about machine id,
// by volume.
func (e *env) getImages(id string) map[string]*volumev1.GetImageVolume {
	out := map[string]*volumev1.GetImageVolume{}
	for _, c := range e.pdisk.commands(id) {
		if g, ok := c.msg.(*volumev1.GetImageVolume); ok {
			out[g.GetUuid()] = g
		}
	}
	return out
}

// TestRunFromMarketplace: a machine from a Marketplace tag runs, its
// read-only disk from an identifier too. The Marketplace is asked as the
// user with the site's policy, once per reference, at create; the deploy
// asks pdisk for the entry's image by identifier, from its locations in
// order, checked by size and SHA-1, the read-only disk as
// DATA_IMAGE_RAW_READONLY; a kill gives everything back.
func TestRunFromMarketplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": "debian-12", "readonlyDisks": []string{marketID}})
	m := e.waitOrStall(id, machine.Running, scheduler.VerbDeploy, "")

	calls := e.market.calls()
	if len(calls) != 2 {
		t.Fatalf("the Marketplace was asked %d times, want twice (the image, the read-only disk)", len(calls))
	}
	for i, ref := range []string{"debian-12", marketID} {
		c := calls[i]
		if c.req.GetReference() != ref || c.req.GetActor().GetUser() != "alice" || c.actor.GetUser() != "alice" ||
			c.req.GetAllowExpired() || c.req.GetAllowDeprecated() {
			t.Errorf("resolve %d: %+v as %v; want %s as alice, no expired or deprecated images", i, c.req, c.actor, ref)
		}
	}

	images := e.getImages(id)
	root := images[strings.TrimPrefix(m.Disks[0].Volume, "Volume/")]
	if root == nil || root.GetImageId() != marketID || !slices.Equal(root.GetUrls(), debianLocations) || root.GetSha1() != debianSHA1 ||
		root.GetBytes() != 2<<30 || root.GetSourceVolumeUuid() != "" || root.GetOwner() != "alice" || root.GetMachineUuid() != id ||
		root.GetType() != volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_LIVE {
		t.Errorf("the root disk's get_image: %v", root)
	}
	var ro machine.Disk
	for _, d := range m.Disks {
		if d.Role == machine.RoleReadOnly {
			ro = d
		}
	}
	data := images[strings.TrimPrefix(ro.Volume, "Volume/")]
	if data == nil || data.GetImageId() != marketID || data.GetType() != volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READONLY ||
		!slices.Equal(data.GetUrls(), debianLocations) || data.GetSha1() != debianSHA1 {
		t.Errorf("the read-only disk %+v: get_image %v", ro, data)
	}
	if x := persistentXML(t, id); !strings.Contains(x, "<readonly/>") || !strings.Contains(x, ro.Device) {
		t.Errorf("the domain has no read-only %s:\n%s", ro.Device, x)
	}
	if len(e.market.calls()) != 2 {
		t.Errorf("the deploy asked the Marketplace again: %d resolves", len(e.market.calls()))
	}

	if err := e.kill(id); err != nil {
		t.Fatal(err)
	}
	e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	e.checkReleased(id)
}

// TestRunDraft: a draft's identifier runs for its author: pdisk copies
// the image from the volume that holds it (no web location); another
// user is told there is no such entry, and nothing is allocated.
func TestRunDraft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": map[string]any{"marketplace": aliceDraftID}})
	m := e.waitOrStall(id, machine.Running, scheduler.VerbDeploy, "")
	root := e.getImages(id)[strings.TrimPrefix(m.Disks[0].Volume, "Volume/")]
	if root == nil || root.GetImageId() != aliceDraftID || root.GetSourceVolumeUuid() != aliceDraftVolume || len(root.GetUrls()) != 0 {
		t.Errorf("the draft's get_image: %v", root)
	}
	if m.Image.Status != "draft" || m.Image.FromVolume != aliceDraftVolume {
		t.Errorf("the machine's image: %+v", m.Image)
	}

	next := e.nextVMID(t)
	err := e.send("cimi_create", machine.ID(uuid.NewString()), bob, "", map[string]any{"image": aliceDraftID})
	wantCode(t, "bob runs alice's draft", err, errs.Invalid, "No Marketplace entry has identifier "+aliceDraftID)
	if n := e.nextVMID(t); n != next {
		t.Errorf("bob's refused create took number %d", next)
	}
}

// TestImagePolicy: expired and deprecated images run where the site
// allows them (ServiceConfiguration/vmctl), each flag on its own, and
// the machine records the entry's status.
func TestImagePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	create := func(image string) (*machine.Machine, error) {
		id := uuid.NewString()
		doc, err := e.sched.Kind().New(e.ctx, who, machine.ID(id), map[string]any{"image": image})
		_ = e.leases.Release(e.ctx, id)
		if err != nil {
			return nil, err
		}
		return fromDoc(t, doc), nil
	}
	if _, err := create(expiredID); errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("an expired image by default: %v", err)
	}

	e.configure(func(s *settings.Settings) { s.AllowExpiredImages = true })
	m, err := create(expiredID)
	if err != nil || m.Image.Status != "expired" || m.Image.Identifier != expiredID {
		t.Fatalf("an expired image where the site allows them: %+v, %v", m, err)
	}
	_, err = create(deprecatedID)
	wantCode(t, "a deprecated image where only expired ones are allowed", err, errs.Invalid, "deprecated: CVE-2024-0001")
	if c := e.market.calls(); !c[len(c)-1].req.GetAllowExpired() || c[len(c)-1].req.GetAllowDeprecated() {
		t.Errorf("the resolve carried %+v", c[len(c)-1].req)
	}

	e.configure(func(s *settings.Settings) { s.AllowExpiredImages, s.AllowDeprecatedImages = false, true })
	if m, err := create("deprecated"); err != nil || m.Image.Status != "deprecated" || m.Image.Identifier != deprecatedID {
		t.Fatalf("a deprecated image by tag where the site allows them: %+v, %v", m, err)
	}
	if _, err := create(expiredID); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("an expired image where only deprecated ones are allowed: %v", err)
	}
}

// TestMarketplaceDown: while the Marketplace does not answer, a machine
// from a Marketplace image is refused as unavailable (503: try later),
// with nothing allocated; machines from volumes still start.
func TestMarketplaceDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	e.market.down()
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	for _, body := range []map[string]any{{"image": marketID}, {"image": vol1, "readonlyDisks": []string{"debian-12"}}} {
		id := uuid.NewString()
		next := e.nextVMID(t)
		_, err := e.sched.Kind().New(e.ctx, who, machine.ID(id), body)
		wantCode(t, "create while the Marketplace is down", err, errs.Unavailable, "Marketplace is not running", "try again later")
		if n := e.nextVMID(t); n != next || len(e.leasesOf(id)) != 0 {
			t.Errorf("the refused create allocated: number %d → %d, leases %v", next, n, e.leasesOf(id))
		}
	}
	id := uuid.NewString()
	if _, err := e.sched.Kind().New(e.ctx, who, machine.ID(id), map[string]any{"image": vol1}); err != nil {
		t.Errorf("a machine from a volume while the Marketplace is down: %v", err)
	}
	_ = e.leases.Release(e.ctx, id)
}

// TestWrongChecksumFails: an image whose download does not match the
// entry's SHA-1 fails the machine with pdisk's message, which names the
// SHA-1, and leaves nothing held.
func TestWrongChecksumFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	why := "image " + marketID + ": expected SHA-1 " + debianSHA1 + ", got " + strings.Repeat("f", 40)
	e.pdisk.setRefuse(func(c pdiskCmd) error {
		if c.verb == "get_image" {
			return errs.Errorf(errs.Invalid, "%s", why)
		}
		return nil
	})
	id := e.mustCreate(map[string]any{"image": marketID, "volatileDisks": []int{1}})
	m := e.waitOrStall(id, machine.Failed, scheduler.VerbDeploy, "")
	if !strings.Contains(m.StateMessage, why) {
		t.Errorf("the failed machine says %q; want pdisk's %q", m.StateMessage, why)
	}
	e.checkReleased(id)
}

// savedBody is the create body of a machine saved at shutdown.
var savedBody = map[string]any{"image": marketID, "save": map[string]any{"title": "web server", "comment": "nginx on debian-12",
	"author": "Alice", "authorEmail": "alice@example.org", "imageVersion": "1.1"}}

// TestSaveMakesDraft: a machine started with save and shut down is
// captured, and the capture becomes a Marketplace draft for its owner
// with the save texts, the base image's os fields, and the size, SHA-1
// and format pdisk recorded; the machine records the draft's identifier,
// which then runs for its owner only.
func TestSaveMakesDraft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(savedBody)
	e.waitOrStall(id, machine.Running, scheduler.VerbDeploy, "")
	if err := e.act(id, scheduler.ActionShutdown, nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m := e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	saved := strings.TrimPrefix(m.SavedImage, "Volume/")
	want := e.pdisk.capturedOf(saved)
	drafts := e.market.draftCalls()
	if len(drafts) != 1 || want == nil {
		t.Fatalf("create_draft commands %+v, capture %v", drafts, want)
	}
	d := drafts[0].msg
	if d.GetOwner() != "alice" || drafts[0].actor.GetUser() != "alice" || d.GetMachineUuid() != id || d.GetVolumeUuid() != saved ||
		d.GetSha1() != want["sha1"] || int(d.GetBytes()) != want["bytes"] || d.GetFormat() != "qcow2" ||
		d.GetTitle() != "web server" || d.GetComment() != "nginx on debian-12" || d.GetAuthor() != "Alice" ||
		d.GetAuthorEmail() != "alice@example.org" || d.GetImageVersion() != "1.1" ||
		d.GetOs() != "Debian" || d.GetOsVersion() != "12" || d.GetOsArch() != "x86_64" || drafts[0].id != id+".draft" {
		t.Errorf("create_draft %v (command %s as %v); capture %v", d, drafts[0].id, drafts[0].actor, want)
	}
	if m.SavedIdentifier == "" || m.SavedIdentifier != want["identifier"] || m.StateMessage != "shut down" {
		t.Errorf("the machine: savedIdentifier %q (want %v), message %q", m.SavedIdentifier, want["identifier"], m.StateMessage)
	}
	e.checkReleased(id)
	for _, c := range e.pdisk.commands("") {
		if c.volume == saved && c.verb != "capture" {
			t.Errorf("the saved volume was %s", c)
		}
	}

	// The draft runs for alice, from the saved volume; bob is told there
	// is no such image.
	again := e.mustCreate(map[string]any{"image": m.SavedIdentifier})
	a := e.waitOrStall(again, machine.Running, scheduler.VerbDeploy, "")
	root := e.getImages(again)[strings.TrimPrefix(a.Disks[0].Volume, "Volume/")]
	if root == nil || root.GetSourceVolumeUuid() != saved || root.GetImageId() != m.SavedIdentifier || root.GetSha1() != want["sha1"] {
		t.Errorf("get_image of the draft: %v", root)
	}
	err := e.send("cimi_create", machine.ID(uuid.NewString()), bob, "", map[string]any{"image": m.SavedIdentifier})
	wantCode(t, "bob runs alice's draft", err, errs.Invalid, "No Marketplace entry has identifier")
}

// TestDraftFailureEndsMachine: a draft the Marketplace refuses, or that
// cannot be made because pdisk recorded no SHA-1, does not keep the
// machine from ending: it is Done, its state message says what happened,
// and the saved volume stays its owner's (nobody releases or deletes it).
func TestDraftFailureEndsMachine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		setup func(e *env)
		says  string
	}{
		{"refused", func(e *env) {
			e.market.setRefuseDraft(func(*marketplacev1.CreateDraft) error {
				return errs.Errorf(errs.Invalid, "The draft cannot be made: text-length: the title is too long.")
			})
		}, "the title is too long"},
		{"no SHA-1", func(e *env) {
			e.pdisk.mu.Lock()
			e.pdisk.noDigest = true
			e.pdisk.mu.Unlock()
		}, "pdisk recorded no size and SHA-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, options{})
			tt.setup(e)
			id := e.mustCreate(savedBody)
			e.waitOrStall(id, machine.Running, scheduler.VerbDeploy, "")
			if err := e.act(id, scheduler.ActionShutdown, nil); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			m := e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
			if m.SavedImage == "" || m.SavedIdentifier != "" || !strings.HasPrefix(m.StateMessage, "shut down; the root disk was saved in "+m.SavedImage) ||
				!strings.Contains(m.StateMessage, "no Marketplace draft") || !strings.Contains(m.StateMessage, tt.says) {
				t.Errorf("the machine: saved %q identifier %q message %q", m.SavedImage, m.SavedIdentifier, m.StateMessage)
			}
			e.checkReleased(id)
			for _, c := range e.pdisk.commands("") {
				if "Volume/"+c.volume == m.SavedImage && c.verb != "capture" {
					t.Errorf("the saved volume was %s", c)
				}
			}
		})
	}
}

// TestTeardownResumesOneDraft: a scheduler that dies after the draft was
// asked for, before the machine is Done, resumes its teardown and asks
// again under the same command id: one draft.
func TestTeardownResumesOneDraft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{crashAt: []string{"vmctl.scheduler.released"}, stepWait: 5 * time.Second})
	id := e.mustCreate(savedBody)
	e.waitOrStall(id, machine.Running, scheduler.VerbDeploy, "")
	if err := e.act(id, scheduler.ActionShutdown, nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m := e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	ids := map[string]int{}
	for _, d := range e.market.draftCalls() {
		ids[d.id]++
	}
	if len(ids) != 1 || ids[id+".draft"] != 1 || m.SavedIdentifier == "" {
		t.Errorf("create_draft commands handled: %v; savedIdentifier %q", ids, m.SavedIdentifier)
	}
	if sent := e.tap.sends(id)["cmd.marketplace.machine_image.create_draft "+id+".draft"]; sent < 2 {
		t.Errorf("the resumed teardown sent create_draft %d times; the crash came after it, so it is sent again", sent)
	}
}

// fromDoc reads a document the Machine kind's New hook returned.
func fromDoc(t *testing.T, doc map[string]any) *machine.Machine {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := machine.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
