package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/sdk"
)

// app holds what every command shares: the outside world, the global
// options and, once read, the settings and the cloud client.
type app struct {
	env env

	cmd      *cobra.Command     // the root command
	keys     map[string]*string // config key → its option's value
	insecure bool
	section  string
	verbose  int
	quiet    bool
	json     bool

	settings   *config.Settings
	auth       string // how the client authenticates: password, session, certificate or ""
	marketSite string // scheme://host of the Marketplace, once used

	warnedInsecure bool
}

// commands lists the constructors of every command. A new command is a
// file with its constructor, and one line here.
func (a *app) commands() []*cobra.Command {
	return []*cobra.Command{
		a.copyConfigCmd(),
		a.hashPasswordCmd(),
		a.cloudEntryPointCmd(),
		a.loginCmd(),
		a.logoutCmd(),
		a.whoamiCmd(),
		a.getCmd(),
		a.listCmd(),
		a.createCmd(),
		a.editCmd(),
		a.deleteCmd(),
		a.waitJobCmd(),
		a.createVolumeCmd(),
		a.describeVolumesCmd(),
		a.updateVolumeCmd(),
		a.deleteVolumeCmd(),
		a.runInstanceCmd(),
		a.describeInstanceCmd(),
		a.killInstanceCmd(),
		a.shutdownInstanceCmd(),
		a.connectInstanceCmd(),
		a.prepareContextCmd(),
		a.attachVolumeCmd(),
		a.detachVolumeCmd(),
		a.linksCmd(),
		a.buildMetadataCmd(),
		a.signMetadataCmd(),
		a.validateMetadataCmd(),
		a.uploadMetadataCmd(),
		a.deprecateMetadataCmd(),
		a.describeImagesCmd(),
		a.showImageCmd(),
		a.createImageCmd(),
	}
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "stratus",
		Short: "Use a StratusLab cloud from the command line",
		Long: `stratus uses a StratusLab cloud: its CIMI resources, your session, your
configuration. Each command also runs under its classic name through a link,
e.g. stratus-copy-config for stratus copy-config (see stratus links).

Settings come from the command line, then STRATUSLAB_* variables, then
$HOME/.stratuslab/stratuslab-user.cfg (run stratus copy-config to create it).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.env.stderr)
			_ = cmd.Usage()
			return usageError{errors.New("no command given")}
		},
	}
	root.SetIn(a.env.stdin)
	root.SetOut(a.env.stdout)
	root.SetErr(a.env.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.cmd = root

	pf := root.PersistentFlags()
	a.keys = map[string]*string{}
	for _, k := range config.Keys() {
		if k.Bool {
			pf.BoolVar(&a.insecure, k.Flag, false, k.Help+" (env "+k.Env+")")
			continue
		}
		v := new(string)
		a.keys[k.Name] = v
		pf.StringVarP(v, k.Flag, k.Short, "", k.Help+" (env "+k.Env+")")
	}
	pf.StringVarP(&a.section, config.SectionFlag, config.SectionShort, "", "section of the configuration file to use (env "+config.SectionEnv+")")
	pf.CountVarP(&a.verbose, "verbose", "v", "show requests (-v), headers (-vv) and bodies (-vvv); secrets are masked")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only essential output, such as ids")
	pf.BoolVar(&a.json, "json", false, "print machine-readable JSON (wins over -q)")
	root.Flags().Bool("version", false, "print the client's version")

	for _, c := range a.commands() {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
		root.AddCommand(c)
	}
	return root
}

// usageArgs marks wrong arguments as a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// config resolves the settings once.
func (a *app) config() (*config.Settings, error) {
	if a.settings != nil {
		return a.settings, nil
	}
	flags := map[string]string{}
	pf := a.cmd.PersistentFlags()
	for _, k := range config.Keys() {
		if !pf.Changed(k.Flag) {
			continue
		}
		if k.Bool {
			flags[k.Name] = fmt.Sprint(a.insecure)
		} else {
			flags[k.Name] = *a.keys[k.Name]
		}
	}
	s, err := config.Resolve(config.Inputs{Home: a.env.home, Getenv: a.env.getenv, Flags: flags, Section: a.section})
	if err != nil {
		return nil, err
	}
	a.settings = s
	return s, nil
}

// errNoEndpoint is explained by explain, which knows the file to edit.
var errNoEndpoint = errors.New("no endpoint configured")

// client builds the cloud client from the settings. Credentials: a saved
// session (stratus login) for this endpoint and user, else username and
// password, else a PKCS#12 or PEM certificate.
func (a *app) client(ctx context.Context) (*sdk.Client, error) {
	return a.clientAt(ctx, config.Endpoint)
}

// clientAt is client for the service at the endpoint set by key: the
// volume commands honour pdisk_endpoint, which defaults to endpoint.
func (a *app) clientAt(_ context.Context, key string) (*sdk.Client, error) {
	s, err := a.config()
	if err != nil {
		return nil, err
	}
	if s.Get(key) == "" {
		return nil, errNoEndpoint
	}
	return a.open(s, s.Get(key))
}

// marketplace returns the client of the Marketplace: marketplace_endpoint,
// else the endpoint's /marketplace. The cloud's password or session go
// with its requests only when it is on the endpoint's site (see
// sdk.Marketplace); with no endpoint configured, the Marketplace's site
// is the one the credentials are for.
func (a *app) marketplace(_ context.Context) (*sdk.Marketplace, error) {
	s, err := a.config()
	if err != nil {
		return nil, err
	}
	endpoint, mp := s.Get(config.Endpoint), s.Get(config.MarketplaceEndpoint)
	switch {
	case mp == "" && endpoint == "":
		return nil, errNoEndpoint
	case mp == "":
		mp = sdk.Normalize(endpoint) + "/marketplace"
	case endpoint == "":
		u, err := url.Parse(sdk.MarketplaceURL(mp))
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("marketplace_endpoint = %q (from %s) is not a URL", mp, s.Source(config.MarketplaceEndpoint))
		}
		endpoint = u.Scheme + "://" + u.Host
	}
	c, err := a.open(s, endpoint)
	if err != nil {
		return nil, err
	}
	m := c.Marketplace(mp)
	if u, err := url.Parse(m.URL()); err == nil {
		a.marketSite = u.Scheme + "://" + u.Host
	}
	return m, nil
}

// marketError explains a Marketplace that wants credentials it was not
// sent: those of the cloud go only to the cloud's own site.
func (a *app) marketError(mp *sdk.Marketplace, err error) error {
	var ce *sdk.Error
	if errors.As(err, &ce) && ce.Status == http.StatusUnauthorized && !mp.SendsCredentials() {
		return fmt.Errorf("the Marketplace %s wants credentials (401: %s); stratus sends your cloud password or session only to the cloud's own site, so use that site's Marketplace or log in to this one's cloud", mp.URL(), ce.Message)
	}
	return err
}

// open builds the client of endpoint with the settings' credentials and
// connection options.
func (a *app) open(s *config.Settings, endpoint string) (*sdk.Client, error) {
	insecure, err := s.Bool(config.Insecure)
	if err != nil {
		return nil, err
	}
	timeout, err := s.Timeout()
	if err != nil {
		return nil, err
	}
	opts := []sdk.Option{sdk.WithTimeout(timeout), sdk.WithUserAgent("stratus/" + version)}
	if insecure && !a.warnedInsecure {
		a.warnedInsecure = true
		fmt.Fprintf(a.env.stderr, "stratus: warning: insecure is set (by %s): the cloud's certificate is not checked, so anyone on the network path could read your credentials; use it only with a test cloud\n", s.Source(config.Insecure))
	}
	if insecure {
		opts = append(opts, sdk.WithInsecure(true))
	}
	if ca := s.Get(config.CAFile); ca != "" {
		opts = append(opts, sdk.WithCAFile(ca))
	}
	if a.verbose > 0 {
		opts = append(opts, sdk.WithTrace(a.env.stderr, a.verbose))
	}
	endpoint = sdk.Normalize(endpoint)
	user, pass := s.Get(config.Username), s.Get(config.Password)
	saved, _ := loadSession(a.env.home, endpoint)
	switch {
	case saved != nil && (user == "" || user == saved.Identity):
		a.auth = "session"
		opts = append(opts, sdk.WithToken(saved.Token))
	case user != "":
		a.auth = "password"
		opts = append(opts, sdk.WithBasicAuth(user, pass))
	case s.Get(config.P12Certificate) != "":
		a.auth = "certificate"
		opts = append(opts, sdk.WithPKCS12(s.Get(config.P12Certificate), s.Get(config.P12Password)))
	case s.Get(config.PemCertificate) != "":
		a.auth = "certificate"
		opts = append(opts, sdk.WithCertificate(s.Get(config.PemCertificate), s.Get(config.PemKey)))
	}
	return sdk.Open(endpoint, opts...)
}

// explain turns an error into a message for a person, naming the setting
// to fix and where it was set.
func (a *app) explain(err error) string {
	s := a.settings
	var ne *sdk.NetError
	var ce *sdk.Error
	switch {
	case errors.Is(err, errNoEndpoint) && s != nil:
		return fmt.Sprintf("no endpoint configured: run stratus copy-config and edit %s, or give --endpoint", s.Path)
	case errors.As(err, &ne) && s != nil && ne.Endpoint == a.marketSite && s.Get(config.MarketplaceEndpoint) != "":
		return fmt.Sprintf("%v — check marketplace_endpoint in %s", err, s.Source(config.MarketplaceEndpoint))
	case errors.As(err, &ne) && s != nil:
		return fmt.Sprintf("%v — check the endpoint in %s", err, s.Source(config.Endpoint))
	case errors.As(err, &ce) && ce.Status == http.StatusUnauthorized && s != nil:
		switch a.auth {
		case "session":
			return "the cloud refused your session (401): it has ended; run stratus login again, or stratus logout to use your password"
		case "certificate":
			return fmt.Sprintf("the cloud refused your certificate (401): check pem_certificate/p12_certificate in %s", s.Where())
		case "":
			return fmt.Sprintf("the cloud wants credentials (401): set username and password in %s, or run stratus login", s.Where())
		}
		// The password is the likelier culprit; name where it was set.
		key := config.Password
		if s.Get(config.Password) == "" {
			key = config.Username
		}
		return fmt.Sprintf("the cloud refused your credentials (401): check username/password in %s", where(s, key))
	case errors.As(err, &ce) && ce.Status == http.StatusForbidden:
		return fmt.Sprintf("the cloud does not let you do this (403): %s", ce.Message)
	case errors.As(err, &ce):
		return fmt.Sprintf("%s (%d %s)", ce.Message, ce.Status, ce.Code)
	}
	return err.Error()
}

// where says where a key was set, as a file and section when it was.
func where(s *config.Settings, key string) string {
	src := s.Source(key)
	if src == "the default" {
		return s.Where()
	}
	return src
}

// output prints v as JSON with --json, else calls human.
func (a *app) output(v any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(a.env.stdout)
	return nil
}

// note writes progress and hints to stderr, unless -q or --json.
func (a *app) note(format string, args ...any) {
	if a.quiet || a.json {
		return
	}
	fmt.Fprintf(a.env.stderr, format+"\n", args...)
}

// printJSON writes a document indented, for people.
func printJSON(w io.Writer, doc []byte) {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		fmt.Fprintln(w, strings.TrimSpace(string(doc)))
		return
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(out))
}
