package bus

import (
	"context"
	"errors"

	"stratuslab.dev/platform/errs"
)

// Stable error codes this package produces itself. They are the codes of the
// platform error registry (platform/errs), spelled out here so that the bus
// does not depend on it.
const (
	codeInvalid     = "invalid"
	codeUnavailable = "unavailable"
	codeTimeout     = "timeout"
	codeInternal    = "internal"
	codeTooLarge    = "too_large"
)

// ErrUnavailable is returned (wrapped) by Request when no service instance
// answers on the subject, and by Send and Publish when the stream does not
// answer. Its code is "unavailable": retry later.
var ErrUnavailable error = &codedError{code: codeUnavailable, msg: "The service needed for this request is not running or not reachable: retry later."}

// codedError is a failure with a stable code, a message for people and an
// optional cause kept out of the message.
type codedError struct {
	code  string
	msg   string
	cause error
}

func (e *codedError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

// Code returns the stable error code.
func (e *codedError) Code() string { return e.code }

// Message returns the text meant for people.
func (e *codedError) Message() string { return e.msg }

func (e *codedError) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrUnavailable) hold for every unavailable error,
// whatever its message or cause.
func (e *codedError) Is(target error) bool {
	t, ok := target.(*codedError)
	return ok && t == ErrUnavailable && e.code == codeUnavailable
}

// QueryError is the error a query endpoint answered with, as Request returns
// it: the stable code and the message the service chose for people.
type QueryError struct {
	code    string
	message string
}

// Error returns "code: message".
func (e *QueryError) Error() string { return e.code + ": " + e.message }

// Code returns the stable error code the service answered with.
func (e *QueryError) Code() string { return e.code }

// Message returns the message the service answered with.
func (e *QueryError) Message() string { return e.message }

// Is makes errors.Is(err, ErrUnavailable) hold for an "unavailable" answer,
// such as the one of a service that is stopping.
func (e *QueryError) Is(target error) bool {
	return target == ErrUnavailable && e.code == codeUnavailable
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: a command handler returning it
// gets its command failed at once (a …_failed event carrying err's code and
// message, then the message is terminated) instead of redelivered. Use it for
// bad input, missing resources, refused permissions. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// errorCode returns the stable code of err: the code of the outermost error
// in its chain implementing interface{ Code() string }, "timeout" for a
// deadline, "internal" otherwise.
func errorCode(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) && c.Code() != "" {
		return c.Code()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codeTimeout
	}
	return codeInternal
}

// errorMessage returns the text of err meant for people: Message() of the
// outermost error having one, the text of a coded error, or a generic
// sentence for uncoded errors, whose text may hold internal detail that
// belongs in logs only.
func errorMessage(err error) string {
	var m interface{ Message() string }
	if errors.As(err, &m) && m.Message() != "" {
		return m.Message()
	}
	var c interface{ Code() string }
	if errors.As(err, &c) && c.Code() != "" {
		return err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "The operation did not complete in time: retry later."
	}
	return "An internal error occurred: the administrators can find details in the logs."
}

// Transient reports whether err is worth another delivery: its code says
// the failure may pass (unavailable, timeout) or is unexplained
// (internal, or no code at all).
func Transient(err error) bool {
	switch errs.CodeOf(err) {
	case errs.Internal, errs.Unavailable, errs.Timeout:
		return true
	}
	return false
}

// Settle marks a handler's error permanent unless it is Transient, so
// that refusals (bad input, rights, conflicts) fail the command at once
// with their code and everything else is retried.
func Settle(err error) error {
	if err == nil || IsPermanent(err) || Transient(err) {
		return err
	}
	return Permanent(err)
}
