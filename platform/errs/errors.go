package errs

import (
	"context"
	"errors"
	"fmt"
)

// Error is a failure with a registered code and a message for people. It
// wraps an optional cause, visible to errors.Is and errors.As but kept out of
// Message, because causes often hold internal detail (addresses, paths) that
// belongs in logs rather than in answers to users.
type Error struct {
	code  Code
	msg   string // for people; empty means the code's description
	cause error
	text  string // what Error returns
}

// New returns an error with code c and message msg. An empty msg stands for
// the code's default description.
func New(c Code, msg string) error {
	e := &Error{code: c, msg: msg, text: msg}
	if msg == "" {
		e.text = c.Description()
	}
	return e
}

// Wrap returns an error with code c and message msg whose cause is err, or
// nil when err is nil so that `return errs.Wrap(errs.Unavailable, err, "...")`
// can follow a call directly.
func Wrap(c Code, err error, msg string) error {
	if err == nil {
		return nil
	}
	e := &Error{code: c, msg: msg, cause: err, text: err.Error()}
	if msg != "" {
		e.text = msg + ": " + err.Error()
	}
	return e
}

// Errorf returns an error with code c whose message is formatted as
// fmt.Errorf does; %w verbs wrap their operands. The formatted text is the
// message shown to people, so prefer Wrap when a cause holds internal detail.
func Errorf(c Code, format string, args ...any) error {
	fe := fmt.Errorf(format, args...)
	e := &Error{code: c, msg: fe.Error(), text: fe.Error()}
	switch u := fe.(type) {
	case interface{ Unwrap() error }:
		e.cause = u.Unwrap()
	case interface{ Unwrap() []error }:
		e.cause = fe
	}
	return e
}

// Error returns the message followed by the cause, for logs.
func (e *Error) Error() string { return e.text }

// Code returns the error's code as a plain string, so that packages can read
// it through an interface{ Code() string } without importing errs.
func (e *Error) Code() string { return string(e.code) }

// Message returns the text meant for people: the message given when the
// error was made, or the code's description.
func (e *Error) Message() string {
	if e.msg == "" {
		return e.code.Description()
	}
	return e.msg
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code and neither
// message nor cause, so that errors.Is(err, errs.New(errs.NotFound, ""))
// matches a not_found error anywhere in a chain.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.code == e.code && t.msg == "" && t.cause == nil
}

// coder is what CodeOf looks for, so that error types of other packages can
// carry a code without importing errs.
type coder interface{ Code() string }

// messager is what MessageOf looks for.
type messager interface{ Message() string }

// CodeOf returns the code of the outermost coded error in err's chain. An
// error without one is Timeout when it wraps context.DeadlineExceeded and
// Internal otherwise; a nil error has no code ("").
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var c coder
	if errors.As(err, &c) && c.Code() != "" {
		return Code(c.Code())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	return Internal
}

// MessageOf returns the message for people of the outermost error in err's
// chain that has one, or the description of CodeOf(err). The text of an
// uncoded error is never returned: it may hold internal detail.
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	var m messager
	if errors.As(err, &m) && m.Message() != "" {
		return m.Message()
	}
	return CodeOf(err).Description()
}
