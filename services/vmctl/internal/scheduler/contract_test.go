package scheduler_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"libvirt.org/go/libvirt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// TestPdiskCommandsActAsOwner: pdisk decides from a command's actor
// whether the volume may be used (its ACL), and takes a command without
// one for the system itself, which may do everything. Every command the
// scheduler sends pdisk for a user's machine must therefore carry the
// owner, or a user could start a machine on anybody's volume.
func TestPdiskCommandsActAsOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	bobsVolume := uuid.NewString()
	id := e.mustCreate(map[string]any{"image": urlImage(), "volatileDisks": []int{1}, "persistentDisks": []string{bobsVolume}})
	e.waitState(id, machine.Running)
	if err := e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	if err := e.kill(id); err != nil {
		t.Fatal(err)
	}
	e.waitOrStall(id, machine.Done, scheduler.VerbTeardown, "")
	cmds := e.pdisk.commands(id)
	if len(cmds) < 5 {
		t.Fatalf("pdisk was asked: %s", e.pdisk.describe(id))
	}
	for _, c := range cmds {
		if c.actor.GetUser() != "alice" {
			t.Errorf("%s was sent as %v, not as the machine's owner alice: pdisk takes it for the system's and skips the volume's ACL", c, c.actor)
		}
	}
}

// TestDetachFromStoppedMachine: a hot-plugged volume detached from a
// stopped machine must leave the domain too, or the machine gets it back
// at its next start while pdisk, told it is free, lets another machine
// attach it.
func TestDetachFromStoppedMachine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": uuid.NewString()})
	e.waitState(id, machine.Running)
	vol := uuid.NewString()
	if err := e.act(id, scheduler.ActionAttachVolume, map[string]any{"volume": vol}); err != nil {
		t.Fatal(err)
	}
	path := "/var/lib/pdisk/" + vol + ".qcow2"
	if !strings.Contains(persistentXML(t, id), path) {
		t.Fatalf("the domain's definition has no %s after attach_volume", path)
	}
	if err := e.act(id, scheduler.ActionStop, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.act(id, scheduler.ActionDetachVolume, map[string]any{"volume": vol}); err != nil {
		t.Fatalf("detach from a stopped machine: %v", err)
	}
	if held := e.pdisk.heldBy(id); len(held) != 1 {
		t.Fatalf("pdisk holds %v for the machine", held)
	}
	if strings.Contains(persistentXML(t, id), path) {
		t.Errorf("the stopped machine's domain still has %s after detach_volume, which pdisk now takes for free; the agent was asked %v",
			path, e.hv.callsOf(id))
	}
}

// persistentXML is the definition a domain starts from, as virsh dumpxml
// --inactive shows it (libvirt's test driver is one per process).
func persistentXML(t *testing.T, id string) string {
	t.Helper()
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Close() }()
	dom, err := conn.LookupDomainByUUIDString(id)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()
	x, err := dom.GetXMLDesc(libvirt.DOMAIN_XML_INACTIVE)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestCreateRefusesWhatCannotStart: a body vmctl accepts must be able to
// start; what cannot is a 400 at once (CIMI.md), not a machine that
// fails after its placement.
func TestCreateRefusesWhatCannotStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	img := `"image":"` + vol1 + `"`
	for _, tc := range []struct {
		name, body string
		msg        string
	}{
		// Read-only disks are found in the Marketplace at create too,
		// not at Prolog.
		{"read-only disk the Marketplace does not know", `{` + img + `,"readonlyDisks":["` + strings.Repeat("B", 27) + `"]}`, "No Marketplace entry"},
		// One volume attached twice to one machine, read-write twice or
		// read-write and read-only.
		{"the root volume again as a persistent disk", `{` + img + `,"persistentDisks":["` + vol1 + `"]}`, vol1},
		{"a persistent disk again as read-only", `{` + img + `,"persistentDisks":["` + vol2 + `"],"readonlyDisks":["` + vol2 + `"]}`, vol2},
		// The image object is read leniently, the rest of the body
		// strictly (a misspelt attribute is a 400).
		{"a misspelt attribute of the image", `{"image":{"url":"https://example.org/a","bytes":1,"sha1":"` + sha1 + `","sha256":"x"}}`, "sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uuid.NewString()
			_, err := e.sched.Kind().New(e.ctx, who, machine.ID(id), bodyOf(t, tc.body))
			_ = e.leases.Release(e.ctx, id)
			wantCode(t, tc.name, err, errs.Invalid, tc.msg)
		})
	}
}

// TestRefusedCreateTakesNoNumber: a refused create allocates nothing
// (CIMI.md), its number included, for every refusal: also those found
// once the address is known.
func TestRefusedCreateTakesNoNumber(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	img := `"image":"` + vol1 + `"`
	for _, tc := range []struct {
		name, body string
		msg        string
	}{
		// The stand-in address the context is first checked with has no
		// gateway, MAC or DNS: the keys the disk then sets pass.
		{"context key ETH0_GATEWAY", `{` + img + `,"context":[{"key":"ETH0_GATEWAY","value":"x"}]}`, "ETH0_GATEWAY"},
		{"context key ETH0_MAC", `{` + img + `,"context":[{"key":"ETH0_MAC","value":"x"}]}`, "ETH0_MAC"},
		{"context key ETH0_DNS", `{` + img + `,"context":[{"key":"ETH0_DNS","value":"x"}]}`, "ETH0_DNS"},
		// No pool serves the private network here.
		{"private network", `{` + img + `,"network":"private"}`, "private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uuid.NewString()
			next := e.nextVMID(t)
			_, err := e.sched.Kind().New(e.ctx, who, machine.ID(id), bodyOf(t, tc.body))
			wantCode(t, tc.name, err, errs.Invalid, tc.msg)
			if n := e.nextVMID(t); n != next {
				t.Errorf("the refused create took number %d", next)
			}
			if l := e.leasesOf(id); len(l) != 0 {
				t.Errorf("the refused create holds %+v", l)
			}
		})
	}
}

// TestCreateMessagesForPeople: refusals are written for a person who has
// not read the code (CONVENTIONS.md): no Go types, and a volume is not
// called a machine.
func TestCreateMessagesForPeople(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	img := `"image":"` + vol1 + `"`
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"cpu a string", `{` + img + `,"cpu":"2"}`, "cpu"},
		{"ram a float", `{` + img + `,"ram":1024.5}`, "ram"},
		{"volatile disk a string", `{` + img + `,"volatileDisks":["10G"]}`, "volatileDisks"},
		{"context as strings", `{` + img + `,"context":["A=1"]}`, "context"},
		{"persistent disk not a uuid", `{` + img + `,"persistentDisks":["Volume/` + vol2 + `"]}`, "volume"},
		{"image volume not a uuid", `{"image":{"volume":"42"}}`, "volume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.sched.Kind().New(e.ctx, who, machine.ID(uuid.NewString()), bodyOf(t, tc.body))
			msg := errs.MessageOf(err)
			if errs.CodeOf(err) != errs.Invalid || !strings.Contains(msg, tc.want) {
				t.Fatalf("%v: %q", errs.CodeOf(err), msg)
			}
			for _, internal := range []string{"Go struct", "request.", "int64", "machine.Pair", "machine uuid"} {
				if strings.Contains(msg, internal) {
					t.Errorf("the message says %q: %q", internal, msg)
				}
			}
		})
	}
}

// TestEdit: users edit the name and the description of their machine
// within the limits of a create, and nothing else.
func TestEdit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	id := e.mustCreate(map[string]any{"image": uuid.NewString()})
	e.waitState(id, machine.Running)
	edit := func(body map[string]any) error {
		return e.send(subject.VerbCimiEdit, machine.ID(id), alice, "", body)
	}
	if err := edit(map[string]any{"name": "renamed", "description": "new", "cpu": 64, "detailedState": "Done", "owner": "bob"}); err != nil {
		t.Fatal(err)
	}
	m := e.machine(id)
	if m.Name != "renamed" || m.Description != "new" || m.CPU != 1 || m.DetailedState != machine.Running || m.Owner != "alice" {
		t.Errorf("after the edit: name %q description %q cpu %d state %s owner %q", m.Name, m.Description, m.CPU, m.DetailedState, m.Owner)
	}
	wantCode(t, "a name that is a number", edit(map[string]any{"name": 42}), errs.Invalid, "name")
	wantCode(t, "a description of 4097 bytes", edit(map[string]any{"description": strings.Repeat("d", 4097)}), errs.Invalid, "4096")
	wantCode(t, "a name of 257 bytes, longer than a create accepts", edit(map[string]any{"name": strings.Repeat("n", 257)}), errs.Invalid, "256")
	wantCode(t, "bob renames alice's machine", e.send(subject.VerbCimiEdit, machine.ID(id), bob, "", map[string]any{"name": "x"}), errs.NotFound)
}
