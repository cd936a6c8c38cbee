// Command stratus is the StratusLab command-line client. Each command runs
// as a subcommand (stratus describe-instance) or under its classic name
// through a link (stratus-describe-instance), with the configuration of
// $HOME/.stratuslab/stratuslab-user.cfg, STRATUSLAB_* variables and options.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"golang.org/x/term"
)

// version is the client's version, shown by --version.
const version = "0.1.0"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// env is the outside world of one run, passed in so that tests run many
// commands at once without touching the process's environment.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	home     string
	terminal func() bool // whether stdin is a terminal to prompt on
	// readPassword reads a line without echo from the terminal.
	readPassword func() ([]byte, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	home, _ := os.UserHomeDir()
	fd := int(os.Stdin.Fd())
	e := env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv:       os.Getenv,
		home:         home,
		terminal:     func() bool { return term.IsTerminal(fd) },
		readPassword: func() ([]byte, error) { return term.ReadPassword(fd) },
	}
	os.Exit(run(ctx, os.Args, e))
}

// usageError is a command line that cannot be run as written: exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// run runs the command line args (args[0] is the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, e env) int {
	args = classic(args)
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "--version" {
			fmt.Fprintln(e.stdout, "stratus", version)
			return exitOK
		}
	}
	a := &app{env: e}
	root := a.newRoot()
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var u usageError
	if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(e.stderr, "stratus: %v\nRun 'stratus --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "stratus: %s\n", a.explain(err))
	return exitError
}

// classic turns "stratus-describe-instance ARGS" (a link named after the
// command) into "stratus describe-instance ARGS".
func classic(args []string) []string {
	if len(args) == 0 {
		return []string{"stratus"}
	}
	name := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
	if sub, ok := strings.CutPrefix(name, "stratus-"); ok && sub != "" {
		return append([]string{"stratus", sub}, args[1:]...)
	}
	return args
}
