// Package tooltest scripts a tool.Runner for tests of the command lines a
// storage backend builds: each test lists the commands the backend must run,
// in order, with the tools' answers, and nothing is run. Such a test shows
// what a backend asks of its tools and how it reads their answers, never
// that the tools do what is asked; that is the contract suite's business.
package tooltest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend/tool"
)

// Step is one command the backend must run next, as normalized by Script's
// normalize function, and the tool's answer: its standard output, or Err.
type Step struct {
	Cmd string
	Out string
	Err error
}

var (
	tempPrefixRE = regexp.MustCompile(`pdisk-tmp-[0-9]+-[0-9a-f]{8}-`)
	tempNameRE   = regexp.MustCompile(`pdisk-tmp-[0-9]+-[0-9a-f]{8}-[0-9a-f-]{36}`)
)

// NormalizeTemp replaces the time and random part of every temporary name
// (tool.TempName) in a command line: pdisk-tmp-<unix>-<hex>-<id> becomes
// pdisk-tmp-T-<id>.
func NormalizeTemp(cmd string) string {
	return tempPrefixRE.ReplaceAllString(cmd, "pdisk-tmp-T-")
}

// Script returns a Runner that expects exactly steps, in order, comparing
// each command line (program and arguments joined by spaces) after
// normalize, and fails t when a command differs, comes unexpected, or an
// expected one never comes. In an answer, a normalized temporary name
// (pdisk-tmp-T-<id>) stands for the real name the backend used for it in an
// earlier command, so that answers can describe what the backend made.
func Script(t testing.TB, normalize func(string) string, steps ...Step) *tool.Recorder {
	t.Helper()
	var mu sync.Mutex
	next := 0
	real := map[string]string{}
	r := &tool.Recorder{Answer: func(argv []string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		line := strings.Join(argv, " ")
		for _, name := range tempNameRE.FindAllString(line, -1) {
			real[NormalizeTemp(name)] = name
		}
		got := normalize(line)
		if next >= len(steps) {
			t.Errorf("unexpected command %d: %s", next+1, got)
			return nil, &tool.Error{Program: argv[0], Args: argv[1:], Status: 99, Err: errUnexpected}
		}
		s := steps[next]
		next++
		if got != s.Cmd {
			t.Errorf("command %d:\n got %s\nwant %s", next, got, s.Cmd)
		}
		out := s.Out
		for norm, name := range real {
			out = strings.ReplaceAll(out, norm, name)
		}
		return []byte(out), s.Err
	}}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if next != len(steps) {
			t.Errorf("ran %d of the %d expected commands", next, len(steps))
		}
	})
	return r
}

var errUnexpected = errors.New("the script expected no more commands")

// Failure returns what a Runner returns for a program that exited with
// status and wrote stderr.
func Failure(program string, status int, stderr string) error {
	return &tool.Error{Program: program, Status: status, Stderr: stderr, Err: fmt.Errorf("exit status %d", status)}
}

// Check fails t unless err has code (none when code is "") and, when err is
// nil and want is not, got deeply equals want: the verdict on one scripted
// call of a backend method.
func Check(t testing.TB, got any, err error, want any, code errs.Code) {
	t.Helper()
	if c := errs.CodeOf(err); c != code {
		t.Fatalf("error %v (code %q), want code %q", err, c, code)
	}
	if err == nil && want != nil && !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
