package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/sdk"
)

func (a *app) loginCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Open a session on the cloud",
		Long: `login sends your username and password (or, without a username, your
certificate) once and keeps the session token it gets in
$HOME/.stratuslab/sessions.json, readable only by you. Later commands use the
token instead of your password until it expires or you log out. When no
password is configured and standard input is a terminal, login asks for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := a.config()
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			user, pass := s.Get(config.Username), s.Get(config.Password)
			if user != "" {
				a.auth = "password"
			}
			if user != "" && pass == "" && a.env.terminal() {
				pw, err := a.prompt(fmt.Sprintf("Password for %s: ", user))
				if err != nil {
					return err
				}
				pass = string(pw)
			}
			if user == "" && a.auth != "certificate" {
				return fmt.Errorf("no username configured: set username in %s or give -u", s.Where())
			}
			sess, err := c.Login(ctx, user, pass)
			if err != nil {
				return err
			}
			saved := savedSession{Identity: sess.Identity, Roles: sess.Roles, Expires: sess.Expires, Token: sess.Token}
			if err := storeSession(a.env.home, c.Endpoint(), &saved); err != nil {
				return err
			}
			out := saved
			out.Token = ""
			return a.output(out, func(w io.Writer) {
				if a.quiet {
					return
				}
				fmt.Fprintf(w, "Logged in to %s as %s%s%s.\n", c.Endpoint(), sess.Identity, roles(sess.Roles), until(sess.Expires))
			})
		},
	}
}

func roles(r []string) string {
	if len(r) == 0 {
		return ""
	}
	return " (" + strings.Join(r, ", ") + ")"
}

func until(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " until " + t.Local().Format("2006-01-02 15:04 MST")
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End your session on the cloud",
		Long:  `logout ends the session opened by login, on the cloud and in $HOME/.stratuslab/sessions.json.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			if a.auth != "session" {
				return a.output(map[string]bool{"loggedOut": false}, func(w io.Writer) {
					if !a.quiet {
						fmt.Fprintf(w, "You have no session on %s.\n", c.Endpoint())
					}
				})
			}
			err = c.Logout(ctx)
			// The local copy goes even if the cloud has forgotten the session.
			if serr := storeSession(a.env.home, c.Endpoint(), nil); serr != nil {
				return serr
			}
			if err != nil && !sdk.IsCode(err, "unauthorized") {
				return err
			}
			return a.output(map[string]bool{"loggedOut": true}, func(w io.Writer) {
				if !a.quiet {
					fmt.Fprintf(w, "Logged out of %s.\n", c.Endpoint())
				}
			})
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the cloud takes you for",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			who, err := c.Authn(ctx)
			if err != nil {
				return err
			}
			return a.output(who, func(w io.Writer) {
				if a.quiet {
					fmt.Fprintln(w, who.Identity)
					return
				}
				fmt.Fprintf(w, "%s%s by %s%s\n", who.Identity, roles(who.Roles), who.Method, until(who.Expires))
			})
		},
	}
}
