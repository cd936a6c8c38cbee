package bus

import (
	"context"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestTerminalTypeNames(t *testing.T) {
	t.Parallel()
	if got := string((&commonv1.CommandCompleted{}).ProtoReflect().Descriptor().FullName()); got != completedType {
		t.Errorf("completedType = %q, the message is %q", completedType, got)
	}
	if got := string((&commonv1.CommandFailed{}).ProtoReflect().Descriptor().FullName()); got != failedType {
		t.Errorf("failedType = %q, the message is %q", failedType, got)
	}
}

// TestTerminals: a waiter registered before its command is sent gets the
// command's outcome, completed or failed with its code; others get
// nothing.
func TestTerminals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	nc, _ := connect(t, e.s)
	terms, err := FollowTerminals(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = terms.Close() })
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, ConsumerSpec{}, func(_ context.Context, cmd *Command) (Result, error) {
			if cmd.Subject() == "cmd.pdisk.volume.bad" {
				return Result{}, Permanent(errs.Errorf(errs.Conflict, "Volume 7 is attached."))
			}
			return Result{Affected: []string{"Volume/7"}}, nil
		})
	})
	for _, tt := range []struct {
		subject string
		code    errs.Code
	}{
		{"cmd.pdisk.volume.good", ""},
		{"cmd.pdisk.volume.bad", errs.Conflict},
	} {
		meta := &commonv1.Meta{CommandId: "c-" + tt.subject}
		other, cancelOther := terms.Expect("someone-else")
		done, cancel := terms.Expect(meta.CommandId)
		if err := b.Send(context.Background(), tt.subject, meta, &commonv1.ResourceRef{}); err != nil {
			t.Fatal(err)
		}
		select {
		case o := <-done:
			switch {
			case tt.code == "" && (o.Err != nil || o.Completed.GetAffected()[0].GetId() != "Volume/7"):
				t.Errorf("%s: %+v", tt.subject, o)
			case tt.code != "" && errs.CodeOf(o.Err) != tt.code:
				t.Errorf("%s: %+v, want code %s", tt.subject, o, tt.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no outcome", tt.subject)
		}
		select {
		case o := <-other:
			t.Errorf("a waiter for another command got %+v", o)
		default:
		}
		cancel()
		cancelOther()
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err       error
		permanent bool
	}{
		{nil, false},
		{errs.Errorf(errs.Invalid, "bad"), true},
		{errs.Errorf(errs.Conflict, "held"), true},
		{errs.Errorf(errs.NotFound, "gone"), true},
		{errs.Errorf(errs.Unavailable, "down"), false},
		{errs.Errorf(errs.Timeout, "slow"), false},
		{context.DeadlineExceeded, false},
		{Permanent(errs.Errorf(errs.Unavailable, "given up")), true},
	} {
		got := Settle(tt.err)
		if IsPermanent(got) != tt.permanent || (tt.err == nil) != (got == nil) {
			t.Errorf("Settle(%v) = %v, permanent %v; want permanent %v", tt.err, got, IsPermanent(got), tt.permanent)
		}
	}
}

// TestOutcomeOfCommandSentAgain: a sender that resumes after a crash sends
// a step's command again under the same id; JetStream drops it, SendOnce
// says so, and Outcome gives the first one's ending, completed or failed.
func TestOutcomeOfCommandSentAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	nc, _ := connect(t, e.s)
	terms, err := FollowTerminals(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = terms.Close() })
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, ConsumerSpec{}, func(_ context.Context, cmd *Command) (Result, error) {
			if cmd.Subject() == "cmd.pdisk.volume.bad" {
				return Result{}, Permanent(errs.Errorf(errs.Conflict, "Volume 7 is attached."))
			}
			return Result{Affected: []string{"Volume/7"}}, nil
		})
	})
	ctx := context.Background()
	for _, tt := range []struct {
		subject string
		code    errs.Code
	}{
		{"cmd.pdisk.volume.good", ""},
		{"cmd.pdisk.volume.bad", errs.Conflict},
	} {
		id := "again-" + tt.subject
		if _, found, err := b.Outcome(ctx, id); err != nil || found {
			t.Fatalf("%s: outcome before sending: found=%v %v", tt.subject, found, err)
		}
		done, cancel := terms.Expect(id)
		dup, err := b.SendOnce(ctx, tt.subject, &commonv1.Meta{CommandId: id}, &commonv1.ResourceRef{})
		if err != nil || dup {
			t.Fatalf("%s: first send: duplicate=%v %v", tt.subject, dup, err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no outcome", tt.subject)
		}
		cancel()
		dup, err = b.SendOnce(ctx, tt.subject, &commonv1.Meta{CommandId: id}, &commonv1.ResourceRef{})
		if err != nil || !dup {
			t.Fatalf("%s: second send: duplicate=%v %v, want a duplicate", tt.subject, dup, err)
		}
		var o Outcome
		var found bool
		for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if o, found, err = b.Outcome(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case !found:
			t.Errorf("%s: no outcome recorded", tt.subject)
		case tt.code == "" && (o.Err != nil || o.Completed.GetAffected()[0].GetId() != "Volume/7"):
			t.Errorf("%s: recorded %+v", tt.subject, o)
		case tt.code != "" && errs.CodeOf(o.Err) != tt.code:
			t.Errorf("%s: recorded %+v, want code %s", tt.subject, o, tt.code)
		}
	}
}
