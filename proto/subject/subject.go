package subject

import (
	"fmt"
	"strings"
)

// The first token of each kind of subject.
const (
	CommandPrefix = "cmd"
	EventPrefix   = "evt"
	QueryPrefix   = "svc"
)

// Filters covering every command and every event: the subjects of the
// COMMANDS and EVENTS streams.
const (
	AllCommands = CommandPrefix + ".>"
	AllEvents   = EventPrefix + ".>"
)

// Service names, the second token of command, event and query subjects.
const (
	Authn        = "authn"
	Cimi         = "cimi"
	Marketplace  = "marketplace"
	Pdisk        = "pdisk"
	Registration = "registration"
	Vmctl        = "vmctl"
)

// Suffixes appended to a command's verb to name its events.
const (
	CompletedSuffix = "_completed"
	FailedSuffix    = "_failed"
	ProgressSuffix  = "_progress"
)

// hostResource is the resource token of host-targeted vmctl commands; its
// subjects have one more token, the host id, before the verb.
const hostResource = "host"

// Command returns the subject of a command: cmd.<service>.<resource>.<verb>.
func Command(service, resource, verb string) string {
	return CommandPrefix + "." + service + "." + resource + "." + verb
}

// Commands returns the filter matching every verb of one resource's
// commands, e.g. "cmd.vmctl.machine.*" for a consumer of machine commands.
func Commands(service, resource string) string {
	return Command(service, resource, "*")
}

// HostCommand returns the subject of a command for the vmctl agent of one
// host: cmd.vmctl.host.<hostID>.<verb>. hostID must be a valid token (see
// HostID); otherwise the subject reaches no agent.
func HostCommand(hostID, verb string) string {
	return Command(Vmctl, hostResource, hostID+"."+verb)
}

// HostCommands returns the filter an agent consumes: every command for its
// host, cmd.vmctl.host.<hostID>.*.
func HostCommands(hostID string) string {
	return HostCommand(hostID, "*")
}

// Event returns the subject of an event: evt.<service>.<resource>.<event>.
func Event(service, resource, event string) string {
	return EventPrefix + "." + service + "." + resource + "." + event
}

// Query returns the subject of a NATS micro query endpoint: svc.<service>.<op>.
func Query(service, op string) string {
	return QueryPrefix + "." + service + "." + op
}

// Completed returns the subject of the event that says the command sent on
// cmd succeeded, e.g. "cmd.pdisk.volume.create" gives
// "evt.pdisk.volume.create_completed". It returns "" (which NATS refuses
// to publish on) when cmd is not a command subject.
func Completed(cmd string) string {
	return terminal(cmd, CompletedSuffix)
}

// Failed returns the subject of the event that says the command sent on
// cmd failed, e.g. "evt.pdisk.volume.create_failed"; "" when cmd is not a
// command subject.
func Failed(cmd string) string {
	return terminal(cmd, FailedSuffix)
}

// Progress returns the subject of the progress reports of the command sent
// on cmd, e.g. "evt.pdisk.volume.get_image_progress"; "" when cmd is not a
// command subject.
func Progress(cmd string) string {
	return terminal(cmd, ProgressSuffix)
}

func terminal(cmd, suffix string) string {
	if _, err := ParseCommand(cmd); err != nil {
		return ""
	}
	return EventPrefix + strings.TrimPrefix(cmd, CommandPrefix) + suffix
}

// Cmd is a command subject taken apart.
type Cmd struct {
	Service  string
	Resource string
	// HostID is set for host-targeted vmctl commands only.
	HostID string
	Verb   string
}

// ParseCommand takes a command subject apart, checking that it has the
// shape cmd.<service>.<resource>.<verb> or cmd.vmctl.host.<hostId>.<verb>
// and that every token is valid. A four-token cmd.vmctl.host.<verb> is an
// ordinary resource command (CIMI writes of Host records).
func ParseCommand(s string) (Cmd, error) {
	t := strings.Split(s, ".")
	for _, tok := range t {
		if !ValidToken(tok) {
			return Cmd{}, fmt.Errorf("subject %q: token %q must be letters, digits, '-' or '_'", s, tok)
		}
	}
	if t[0] != CommandPrefix {
		return Cmd{}, fmt.Errorf("subject %q is not a command: it must start with %q", s, CommandPrefix+".")
	}
	hostTargeted := len(t) > 2 && t[1] == Vmctl && t[2] == hostResource
	switch {
	case len(t) == 4:
		// cmd.vmctl.host.<verb> too: the CIMI writes of Host records,
		// which the scheduler handles, not an agent.
		return Cmd{Service: t[1], Resource: t[2], Verb: t[3]}, nil
	case len(t) == 5 && hostTargeted:
		return Cmd{Service: t[1], Resource: t[2], HostID: t[3], Verb: t[4]}, nil
	}
	return Cmd{}, fmt.Errorf("subject %q must be cmd.<service>.<resource>.<verb> or cmd.vmctl.host.<hostId>.<verb>", s)
}

// ValidToken reports whether tok can be one token of our subjects: not
// empty, and only ASCII letters, digits, '-' and '_'. NATS itself allows
// more, but dots, wildcards and spaces would change a subject's meaning.
func ValidToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte(tok[i]) {
			return false
		}
	}
	return true
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// HostID turns a host name into a host id usable as a subject token by
// replacing every other character with '-': "node1.example.org" becomes
// "node1-example-org". Agents use it when no id is configured.
func HostID(hostname string) string {
	b := []byte(hostname)
	for i, c := range b {
		if !tokenByte(c) {
			b[i] = '-'
		}
	}
	return string(b)
}

// CimiQuery returns the subject of a generic CIMI read served by service,
// e.g. CimiQuery("authn", OpCimiGet) is "svc.authn.cimi_get".
func CimiQuery(service, op string) string {
	return Query(service, op)
}

// CimiCommand returns the subject of a generic CIMI write, e.g.
// CimiCommand("cimi", "service_message", VerbCimiCreate) is
// "cmd.cimi.service_message.cimi_create".
func CimiCommand(service, resource, verb string) string {
	return Command(service, resource, verb)
}

// CimiAction returns the verb of a CIMI action, e.g. "start" gives
// "cimi_start".
func CimiAction(action string) string {
	return VerbCimiActionPrefix + action
}

// ResourceToken returns the subject token of a CIMI kind: its name in
// snake case, e.g. "ServiceMessage" gives "service_message".
func ResourceToken(kind string) string {
	var b strings.Builder
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
