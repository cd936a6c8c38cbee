package bus

import (
	"fmt"
	"strings"
)

// Subject prefixes of the three kinds of messages (ARCHITECTURE.md §4).
const (
	commandPrefix = "cmd."
	eventPrefix   = "evt."
	queryPrefix   = "svc."
)

// checkSubject reports whether subject is a concrete subject (no wildcard, no
// empty token) under prefix with at least minTokens tokens.
func checkSubject(subject, prefix string, minTokens int) error {
	if !strings.HasPrefix(subject, prefix) {
		return fmt.Errorf("bus: subject %q must start with %q", subject, prefix)
	}
	tokens := strings.Split(subject, ".")
	if len(tokens) < minTokens {
		return fmt.Errorf("bus: subject %q needs at least %d dot-separated tokens", subject, minTokens)
	}
	for _, t := range tokens {
		if t == "" || t == "*" || t == ">" || strings.ContainsAny(t, " \t\r\n") {
			return fmt.Errorf("bus: subject %q has an empty, wildcard or blank token", subject)
		}
	}
	return nil
}

// checkCommandSubject accepts cmd.<service>.<resource>.<verb> and longer
// forms such as cmd.vmctl.host.<hostId>.<verb>.
func checkCommandSubject(subject string) error {
	return checkSubject(subject, commandPrefix, 4)
}

// checkEventSubject accepts evt.<service>.<resource>.<event> and longer forms.
func checkEventSubject(subject string) error {
	return checkSubject(subject, eventPrefix, 4)
}

// terminalSubject derives the subject of a command's terminal event:
// cmd.pdisk.volume.create with outcome "completed" gives
// evt.pdisk.volume.create_completed. Longer command subjects keep their
// middle tokens (cmd.vmctl.host.h1.start → evt.vmctl.host.h1.start_completed).
func terminalSubject(commandSubject, outcome string) string {
	return eventPrefix + strings.TrimPrefix(commandSubject, commandPrefix) + "_" + outcome
}

// Outcomes appended to a command's verb in its terminal event subject.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
)

// terminalMsgID is the Nats-Msg-Id of a command's terminal event. Completed
// and failed share it, so a command redelivered after its event was stored
// cannot add a second terminal event within the duplicate window, whatever
// the outcome of the second attempt.
func terminalMsgID(commandID string) string {
	return commandID + ".terminal"
}

// querySubject is the subject of a query endpoint.
func querySubject(service, op string) string {
	return queryPrefix + service + "." + op
}
