package errs_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// foreignError carries a code without importing errs, as another package's
// error type would.
type foreignError struct{ code string }

func (f foreignError) Error() string { return "foreign " + f.code }
func (f foreignError) Code() string  { return f.code }

func TestErrors(t *testing.T) {
	t.Parallel()
	cause := fs.ErrNotExist
	tests := []struct {
		name    string
		err     error
		code    errs.Code
		status  int
		message string
		text    string
		is      error // errors.Is(err, is) must hold when set
	}{
		{
			name: "new", err: errs.New(errs.NotFound, "Volume/1 not found"),
			code: errs.NotFound, status: 404, message: "Volume/1 not found", text: "Volume/1 not found",
		},
		{
			name: "new without message", err: errs.New(errs.Forbidden, ""),
			code: errs.Forbidden, status: 403,
			message: errs.Forbidden.Description(), text: errs.Forbidden.Description(),
		},
		{
			name: "wrap keeps cause out of message", err: errs.Wrap(errs.Unavailable, cause, "store unreachable"),
			code: errs.Unavailable, status: 503, message: "store unreachable",
			text: "store unreachable: file does not exist", is: fs.ErrNotExist,
		},
		{
			name: "wrap without message", err: errs.Wrap(errs.Conflict, cause, ""),
			code: errs.Conflict, status: 409, message: errs.Conflict.Description(),
			text: "file does not exist", is: fs.ErrNotExist,
		},
		{
			name: "errorf with %w", err: errs.Errorf(errs.Invalid, "size %d: %w", 2048, cause),
			code: errs.Invalid, status: 400, message: "size 2048: file does not exist",
			text: "size 2048: file does not exist", is: fs.ErrNotExist,
		},
		{
			name: "errorf with two %w", err: errs.Errorf(errs.Timeout, "%w and %w", cause, context.DeadlineExceeded),
			code: errs.Timeout, status: 504, message: "file does not exist and context deadline exceeded",
			text: "file does not exist and context deadline exceeded", is: context.DeadlineExceeded,
		},
		{
			name: "errorf without %w", err: errs.Errorf(errs.TooLarge, "body over %d bytes", 10),
			code: errs.TooLarge, status: 413, message: "body over 10 bytes", text: "body over 10 bytes",
		},
		{
			name: "fmt wrapping a coded error", err: fmt.Errorf("pdisk: %w", errs.New(errs.QuotaExceeded, "1 TiB max")),
			code: errs.QuotaExceeded, status: 403, message: "1 TiB max", text: "pdisk: 1 TiB max",
			is: errs.New(errs.QuotaExceeded, ""),
		},
		{
			name: "outermost code wins", err: errs.Wrap(errs.Invalid, errs.New(errs.NotFound, "no image"), "bad template"),
			code: errs.Invalid, status: 400, message: "bad template", text: "bad template: no image",
			is: errs.New(errs.NotFound, ""),
		},
		{
			name: "uncoded error is internal", err: errors.New("dial tcp 10.0.0.1: refused"),
			code: errs.Internal, status: 500, message: errs.Internal.Description(), text: "dial tcp 10.0.0.1: refused",
		},
		{
			name: "uncoded deadline is timeout", err: fmt.Errorf("query: %w", context.DeadlineExceeded),
			code: errs.Timeout, status: 504, message: errs.Timeout.Description(), text: "query: context deadline exceeded",
		},
		{
			name: "foreign coder", err: fmt.Errorf("x: %w", foreignError{"bad_filter"}),
			code: errs.BadFilter, status: 400, message: errs.BadFilter.Description(), text: "x: foreign bad_filter",
		},
		{
			name: "unknown code", err: errs.New("brand_new", "from a newer peer"),
			code: "brand_new", status: 500, message: "from a newer peer", text: "from a newer peer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errs.CodeOf(tt.err); got != tt.code {
				t.Errorf("CodeOf = %q, want %q", got, tt.code)
			}
			if got := errs.HTTPStatus(errs.CodeOf(tt.err)); got != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", got, tt.status)
			}
			if got := errs.MessageOf(tt.err); got != tt.message {
				t.Errorf("MessageOf = %q, want %q", got, tt.message)
			}
			if got := tt.err.Error(); got != tt.text {
				t.Errorf("Error() = %q, want %q", got, tt.text)
			}
			if tt.is != nil && !errors.Is(tt.err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
		})
	}
}

func TestIsMatchesCodeTemplatesOnly(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("ctx: %w", errs.New(errs.NotFound, "Volume/1"))
	tests := []struct {
		target error
		want   bool
	}{
		{errs.New(errs.NotFound, ""), true},
		{errs.New(errs.Conflict, ""), false},
		{errs.New(errs.NotFound, "Volume/2"), false}, // a message makes it a value, not a template
		{errs.Wrap(errs.NotFound, fs.ErrNotExist, ""), false},
	}
	for _, tt := range tests {
		if got := errors.Is(err, tt.target); got != tt.want {
			t.Errorf("errors.Is(err, %v) = %v, want %v", tt.target, got, tt.want)
		}
	}
}

func TestAsAndAccessors(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("handler: %w", errs.Wrap(errs.Unavailable, fs.ErrClosed, "bus down"))
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatal("errors.As did not find *errs.Error")
	}
	if e.Code() != "unavailable" || e.Message() != "bus down" || !errors.Is(e.Unwrap(), fs.ErrClosed) {
		t.Errorf("got code %q message %q cause %v", e.Code(), e.Message(), e.Unwrap())
	}
	var c interface{ Code() string }
	if !errors.As(err, &c) || c.Code() != "unavailable" {
		t.Errorf("a Code() string interface does not see the code")
	}
}

func TestNil(t *testing.T) {
	t.Parallel()
	if err := errs.Wrap(errs.Internal, nil, "x"); err != nil {
		t.Errorf("Wrap(nil) = %v, want nil", err)
	}
	if c := errs.CodeOf(nil); c != "" {
		t.Errorf("CodeOf(nil) = %q, want empty", c)
	}
	if m := errs.MessageOf(nil); m != "" {
		t.Errorf("MessageOf(nil) = %q, want empty", m)
	}
	if p := errs.ToProto(nil); p != nil {
		t.Errorf("ToProto(nil) = %v, want nil", p)
	}
	if err := errs.FromProto(nil); err != nil {
		t.Errorf("FromProto(nil) = %v, want nil", err)
	}
}

func TestProto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want *commonv1.Error
	}{
		{"coded", errs.New(errs.NotFound, "Volume/1 not found"), &commonv1.Error{Code: "not_found", Message: "Volume/1 not found"}},
		{"wrapped cause stays private", errs.Wrap(errs.Unavailable, errors.New("10.0.0.1 refused"), "store down"),
			&commonv1.Error{Code: "unavailable", Message: "store down"}},
		{"uncoded", errors.New("secret path /root/x"), &commonv1.Error{Code: "internal", Message: errs.Internal.Description()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := errs.ToProto(tt.err)
			if !proto.Equal(got, tt.want) {
				t.Fatalf("ToProto = %v, want %v", got, tt.want)
			}
			back := errs.FromProto(got)
			if errs.CodeOf(back) != errs.Code(tt.want.Code) || errs.MessageOf(back) != tt.want.Message {
				t.Errorf("FromProto(ToProto) = %q %q, want %q %q", errs.CodeOf(back), errs.MessageOf(back), tt.want.Code, tt.want.Message)
			}
		})
	}
	if c := errs.CodeOf(errs.FromProto(&commonv1.Error{Message: "no code"})); c != errs.Internal {
		t.Errorf("FromProto without code: code %q, want internal", c)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	seen := map[errs.Code]bool{}
	for _, in := range errs.Registry() {
		if seen[in.Code] {
			t.Errorf("code %q registered twice", in.Code)
		}
		seen[in.Code] = true
		if in.HTTPStatus < 400 || in.HTTPStatus > 599 || http.StatusText(in.HTTPStatus) == "" {
			t.Errorf("code %q: status %d is not an HTTP error status", in.Code, in.HTTPStatus)
		}
		if in.Description == "" {
			t.Errorf("code %q has no description", in.Code)
		}
		if got, ok := errs.Lookup(in.Code); !ok || got != in {
			t.Errorf("Lookup(%q) = %v, %v", in.Code, got, ok)
		}
	}
	for _, c := range []errs.Code{errs.Invalid, errs.BadFilter, errs.Unauthorized, errs.Forbidden, errs.NotFound,
		errs.Conflict, errs.RevisionConflict, errs.TooLarge, errs.UnsupportedMediaType, errs.QuotaExceeded,
		errs.Unavailable, errs.Timeout, errs.Internal} {
		if !seen[c] {
			t.Errorf("constant %q is not in the registry", c)
		}
	}
	if errs.HTTPStatus("no_such_code") != 500 {
		t.Errorf("unknown code should map to 500")
	}
	r := errs.Registry()
	r[0].HTTPStatus = 999
	if errs.HTTPStatus(r[0].Code) == 999 {
		t.Errorf("Registry returned the table itself, not a copy")
	}
}
