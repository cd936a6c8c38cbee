package api

import (
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// terminal is how a command ended: err is nil when it completed.
type terminal struct {
	err error
}

// Names of the terminal event payloads, as the Stratus-Type header gives
// them, so that the dispatcher decodes nothing else (a test checks them
// against the generated descriptors).
const (
	completedType = "stratus.common.v1.CommandCompleted"
	failedType    = "stratus.common.v1.CommandFailed"
)

// waiters hands the terminal events of commands to the requests waiting
// for them. A request registers before it sends its command, so that an
// event arriving faster than the send returns is not lost. Events of
// commands nobody waits for (sent by another gateway, or given up) are
// dropped: the jobs package records them.
type waiters struct {
	mu      sync.Mutex
	pending map[string]chan terminal
}

func newWaiters() *waiters {
	return &waiters{pending: map[string]chan terminal{}}
}

// add registers a waiter for the command id; cancel removes it.
func (w *waiters) add(commandID string) (ch <-chan terminal, cancel func()) {
	c := make(chan terminal, 1)
	w.mu.Lock()
	w.pending[commandID] = c
	w.mu.Unlock()
	return c, func() {
		w.mu.Lock()
		delete(w.pending, commandID)
		w.mu.Unlock()
	}
}

// deliver passes the outcome of a command to its waiter, if any.
func (w *waiters) deliver(commandID string, t terminal) {
	w.mu.Lock()
	c, ok := w.pending[commandID]
	delete(w.pending, commandID)
	w.mu.Unlock()
	if ok {
		c <- t // buffered and removed: never blocks, never sent twice
	}
}

// receive is the callback of the core NATS subscription on every event.
// It runs on the subscription's goroutine, so it only decodes the two
// terminal payloads and hands them on.
func (w *waiters) receive(m *nats.Msg) {
	isCompleted := strings.HasSuffix(m.Subject, subject.CompletedSuffix)
	if !isCompleted && !strings.HasSuffix(m.Subject, subject.FailedSuffix) {
		return
	}
	typ := m.Header.Get(bus.HeaderType)
	switch {
	case isCompleted && typ == completedType:
		var ev commonv1.CommandCompleted
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetCommandId() != "" {
			w.deliver(ev.GetCommandId(), terminal{})
		}
	case !isCompleted && typ == failedType:
		var ev commonv1.CommandFailed
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetCommandId() != "" {
			err := errs.FromProto(ev.GetError())
			if err == nil {
				err = errs.New(errs.Internal, "")
			}
			w.deliver(ev.GetCommandId(), terminal{err: err})
		}
	}
}
