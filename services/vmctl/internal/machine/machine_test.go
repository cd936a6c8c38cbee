package machine_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// full is a machine with every field set, as a running machine with a
// saved shutdown pending looks.
func full() *machine.Machine {
	m := &machine.Machine{
		ID: machine.ID("0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"), ResourceURI: "http://schemas.dmtf.org/cimi/2/Machine",
		Name: "one-42", Description: "a machine", Created: "2026-03-01T12:00:00Z", Updated: "2026-03-01T12:01:00Z",
		UUID: "0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", VMID: 42, Owner: "alice",
		StateMessage: "", Type: "m1.small", CPU: 1, Memory: 1572864, SwapMiB: 1536,
		Image: machine.Image{URL: "https://example.org/ttylinux.img.gz", Bytes: 1 << 20, SHA1: strings.Repeat("ab", 20)},
		Disks: []machine.Disk{
			{Role: machine.RoleRoot, Volume: "Volume/1b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", Device: "vda"},
			{Role: machine.RoleVolatile, Volume: "Volume/2b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", Device: "vdb", SizeMiB: 10240},
			{Role: machine.RoleReadOnly, Volume: "Volume/3b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", Device: "vdc", ReadOnly: true},
			{Role: machine.RolePersistent, Volume: "Volume/4b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", Device: "vdd", HotPlugged: true},
		},
		Interfaces: []machine.Interface{{Network: "public", IP: "134.158.75.42", MAC: "02:00:86:9e:4b:2a"}},
		IP:         "134.158.75.42", Hostname: "vm-42.example.org", Host: "Host/node-1",
		Context: machine.Context{Method: "cloud-init", SSHKey: "ssh-ed25519 AAAA alice@host",
			Pairs:     []machine.Pair{{Key: "A", Value: "1"}, {Key: "B", Value: "x=y"}},
			CloudInit: "text/cloud-config,config.yaml", Files: map[string]string{"config.yaml": "I2Nsb3VkLWNvbmZpZwo="}, UserData: ""},
		Save:       &machine.Save{Title: "t", Comment: "c", Author: "a", AuthorEmail: "a@example.org", ImageVersion: "1.0"},
		SavedImage: "Volume/5b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e",
		Command:    "cmd-1",
	}
	m.SetState(machine.Running, "", time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC))
	m.SetACL(cimi.OwnedBy(cimi.Identity{User: "alice"}))
	return m
}

// TestEncodeDecode: a stored machine reads back as it was written, under
// the attribute names CIMI.md documents.
func TestEncodeDecode(t *testing.T) {
	m := full()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := machine.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	// The ACL is raw JSON: compare it decoded, the rest field by field.
	if !reflect.DeepEqual(back.Access(), m.Access()) {
		t.Errorf("acl: %+v, want %+v", back.Access(), m.Access())
	}
	back.ACL, m.ACL = nil, nil
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, m)
	}

	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(data, &attrs); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"id", "uuid", "vmId", "name", "description", "owner", "state", "detailedState",
		"stateChanged", "type", "cpu", "memory", "swapMiB", "image", "disks", "networkInterfaces", "ip",
		"hostname", "host", "context", "save", "savedVolume", "created", "updated", "acl", "_command"} {
		if _, ok := attrs[a]; !ok {
			t.Errorf("the stored document has no %q attribute: %s", a, data)
		}
	}
	var disks []map[string]any
	_ = json.Unmarshal(attrs["disks"], &disks)
	if len(disks) != 4 || disks[1]["sizeMiB"] != float64(10240) || disks[2]["readOnly"] != true || disks[3]["hotPlugged"] != true {
		t.Errorf("disks as stored: %s", attrs["disks"])
	}
	var ctx map[string]any
	_ = json.Unmarshal(attrs["context"], &ctx)
	for _, a := range []string{"method", "sshKey", "pairs", "cloudInit", "files"} {
		if _, ok := ctx[a]; !ok {
			t.Errorf("the context has no %q attribute: %s", a, attrs["context"])
		}
	}

	// A machine with nothing optional writes none of the optional
	// attributes: a Pending machine has no host, no disks yet...
	empty, _ := (&machine.Machine{ID: "Machine/x"}).Encode()
	for _, a := range []string{`"host"`, `"save"`, `"savedVolume"`, `"disks"`, `"_command"`, `"stateMessage"`, `"acl"`} {
		if strings.Contains(string(empty), a) {
			t.Errorf("an empty machine writes %s: %s", a, empty)
		}
	}
}

// TestDecode reads what the store may hold: attributes other writers add
// are ignored, wrong types and broken JSON are errors.
func TestDecode(t *testing.T) {
	tests := []struct {
		name, doc string
		ok        bool
		check     func(*machine.Machine) bool
	}{
		{"minimal", `{"id":"Machine/x"}`, true, func(m *machine.Machine) bool { return m.ID == "Machine/x" }},
		{"unknown attributes ignored", `{"id":"Machine/x","operations":[{"rel":"delete"}],"vmId":3,"futureThing":{"a":1}}`, true,
			func(m *machine.Machine) bool { return m.VMID == 3 }},
		{"state strings kept as they are", `{"detailedState":"Sleeping","state":"WEIRD"}`, true,
			func(m *machine.Machine) bool { return m.DetailedState == "Sleeping" && m.State == "WEIRD" }},
		{"vmId as a string", `{"vmId":"42"}`, false, nil},
		{"cpu as a float", `{"cpu":1.5}`, false, nil},
		{"disks not a list", `{"disks":{"role":"root"}}`, false, nil},
		{"acl kept raw", `{"acl":{"owner":{"principal":"bob","type":"USER"}}}`, true,
			func(m *machine.Machine) bool { return m.Access().Owner.Principal == "bob" }},
		{"broken JSON", `{"id":`, false, nil},
		{"not an object", `[1,2]`, false, nil},
		{"empty", ``, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := machine.Decode([]byte(tc.doc))
			if tc.ok != (err == nil) {
				t.Fatalf("Decode(%s) error = %v, want ok=%v", tc.doc, err, tc.ok)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "machine: decode:") {
					t.Errorf("error %q does not say what failed", err)
				}
				return
			}
			if !tc.check(m) {
				t.Errorf("Decode(%s) = %+v", tc.doc, m)
			}
		})
	}
}

// allDetailed lists every StratusLab state with its DMTF state and its bus
// form (REFERENCE.md "Machines", machine.proto).
var allDetailed = []struct {
	d     machine.Detailed
	state machine.State
	proto machinev1.DetailedState
}{
	{machine.Pending, machine.Creating, machinev1.DetailedState_DETAILED_STATE_PENDING},
	{machine.Prolog, machine.Creating, machinev1.DetailedState_DETAILED_STATE_PROLOG},
	{machine.Boot, machine.Starting, machinev1.DetailedState_DETAILED_STATE_BOOT},
	{machine.Running, machine.Started, machinev1.DetailedState_DETAILED_STATE_RUNNING},
	{machine.Shutdown, machine.Stopping, machinev1.DetailedState_DETAILED_STATE_SHUTDOWN},
	{machine.Epilog, machine.Stopping, machinev1.DetailedState_DETAILED_STATE_EPILOG},
	{machine.Done, machine.Deleted, machinev1.DetailedState_DETAILED_STATE_DONE},
	{machine.Failed, machine.ErrorS, machinev1.DetailedState_DETAILED_STATE_FAILED},
	{machine.UnknownD, machine.Unknown, machinev1.DetailedState_DETAILED_STATE_UNKNOWN},
	{machine.StoppedD, machine.Stopped, machinev1.DetailedState_DETAILED_STATE_STOPPED},
}

// TestStates maps every detailed state to its DMTF state, through
// CIMIState and SetState, and to its bus form.
func TestStates(t *testing.T) {
	// The bus form of the DMTF states: UNKNOWN has none in machine.proto.
	protoState := map[machine.State]machinev1.MachineState{
		machine.Creating: machinev1.MachineState_MACHINE_STATE_CREATING, machine.Starting: machinev1.MachineState_MACHINE_STATE_STARTING,
		machine.Started: machinev1.MachineState_MACHINE_STATE_STARTED, machine.Stopping: machinev1.MachineState_MACHINE_STATE_STOPPING,
		machine.Stopped: machinev1.MachineState_MACHINE_STATE_STOPPED, machine.Deleted: machinev1.MachineState_MACHINE_STATE_DELETING,
		machine.ErrorS: machinev1.MachineState_MACHINE_STATE_ERROR, machine.Unknown: machinev1.MachineState_MACHINE_STATE_UNSPECIFIED,
	}
	at := time.Date(2026, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	for _, tc := range allDetailed {
		t.Run(string(tc.d), func(t *testing.T) {
			if got := machine.CIMIState(tc.d); got != tc.state {
				t.Errorf("CIMIState(%s) = %s, want %s", tc.d, got, tc.state)
			}
			m := &machine.Machine{StateMessage: "old reason"}
			m.SetState(tc.d, "why", at)
			if m.DetailedState != tc.d || m.State != tc.state || m.StateMessage != "why" {
				t.Errorf("after SetState(%s): %s/%s %q", tc.d, m.DetailedState, m.State, m.StateMessage)
			}
			if m.StateChanged != "2026-03-01T12:00:00.000000005Z" {
				t.Errorf("StateChanged = %q, want the time in UTC with nanoseconds", m.StateChanged)
			}
			m.SetState(tc.d, "", at)
			if m.StateMessage != "" {
				t.Errorf("SetState with no message kept %q", m.StateMessage)
			}
			p := m.Proto()
			if p.GetDetailedState() != tc.proto || p.GetState() != protoState[tc.state] {
				t.Errorf("Proto states = %v/%v, want %v/%v", p.GetDetailedState(), p.GetState(), tc.proto, protoState[tc.state])
			}
			if got := machine.Final(tc.d); got != (tc.d == machine.Done) {
				t.Errorf("Final(%s) = %v", tc.d, got)
			}
		})
	}
	if got := machine.CIMIState("Sleeping"); got != machine.Unknown {
		t.Errorf("CIMIState of an unknown detailed state = %s, want UNKNOWN", got)
	}
	if p := (&machine.Machine{DetailedState: "Sleeping"}).Proto(); p.GetDetailedState() != machinev1.DetailedState_DETAILED_STATE_UNSPECIFIED {
		t.Errorf("Proto of an unknown detailed state = %v", p.GetDetailedState())
	}
}

// TestProto checks the bus form billing and monitoring read.
func TestProto(t *testing.T) {
	m := full()
	m.SetState(machine.Failed, "no room", time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC))
	p := m.Proto()
	if p.GetUuid() != m.UUID || p.GetName() != "one-42" || p.GetDescription() != "a machine" || p.GetOwner() != "alice" ||
		p.GetType() != "m1.small" || p.GetCpu() != 1 || p.GetMemoryMib() != 1536 || p.GetSwapMib() != 1536 ||
		p.GetHostname() != "vm-42.example.org" || p.GetHostId() != "node-1" || p.GetFailureReason() != "no room" {
		t.Errorf("Proto = %v", p)
	}
	if len(p.GetNetworkInterfaces()) != 1 || p.GetNetworkInterfaces()[0].GetIp() != "134.158.75.42" || p.GetNetworkInterfaces()[0].GetMac() != "02:00:86:9e:4b:2a" {
		t.Errorf("interfaces = %v", p.GetNetworkInterfaces())
	}
	if got := p.GetStateChangedAt().AsTime(); !got.Equal(time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC)) {
		t.Errorf("state changed at %v", got)
	}
	// A machine never placed and never changed has no host and no time.
	p = (&machine.Machine{UUID: "u", Memory: 1023}).Proto()
	if p.GetHostId() != "" || p.GetStateChangedAt() != nil || p.GetMemoryMib() != 0 {
		t.Errorf("Proto of a bare machine = %v", p)
	}
}

// TestACL: SetACL and Access round trip; a machine without a readable ACL
// is the administrators' only.
func TestACL(t *testing.T) {
	acl := cimi.ACL{Owner: cimi.Owner{Principal: "alice", Type: cimi.User},
		Rules: []cimi.Rule{{Principal: "bob", Type: cimi.User, Right: cimi.View}}}
	m := &machine.Machine{}
	m.SetACL(acl)
	if got := m.Access(); !reflect.DeepEqual(got, acl) {
		t.Errorf("Access = %+v, want %+v", got, acl)
	}
	adminOnly := cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
	for _, raw := range []string{"", `"not an acl"`, `{"owner":`} {
		m := &machine.Machine{ACL: json.RawMessage(raw)}
		if got := m.Access(); !reflect.DeepEqual(got, adminOnly) {
			t.Errorf("Access with acl %q = %+v, want the administrators'", raw, got)
		}
		if m.Access().Allows(cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}, cimi.View) {
			t.Errorf("a user may view a machine whose acl is %q", raw)
		}
	}
}

// TestCheckUUID accepts canonical lowercase uuids only.
func TestCheckUUID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"0B8F2C3E-4D5A-4B6C-8D7E-9F0A1B2C3D4E", false}, // upper case
		{"0b8f2c3e4d5a4b6c8d7e9f0a1b2c3d4e", false},     // no dashes
		{"{0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e}", false},
		{"0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4", false},   // short
		{"0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e0", false}, // long
		{"0b8f2c3e_4d5a-4b6c-8d7e-9f0a1b2c3d4e", false},
		{"0b8f2c3e-4d5a-4b6c-8d7e9-f0a1b2c3d4e", false}, // dash moved
		{"0b8f2c3g-4d5a-4b6c-8d7e-9f0a1b2c3d4e", false}, // g
		{" b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", false},
		{"0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d\u00e9", false}, // 36 bytes, not ASCII
		{"Machine/0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", false},
		{"../../../etc/passwd-aaaa-bbbb-cccccccc", false},
		{"", false},
		{"42", false},
	}
	for _, tc := range tests {
		err := machine.CheckUUID(tc.id)
		if tc.ok != (err == nil) {
			t.Errorf("CheckUUID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			continue
		}
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Errorf("CheckUUID(%q) code = %s, want invalid", tc.id, errs.CodeOf(err))
			}
			if msg := errs.MessageOf(err); !strings.Contains(msg, "is not a machine uuid") || !strings.Contains(msg, "8-4-4-4-12") {
				t.Errorf("CheckUUID(%q) message %q does not say what a uuid looks like", tc.id, msg)
			}
		}
	}
	// Garbage is quoted shortened, not in full.
	long := strings.Repeat("x", 5000)
	if msg := errs.MessageOf(machine.CheckUUID(long)); len(msg) > 200 || !strings.Contains(msg, "…") {
		t.Errorf("the message about a 5000-byte id is %d bytes: %.100q", len(msg), msg)
	}
}

// TestID names machines as CIMI does.
func TestID(t *testing.T) {
	if got := machine.ID("0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"); got != "Machine/0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e" {
		t.Errorf("ID = %q", got)
	}
	if machine.Kind != "Machine" {
		t.Errorf("Kind = %q", machine.Kind)
	}
}
