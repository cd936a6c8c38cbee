package subject_test

import (
	"strings"
	"testing"

	"stratuslab.dev/proto/subject"
)

func TestBuilders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"command", subject.Command("pdisk", "volume", "create"), "cmd.pdisk.volume.create"},
		{"commands filter", subject.Commands("vmctl", "machine"), "cmd.vmctl.machine.*"},
		{"host command", subject.HostCommand("node1", "start_domain"), "cmd.vmctl.host.node1.start_domain"},
		{"host commands filter", subject.HostCommands("node1"), "cmd.vmctl.host.node1.*"},
		{"event", subject.Event("vmctl", "machine", "state_changed"), "evt.vmctl.machine.state_changed"},
		{"query", subject.Query("pdisk", "get_volume"), "svc.pdisk.get_volume"},
		{"completed", subject.Completed("cmd.pdisk.volume.create"), "evt.pdisk.volume.create_completed"},
		{"failed", subject.Failed("cmd.pdisk.volume.create"), "evt.pdisk.volume.create_failed"},
		{"progress", subject.Progress("cmd.pdisk.volume.get_image"), "evt.pdisk.volume.get_image_progress"},
		{"host completed", subject.Completed("cmd.vmctl.host.n-1.define_domain"), "evt.vmctl.host.n-1.define_domain_completed"},
		{"host failed", subject.Failed("cmd.vmctl.host.n_1.define_domain"), "evt.vmctl.host.n_1.define_domain_failed"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestTerminalOfNonCommandIsEmpty(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"",
		"evt.pdisk.volume.created",
		"svc.pdisk.get_volume",
		"cmd.pdisk.volume",
		"cmd.pdisk.volume.create.now",
		"cmd.pdisk.host.node1.create",
		"cmd.pdisk.volume.*",
		"cmd.pdisk.>",
		"cmd.pdisk..create",
		"cmd.pdisk.volume.create ",
		"cmd.vmctl.host.node1.example.org.start_domain",
	} {
		for name, f := range map[string]func(string) string{
			"Completed": subject.Completed, "Failed": subject.Failed, "Progress": subject.Progress,
		} {
			if got := f(s); got != "" {
				t.Errorf("%s(%q) = %q, want \"\"", name, s, got)
			}
		}
	}
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    subject.Cmd
		wantErr string
	}{
		{in: "cmd.pdisk.volume.create", want: subject.Cmd{Service: "pdisk", Resource: "volume", Verb: "create"}},
		{in: "cmd.vmctl.host.h1.hotplug_disk", want: subject.Cmd{Service: "vmctl", Resource: "host", HostID: "h1", Verb: "hotplug_disk"}},
		{in: "cmd.vmctl.hosts.register", want: subject.Cmd{Service: "vmctl", Resource: "hosts", Verb: "register"}},
		{in: "cmd.vmctl.host.cimi_maintenance", want: subject.Cmd{Service: "vmctl", Resource: "host", Verb: "cimi_maintenance"}},
		{in: "evt.pdisk.volume.create", wantErr: "not a command"},
		{in: "cmd.pdisk.volume", wantErr: "must be cmd.<service>"},
		{in: "cmd.pdisk.vol*.create", wantErr: "token"},
		{in: "cmd.pdisk.volume.", wantErr: "token"},
		{in: "", wantErr: "token"},
	}
	for _, tt := range tests {
		got, err := subject.ParseCommand(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCommand(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestValidTokenAndHostID(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]bool{
		"node1": true, "a-b_C9": true, "": false, "a.b": false, "*": false, ">": false, "a b": false, "é": false,
	} {
		if got := subject.ValidToken(tok); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", tok, got, want)
		}
	}
	for in, want := range map[string]string{
		"node1":             "node1",
		"node1.example.org": "node1-example-org",
		"host *>":           "host---",
		"vm_host-2":         "vm_host-2",
	} {
		got := subject.HostID(in)
		if got != want || !subject.ValidToken(got) {
			t.Errorf("HostID(%q) = %q, want %q (a valid token)", in, got, want)
		}
	}
}

// commandConstants pairs every command constant with the parts it must be
// built from, so that a typo in a constant cannot go unnoticed.
var commandConstants = []struct {
	got                     string
	service, resource, verb string
}{
	{subject.CmdVolumeCreate, subject.Pdisk, subject.ResourceVolume, "create"},
	{subject.CmdVolumeUpdate, subject.Pdisk, subject.ResourceVolume, "update"},
	{subject.CmdVolumeDelete, subject.Pdisk, subject.ResourceVolume, "delete"},
	{subject.CmdVolumeAttach, subject.Pdisk, subject.ResourceVolume, "attach"},
	{subject.CmdVolumeDetach, subject.Pdisk, subject.ResourceVolume, "detach"},
	{subject.CmdVolumeGetImage, subject.Pdisk, subject.ResourceVolume, "get_image"},
	{subject.CmdVolumeCapture, subject.Pdisk, subject.ResourceVolume, "capture"},
	{subject.CmdMachineCreate, subject.Vmctl, subject.ResourceMachine, "create"},
	{subject.CmdMachineStart, subject.Vmctl, subject.ResourceMachine, "start"},
	{subject.CmdMachineStop, subject.Vmctl, subject.ResourceMachine, "stop"},
	{subject.CmdMachineRestart, subject.Vmctl, subject.ResourceMachine, "restart"},
	{subject.CmdMachineShutdown, subject.Vmctl, subject.ResourceMachine, "shutdown"},
	{subject.CmdMachineKill, subject.Vmctl, subject.ResourceMachine, "kill"},
	{subject.CmdMachineAttachVolume, subject.Vmctl, subject.ResourceMachine, "attach_volume"},
	{subject.CmdMachineDetachVolume, subject.Vmctl, subject.ResourceMachine, "detach_volume"},
	{subject.CmdMachineConfigPut, subject.Vmctl, subject.ResourceMachineConfig, "put"},
	{subject.CmdMachineConfigDelete, subject.Vmctl, subject.ResourceMachineConfig, "delete"},
	{subject.CmdHostsRegister, subject.Vmctl, subject.ResourceHosts, "register"},
	{subject.CmdHostsHeartbeat, subject.Vmctl, subject.ResourceHosts, "heartbeat"},
	{subject.CmdHostsSetMaintenance, subject.Vmctl, subject.ResourceHosts, "set_maintenance"},
	{subject.CmdMachineImageCreateDraft, subject.Marketplace, subject.ResourceMachineImage, "create_draft"},
}

var hostVerbs = []string{
	subject.VerbDefineDomain, subject.VerbStartDomain, subject.VerbShutdownDomain,
	subject.VerbRebootDomain, subject.VerbDestroyDomain, subject.VerbHotplugDisk, subject.VerbUnplugDisk,
}

func TestCommandConstants(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range commandConstants {
		if want := subject.Command(c.service, c.resource, c.verb); c.got != want {
			t.Errorf("constant %q, want %q", c.got, want)
		}
		if seen[c.got] {
			t.Errorf("constant %q defined twice", c.got)
		}
		seen[c.got] = true
		p, err := subject.ParseCommand(c.got)
		if err != nil || p.HostID != "" {
			t.Errorf("ParseCommand(%q) = %+v, %v", c.got, p, err)
		}
	}
	for _, v := range hostVerbs {
		s := subject.HostCommand("h1", v)
		p, err := subject.ParseCommand(s)
		if err != nil || p.HostID != "h1" || p.Verb != v {
			t.Errorf("ParseCommand(%q) = %+v, %v", s, p, err)
		}
	}
}

func TestEventAndQueryConstants(t *testing.T) {
	t.Parallel()
	events := []struct{ got, service, resource, event string }{
		{subject.EvtVolumeCreated, subject.Pdisk, "volume_usage", "created"},
		{subject.EvtVolumeDeleted, subject.Pdisk, "volume_usage", "deleted"},
		{subject.EvtVolumeAttached, subject.Pdisk, "volume_usage", "attached"},
		{subject.EvtVolumeDetached, subject.Pdisk, "volume_usage", "detached"},
		{subject.EvtMachineStateChanged, subject.Vmctl, subject.ResourceMachine, "state_changed"},
		{subject.EvtDomainStateChanged, subject.Vmctl, subject.ResourceDomain, "state_changed"},
		{subject.EvtHostRegistered, subject.Vmctl, subject.ResourceHost, "registered"},
		{subject.EvtHostHeartbeat, subject.Vmctl, subject.ResourceHost, "heartbeat"},
		{subject.EvtHostUnavailable, subject.Vmctl, subject.ResourceHost, "unavailable"},
		{subject.EvtMachineImageDraftCreated, subject.Marketplace, subject.ResourceMachineImage, "draft_created"},
	}
	for _, e := range events {
		if want := subject.Event(e.service, e.resource, e.event); e.got != want {
			t.Errorf("constant %q, want %q", e.got, want)
		}
		if !matches(subject.AllEvents, e.got) {
			t.Errorf("%q is outside the EVENTS stream %q", e.got, subject.AllEvents)
		}
	}
	queries := []struct{ got, service, op string }{
		{subject.SvcGetVolume, subject.Pdisk, "get_volume"},
		{subject.SvcQueryVolumes, subject.Pdisk, "query_volumes"},
		{subject.SvcGetMachine, subject.Vmctl, "get_machine"},
		{subject.SvcQueryMachines, subject.Vmctl, "query_machines"},
		{subject.SvcGetMachineConfig, subject.Vmctl, "get_machine_config"},
		{subject.SvcQueryMachineConfigs, subject.Vmctl, "query_machine_configs"},
		{subject.SvcGetHost, subject.Vmctl, "get_host"},
		{subject.SvcQueryHosts, subject.Vmctl, "query_hosts"},
		{subject.SvcResolveImage, subject.Marketplace, subject.OpResolveImage},
	}
	for _, q := range queries {
		if want := subject.Query(q.service, q.op); q.got != want {
			t.Errorf("constant %q, want %q", q.got, want)
		}
	}
}

// TestWorkQueueFiltersDoNotOverlap checks the property the COMMANDS
// work-queue stream needs: every command subject is matched by exactly one
// consumer filter, so the scheduler's filters never take an agent's
// commands and two agents never share a command.
func TestWorkQueueFiltersDoNotOverlap(t *testing.T) {
	t.Parallel()
	filters := []string{
		subject.Commands(subject.Pdisk, subject.ResourceVolume),
		subject.Commands(subject.Vmctl, subject.ResourceMachine),
		subject.Commands(subject.Vmctl, subject.ResourceMachineConfig),
		subject.Commands(subject.Vmctl, subject.ResourceHosts),
		subject.Commands(subject.Cimi, subject.ResourceServiceMessage),
		subject.Commands(subject.Cimi, subject.ResourceToken("ServiceConfiguration")),
		subject.Commands(subject.Authn, subject.ResourceUser),
		subject.Commands(subject.Marketplace, subject.ResourceMachineImage),
		subject.HostCommands("h1"),
		subject.HostCommands("h2"),
	}
	var cmds []string
	for _, c := range commandConstants {
		cmds = append(cmds, c.got)
	}
	for _, v := range hostVerbs {
		cmds = append(cmds, subject.HostCommand("h1", v), subject.HostCommand("h2", v))
	}
	for _, c := range cmds {
		var hit []string
		for _, f := range filters {
			if matches(f, c) {
				hit = append(hit, f)
			}
		}
		if len(hit) != 1 {
			t.Errorf("%q is matched by %d filters %v, want exactly 1", c, len(hit), hit)
		}
		if !matches(subject.AllCommands, c) {
			t.Errorf("%q is outside the COMMANDS stream %q", c, subject.AllCommands)
		}
		for _, terminal := range []string{subject.Completed(c), subject.Failed(c), subject.Progress(c)} {
			if !matches(subject.AllEvents, terminal) {
				t.Errorf("event %q of %q is outside the EVENTS stream", terminal, c)
			}
		}
	}
}

// matches reports whether a NATS subject filter ("*" one token, ">" the
// rest) matches a literal subject.
func matches(filter, s string) bool {
	f, t := strings.Split(filter, "."), strings.Split(s, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(t) > i
		}
		if i >= len(t) || (tok != "*" && tok != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

func TestResourceToken(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]string{
		"ServiceMessage":       "service_message",
		"User":                 "user",
		"ServiceConfiguration": "service_configuration",
		"Job":                  "job",
		"MachineImage":         subject.ResourceMachineImage,
	} {
		if got := subject.ResourceToken(kind); got != want {
			t.Errorf("ResourceToken(%q) = %q, want %q", kind, got, want)
		}
	}
	if got := subject.CimiCommand(subject.Cimi, subject.ResourceToken("ServiceMessage"), subject.VerbCimiCreate); got != "cmd.cimi.service_message.cimi_create" {
		t.Errorf("CimiCommand = %q", got)
	}
}
