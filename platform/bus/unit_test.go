package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		command   string
		valid     bool
		completed string
	}{
		{"cmd.pdisk.volume.create", true, "evt.pdisk.volume.create_completed"},
		{"cmd.vmctl.host.h1.start", true, "evt.vmctl.host.h1.start_completed"},
		{"cmd.pdisk.create", false, ""},
		{"evt.pdisk.volume.create", false, ""},
		{"cmd.pdisk.volume.>", false, ""},
		{"cmd.pdisk. .create", false, ""},
		{"cmd.pdisk.volume.", false, ""},
	}
	for _, tt := range tests {
		err := checkCommandSubject(tt.command)
		if (err == nil) != tt.valid {
			t.Errorf("checkCommandSubject(%q) = %v, want valid=%v", tt.command, err, tt.valid)
		}
		if tt.valid {
			if got := terminalSubject(tt.command, outcomeCompleted); got != tt.completed {
				t.Errorf("terminalSubject(%q) = %q, want %q", tt.command, got, tt.completed)
			}
			if err := checkEventSubject(terminalSubject(tt.command, outcomeFailed)); err != nil {
				t.Errorf("failed subject of %q: %v", tt.command, err)
			}
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		code, msg string
		permanent bool
	}{
		{"coded", codeErr{"not_found", "Volume/1 does not exist"}, "not_found", "Volume/1 does not exist", false},
		{"wrapped coded", fmt.Errorf("pdisk: %w", codeErr{"conflict", "in use"}), "conflict", "pdisk: in use", false},
		{"permanent coded", Permanent(codeErr{"forbidden", "not yours"}), "forbidden", "not yours", true},
		{"uncoded", errors.New("open /etc/secret: denied"), "internal", errorMessage(errors.New("")), false},
		{"deadline", fmt.Errorf("clone: %w", context.DeadlineExceeded), "timeout", errorMessage(context.DeadlineExceeded), false},
		{"unavailable", fmt.Errorf("x: %w", ErrUnavailable), "unavailable", ErrUnavailable.(*codedError).msg, false},
		{"query error", &QueryError{code: "quota_exceeded", message: "1 TiB max"}, "quota_exceeded", "1 TiB max", false},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.code {
			t.Errorf("%s: code %q, want %q", tt.name, got, tt.code)
		}
		if got := errorMessage(tt.err); got != tt.msg {
			t.Errorf("%s: message %q, want %q", tt.name, got, tt.msg)
		}
		if IsPermanent(tt.err) != tt.permanent {
			t.Errorf("%s: IsPermanent = %v", tt.name, !tt.permanent)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if errors.Is(&QueryError{code: "not_found"}, ErrUnavailable) || !errors.Is(&QueryError{code: "unavailable"}, ErrUnavailable) {
		t.Error("QueryError matches ErrUnavailable by code only")
	}
	if errors.Is(codeErr{"unavailable", "x"}, ErrUnavailable) {
		t.Error("a foreign error matches ErrUnavailable")
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := []time.Duration{1, 2, 3}
	for n, want := range map[int]time.Duration{0: 1, 1: 1, 2: 2, 3: 3, 4: 3, 100: 3} {
		if got := backoffDelay(b, n); got != want {
			t.Errorf("delivery %d: %v, want %v", n, got, want)
		}
	}
}

func TestActorHeader(t *testing.T) {
	t.Parallel()
	for _, a := range []*commonv1.Actor{nil, {}, {User: "alice"}, {User: "bob", Roles: []string{"::ADMIN", `we"ird`}}} {
		s := encodeActor(a)
		got, err := decodeActor(s)
		if err != nil {
			t.Fatalf("%v: %v", a, err)
		}
		if got.GetUser() != a.GetUser() || fmt.Sprint(got.GetRoles()) != fmt.Sprint(a.GetRoles()) {
			t.Errorf("round trip of %v gave %v (header %q)", a, got, s)
		}
	}
	if encodeActor(&commonv1.Actor{User: "alice", Roles: []string{"r"}}) != `{"user":"alice","roles":["r"]}` {
		t.Error("actor header is not compact JSON")
	}
}

func TestCheckPubAck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ack     string
		ok, dup bool
	}{
		{`{"stream":"EVENTS","seq":12}`, true, false},
		{`{"stream":"EVENTS","seq":12,"duplicate":true}`, true, true},
		{`{"stream":"EVENTS","domain":"hub","seq":3}`, true, false},
		{`{"seq":3,"stream":"EVENTS"}`, true, false},
		{`{"seq":3,"duplicate":true,"stream":"EVENTS"}`, true, true},
		{`{"stream":"EVENTS","seq":12,"duplicate": true}`, true, true},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"EVENTS","seq":0}`, false, false},
		{`{"stream":"EVENTS","seq":0,"error":{"code":400,"description":"bad"}}`, false, false},
		{`{}`, false, false},
		{`not json`, false, false},
	}
	for _, tt := range tests {
		dup, err := checkPubAck([]byte(tt.ack))
		if (err == nil) != tt.ok || dup != tt.dup {
			t.Errorf("checkPubAck(%s) = %v, %v, want ok=%v duplicate=%v", tt.ack, dup, err, tt.ok, tt.dup)
		}
		if err != nil && errorCode(err) != "unavailable" {
			t.Errorf("checkPubAck(%s): code %q", tt.ack, errorCode(err))
		}
	}
}
