package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"stratuslab.dev/client/internal/config"
)

func (a *app) copyConfigCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "copy-config",
		Short: "Copy the reference configuration file into place",
		Long: `copy-config writes the commented reference configuration to
$HOME/.stratuslab/stratuslab-user.cfg (or $STRATUSLAB_USER_CONFIG), readable
only by you. Edit it to set at least endpoint, username and password. An
existing file is kept unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := a.env.getenv(config.FileEnv)
			if path == "" {
				path = config.Path(a.env.home)
			}
			if err := writeReference(path, force); err != nil {
				return err
			}
			return a.output(map[string]string{"path": path}, func(w io.Writer) {
				if !a.quiet {
					fmt.Fprintf(w, "Wrote %s.\nEdit it to set endpoint, username and password.\n", path)
				}
			})
		},
	}
	c.Flags().BoolVar(&force, "force", false, "replace an existing file (your edits are lost)")
	return c
}

func writeReference(path string, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("cannot create the configuration directory: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists already: edit it, or give --force to replace it with the reference file (your edits would be lost)", path)
	}
	if err != nil {
		return fmt.Errorf("cannot write the configuration file: %w", err)
	}
	if _, err := io.WriteString(f, config.Reference()); err != nil {
		f.Close()
		return fmt.Errorf("cannot write the configuration file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write the configuration file: %w", err)
	}
	// A file replaced with --force may have been readable by others.
	return os.Chmod(path, 0o600)
}

// hashCost is the bcrypt cost of hash-password, the cloud's own.
const hashCost = 12

func (a *app) hashPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Hash a password to give to the cloud administrator",
		Long: `hash-password asks for a password twice, without showing it, and prints
its bcrypt hash. Give the hash, never the password, to the administrator of
the cloud. When standard input is not a terminal, the password is its first
line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := a.readNewPassword()
			if err != nil {
				return err
			}
			hash, err := bcrypt.GenerateFromPassword(pw, hashCost)
			if err != nil {
				return fmt.Errorf("cannot hash this password: %w", err)
			}
			return a.output(map[string]string{"hash": string(hash)}, func(w io.Writer) {
				fmt.Fprintln(w, string(hash))
			})
		},
	}
}

// readNewPassword prompts twice on a terminal, or reads one line.
func (a *app) readNewPassword() ([]byte, error) {
	if !a.env.terminal() {
		line, err := bufio.NewReader(a.env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("cannot read the password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return nil, errors.New("no password given on standard input")
		}
		return []byte(pw), nil
	}
	first, err := a.prompt("Password: ")
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, errors.New("the password is empty")
	}
	again, err := a.prompt("Password (again): ")
	if err != nil {
		return nil, err
	}
	if string(first) != string(again) {
		return nil, errors.New("the two passwords differ; nothing was hashed")
	}
	return first, nil
}

func (a *app) prompt(label string) ([]byte, error) {
	fmt.Fprint(a.env.stderr, label)
	pw, err := a.env.readPassword()
	fmt.Fprintln(a.env.stderr)
	if err != nil {
		return nil, fmt.Errorf("cannot read the password: %w", err)
	}
	return pw, nil
}

func (a *app) linksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "links DIR",
		Short: "Create the classic stratus-* command names as links in DIR",
		Long: `links creates, in DIR, one symbolic link per command to this program:
stratus-copy-config, stratus-login, ... Each runs the command of its name,
as the original StratusLab client's commands did.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cannot find this program: %w", err)
			}
			var made []string
			for _, c := range a.cmd.Commands() {
				if c.Hidden || c.Name() == "help" || c.Name() == "completion" || c.Name() == "links" {
					continue
				}
				link := filepath.Join(args[0], "stratus-"+c.Name())
				if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("cannot replace %s: %w", link, err)
				}
				if err := os.Symlink(self, link); err != nil {
					return fmt.Errorf("cannot create the link: %w", err)
				}
				made = append(made, link)
			}
			return a.output(made, func(w io.Writer) {
				if !a.quiet {
					fmt.Fprintf(w, "Created %d links in %s.\n", len(made), args[0])
				}
			})
		},
	}
}
