package bus

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// Outcome is how a command ended: Completed when it did, Err (with the
// command's error code) when it failed.
type Outcome struct {
	Completed *commonv1.CommandCompleted
	Err       error
}

// Names of the terminal event payloads, as the type header gives them, so
// that Terminals decodes nothing else.
const (
	completedType = "stratus.common.v1.CommandCompleted"
	failedType    = "stratus.common.v1.CommandFailed"
)

// Terminals hands the terminal events of commands to whoever waits for
// them: a gateway answering a write, a controller waiting for another
// service's work. A waiter registers (Expect) before it sends its command,
// so that an event arriving before the send returns is not lost. It
// follows the events with a core NATS subscription, not a JetStream
// consumer: a waiter only cares about events published while it waits,
// and every process must see every terminal event. An event that went by
// while nobody waited is gone: a waiter that gives up, or a process that
// restarts, learns the outcome from the state the command changed.
type Terminals struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	pending map[string]chan Outcome
}

// FollowTerminals subscribes to the terminal events on nc.
func FollowTerminals(nc *nats.Conn) (*Terminals, error) {
	t := &Terminals{pending: map[string]chan Outcome{}}
	sub, err := nc.Subscribe(subject.AllEvents, t.receive)
	if err != nil {
		return nil, fmt.Errorf("bus: follow the terminal events of commands: %w", err)
	}
	// Terminal events are small and the callback cheap; a burst must not
	// make the server cut the subscription as a slow consumer.
	if err := sub.SetPendingLimits(1<<16, 64<<20); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: follow the terminal events of commands: %w", err)
	}
	// The server must know the subscription before any command goes out,
	// or a fast handler's answer to the first one could be missed.
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: follow the terminal events of commands: %w", err)
	}
	t.sub = sub
	return t, nil
}

// Close stops following the events.
func (t *Terminals) Close() error { return t.sub.Unsubscribe() }

// Expect registers a waiter for the command id; cancel removes it. The
// channel receives at most one Outcome.
func (t *Terminals) Expect(commandID string) (outcome <-chan Outcome, cancel func()) {
	c := make(chan Outcome, 1)
	t.mu.Lock()
	t.pending[commandID] = c
	t.mu.Unlock()
	return c, func() {
		t.mu.Lock()
		delete(t.pending, commandID)
		t.mu.Unlock()
	}
}

// deliver passes the outcome of a command to its waiter, if any.
func (t *Terminals) deliver(commandID string, o Outcome) {
	t.mu.Lock()
	c, ok := t.pending[commandID]
	delete(t.pending, commandID)
	t.mu.Unlock()
	if ok {
		c <- o // buffered and removed: never blocks, never sent twice
	}
}

// receive runs on the subscription's goroutine: it only decodes the two
// terminal payloads and hands them on.
func (t *Terminals) receive(m *nats.Msg) {
	isCompleted := strings.HasSuffix(m.Subject, subject.CompletedSuffix)
	if !isCompleted && !strings.HasSuffix(m.Subject, subject.FailedSuffix) {
		return
	}
	typ := m.Header.Get(HeaderType)
	switch {
	case isCompleted && typ == completedType:
		var ev commonv1.CommandCompleted
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetCommandId() != "" {
			t.deliver(ev.GetCommandId(), Outcome{Completed: &ev})
		}
	case !isCompleted && typ == failedType:
		var ev commonv1.CommandFailed
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetCommandId() != "" {
			err := errs.FromProto(ev.GetError())
			if err == nil {
				err = errs.New(errs.Internal, "")
			}
			t.deliver(ev.GetCommandId(), Outcome{Err: err})
		}
	}
}
