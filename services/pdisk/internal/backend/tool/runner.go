package tool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs one program with its arguments and returns what it wrote to
// standard output. A failure is an *Error, whose Err is the context's error
// when the context ended the program.
type Runner interface {
	Run(ctx context.Context, program string, args ...string) ([]byte, error)
}

// Exec is the Runner that starts real processes, found on PATH, with
// standard input closed so that a tool that asks a question reads "no".
type Exec struct{}

// stopGrace is how long a program has to exit after SIGTERM when its
// context ends, before it is killed.
const stopGrace = 10 * time.Second

// Run runs program. When ctx ends, the program gets SIGTERM rather than
// SIGKILL, which a tool can hold off while it commits metadata (lvm2 blocks
// signals around its metadata writes); it is killed stopGrace later.
func (Exec) Run(ctx context.Context, program string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	e := &Error{Program: program, Args: args, Status: -1, Stderr: tail(stderr.String()), Err: err}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		e.Status = exit.ExitCode()
	}
	if ctx.Err() != nil {
		e.Err = ctx.Err()
	}
	return nil, e
}

// Error is a program that failed: it could not start, exited with a
// non-zero status, or was stopped.
type Error struct {
	Program string
	Args    []string
	// Status is the exit status, or -1 when the program did not exit on
	// its own.
	Status int
	// Stderr is the end of what the program wrote to standard error.
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Program, strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns the cause, so that errors.Is finds context.Canceled.
func (e *Error) Unwrap() error { return e.Err }

// Status returns the exit status of the program that failed with err, or -1
// when err is not an *Error or the program did not exit on its own.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return -1
}

// maxStderr bounds the standard error kept in an Error: the end, where
// tools say what went wrong, after any progress or log lines.
const maxStderr = 2000

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxStderr {
		s = "…" + s[len(s)-maxStderr:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// Recorder is a Runner for tests of command construction and output
// parsing: it records every command line and answers from Answer, running
// nothing. It proves what a backend asks of a tool, not what the tool does.
type Recorder struct {
	// Answer returns the output or error for one command line (the program
	// first); nil answers every command with no output and success.
	Answer func(argv []string) ([]byte, error)

	mu    sync.Mutex
	calls [][]string
}

// Run records the command line and returns Answer's reply.
func (r *Recorder) Run(_ context.Context, program string, args ...string) ([]byte, error) {
	argv := append([]string{program}, args...)
	r.mu.Lock()
	r.calls = append(r.calls, argv)
	r.mu.Unlock()
	if r.Answer == nil {
		return nil, nil
	}
	return r.Answer(argv)
}

// Calls returns the command lines run so far, in order.
func (r *Recorder) Calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.calls...)
}
