package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/client/sdk"
)

func (a *app) buildMetadataCmd() *cobra.Command {
	var o metadata.BuildOptions
	var validity, output string
	var force bool
	c := &cobra.Command{
		Use:   "build-metadata [options] IMAGE-FILE",
		Short: "Write the Marketplace entry of an image file",
		Long: `build-metadata reads IMAGE-FILE once (its size and MD5, SHA-1, SHA-256 and
SHA-512 checksums) and writes its Marketplace entry, unsigned, to
<identifier>.xml (or -o FILE; -o - for standard output). It prints the image's
identifier: the 27-character form of its SHA-1.

The compression (gz, bz2, xz) and format (qcow2, vmdk, vdi, vhdx, else raw)
are read from the file; --compression and --format must agree with it, and an
xz file needs --format. A data image (--type disk) gets "none" for its
operating system. The entry is valid for 6 months unless --validity says
otherwise: a number of months (12), days (30d) or a duration (48h).

Sign the entry with stratus sign-metadata, then upload it with stratus
upload-metadata. An existing file is replaced, unless it is signed (give
--force to replace it anyway).`,
		Example: `  stratus build-metadata --author "Jane Tester" --author-email jane@example.org \
      --os debian --os-version 12 --os-arch x86_64 --image-version 1.0 \
      --title "Debian 12 base" --tag debian-12-base \
      --location https://appliances.example.org/debian-12-base-1.0.img debian-12-base-1.0.img
  stratus build-metadata --type disk --compression gz --location https://example.org/data.iso.gz -o data.xml data.iso.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(o.Email) == "" {
				// Build names the author as the endorser until signing
				// replaces it with the certificate's.
				return usageError{errors.New("give --author-email: an entry names its author's e-mail address until it is signed")}
			}
			now := time.Now()
			v, err := parseValidity(validity, now)
			if err != nil {
				return err
			}
			o.Validity, o.Now = v, now
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("cannot read the image: %w", err)
			}
			defer f.Close()
			e, err := metadata.Build(o, f)
			if err != nil {
				return &entryError{file: args[0], what: "cannot describe", err: err}
			}
			doc, err := metadata.Render(e)
			if err != nil {
				return &entryError{file: args[0], what: "cannot describe", err: err}
			}
			out := output
			if out == "" {
				out = e.Identifier + ".xml"
			}
			if out != "-" && !force {
				if old, err := os.ReadFile(out); err == nil {
					if prev, err := metadata.Parse(old); err == nil && prev.Signed {
						return fmt.Errorf("%s holds a signed entry, which this would replace: give --force, or -o another file", out)
					}
				}
			}
			if err := a.writeOutput(out, doc); err != nil {
				return err
			}
			if out != "-" {
				a.note("Wrote %s (unsigned): sign it with stratus sign-metadata %s", out, out)
			}
			return a.output(map[string]string{"identifier": e.Identifier, "file": out}, func(w io.Writer) {
				if out == "-" {
					// Standard output holds the entry.
					a.note("%s", e.Identifier)
					return
				}
				fmt.Fprintln(w, e.Identifier)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&o.Creator, "author", "", "the image's author (dcterms:creator)")
	f.StringVar(&o.Email, "author-email", "", "the author's e-mail address")
	f.StringVar(&o.OS, "os", "", "operating system, e.g. debian (none for a data image)")
	f.StringVar(&o.OSVersion, "os-version", "", "version of the operating system, e.g. 12")
	f.StringVar(&o.OSArch, "os-arch", "", "architecture, e.g. x86_64")
	f.StringVar(&o.Version, "image-version", "", "version of the image")
	f.StringVar(&o.Title, "title", "", "a short title")
	f.StringVar(&o.Tag, "tag", "", "a tag users may give instead of the identifier (letters, digits, . - _)")
	f.StringVar(&o.Description, "comment", "", "a description of the image")
	f.StringVar(&o.Publisher, "publisher", "", "who publishes the image")
	f.StringSliceVar(&o.Locations, "location", nil, "URL to download the image from (repeatable, or a comma-separated list)")
	f.StringVar(&o.Format, "format", "", "raw, qcow2, vmdk, vdi or vhdx (default: read from the file)")
	f.StringVar(&o.Compression, "compression", "", "none, gz, bz2 or xz (default: read from the file)")
	f.StringVar(&o.Hypervisor, "hypervisor", "", "hypervisor the image runs on, e.g. kvm")
	f.StringVar(&o.Type, "type", "", "machine (the default) or disk")
	f.StringVar(&validity, "validity", "", "how long the entry is valid: months (6), days (30d) or a duration (48h)")
	f.StringVarP(&output, "output", "o", "", "file to write (default <identifier>.xml; - for standard output)")
	f.BoolVar(&force, "force", false, "replace an output file that holds a signed entry")
	return c
}

func (a *app) signMetadataCmd() *cobra.Command {
	var output string
	var force bool
	c := &cobra.Command{
		Use:   "sign-metadata [--p12-cert FILE --p12-password P | --pem-cert FILE --pem-key FILE] FILE",
		Short: "Sign a Marketplace entry with your certificate",
		Long: `sign-metadata endorses the entry of FILE with your certificate (its e-mail,
subject and issuer, and the date now), checks the entry as the Marketplace
will, signs it (enveloped XML signature, RSA-SHA256) and writes it back to
FILE, or to -o FILE (- for standard output). It prints "SIGNED <identifier>
<e-mail>" (-q: the identifier).

The certificate is a PKCS#12 file (--p12-cert, p12_certificate) or a PEM
certificate and its unencrypted key (--pem-cert/--pem-key, by default
~/.globus/usercert.pem and userkey.pem); when both are set, the one given with
more precedence wins. It must hold an RSA key of 2048 bits or more and an
e-mail address.

A signed FILE is refused unless --force is given: the entry is then endorsed
and signed afresh, dropping the old signature.`,
		Example: "  stratus sign-metadata --p12-cert ~/.globus/usercert.p12 Hqfgfdtl2xSO64ffzpfxXRIBylX.xml\n  stratus sign-metadata --pem-cert cert.pem --pem-key key.pem -o signed.xml entry.xml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			data, err := readEntryFile(file)
			if err != nil {
				return err
			}
			e, err := metadata.Parse(data)
			if err != nil {
				return &entryError{file: file, what: "cannot sign", err: err}
			}
			if e.Signed && !force {
				return fmt.Errorf("%s is signed already: give --force to endorse and sign it again (the old signature is dropped)", file)
			}
			sg, err := a.loadSigner()
			if err != nil {
				return err
			}
			signed, err := sg.sign(e, time.Now())
			if err != nil {
				return &entryError{file: file, what: "cannot sign", err: err}
			}
			out := cmpOr(output, file)
			if err := a.writeOutput(out, signed); err != nil {
				return err
			}
			email := e.Endorsement.Endorser.Email
			return a.output(map[string]string{"identifier": e.Identifier, "email": email, "file": out}, func(w io.Writer) {
				if out == "-" {
					w = a.env.stderr
				}
				if a.quiet {
					fmt.Fprintln(w, e.Identifier)
					return
				}
				fmt.Fprintf(w, "SIGNED %s %s\n", e.Identifier, email)
			})
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "file to write (default: FILE itself; - for standard output)")
	c.Flags().BoolVar(&force, "force", false, "sign a signed entry again, endorsed now")
	return c
}

// readRoots reads a PEM bundle of trusted certification authorities.
func readRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	data, err := readFileLimited(file, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("cannot read --trusted-cas: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, usageError{fmt.Errorf("--trusted-cas %s holds no PEM certificate", file)}
	}
	return pool, nil
}

func (a *app) validateMetadataCmd() *cobra.Command {
	var trusted string
	c := &cobra.Command{
		Use:   "validate-metadata FILE...",
		Short: "Check signed Marketplace entries as the Marketplace does",
		Long: `validate-metadata checks each signed entry FILE: that its signature verifies
(and, with --trusted-cas, that its certificate was issued by one of those
authorities), then, on exactly what the signature covers, the Marketplace's
rules and that the endorser block is the certificate's. It prints for each
valid entry

  VALID <identifier> <endorser e-mail> <status>

(status valid or deprecated; -q: the identifier), and for each other file
"INVALID <file>" followed by one line per broken rule, the rule's name first,
e.g. "  signature-digest: document modified after signing"; it then fails.`,
		Example: "  stratus validate-metadata Hqfgfdtl2xSO64ffzpfxXRIBylX.xml\n  stratus-validate-metadata --trusted-cas /etc/grid-security/cas.pem *.xml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			roots, err := readRoots(trusted)
			if err != nil {
				return err
			}
			type report struct {
				File       string   `json:"file"`
				Valid      bool     `json:"valid"`
				Identifier string   `json:"identifier,omitempty"`
				Email      string   `json:"email,omitempty"`
				Status     string   `json:"status,omitempty"`
				Problems   []string `json:"problems,omitempty"`
			}
			var reports []report
			bad := 0
			now := time.Now()
			for _, file := range args {
				r := report{File: file}
				data, err := readEntryFile(file)
				var v *verified
				if err == nil {
					v, err = verifyEntry(data, roots, now)
				}
				var ps metadata.Problems
				switch {
				case err != nil && data == nil && !errors.As(err, &ps):
					r.Problems = []string{"readable: " + err.Error()}
				case err != nil:
					r.Problems = problemLines(err)
				default:
					r.Valid, r.Identifier, r.Email, r.Status = true, v.entry.Identifier, v.entry.Endorsement.Endorser.Email, v.entry.Status(now)
				}
				if !r.Valid {
					bad++
				}
				reports = append(reports, r)
				switch {
				case a.json:
				case r.Valid && a.quiet:
					fmt.Fprintln(a.env.stdout, r.Identifier)
				case r.Valid:
					fmt.Fprintf(a.env.stdout, "VALID %s %s %s\n", r.Identifier, r.Email, r.Status)
				default:
					fmt.Fprintf(a.env.stdout, "INVALID %s\n", file)
					for _, p := range r.Problems {
						fmt.Fprintf(a.env.stdout, "  %s\n", p)
					}
				}
			}
			if a.json {
				if err := a.output(reports, nil); err != nil {
					return err
				}
			}
			switch {
			case bad == 1 && len(args) == 1:
				return fmt.Errorf("%s is not a valid entry", args[0])
			case bad > 0:
				return fmt.Errorf("%d of %d entries are not valid", bad, len(args))
			}
			return nil
		},
	}
	c.Flags().StringVar(&trusted, "trusted-cas", "", "PEM file of the certification authorities endorsers' certificates must come from")
	return c
}

func (a *app) uploadMetadataCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "upload-metadata FILE...",
		Short: "Upload signed entries to the Marketplace",
		Long: `upload-metadata sends each signed entry FILE to the Marketplace
(--marketplace-endpoint, by default the endpoint's /marketplace), which checks
its signature, endorser and rules, and prints for each it stores

  UPLOADED <identifier> <URL of the entry>

(-q: the identifier). An entry the Marketplace refuses is reported with the
Marketplace's reason, which names the broken rule; the other files are still
sent, and the command then fails. An entry must be newer than the one of the
same identifier its endorser uploaded last.`,
		Example: "  stratus upload-metadata Hqfgfdtl2xSO64ffzpfxXRIBylX.xml\n  stratus-upload-metadata --marketplace-endpoint https://cloud.example.org/marketplace *.xml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			mp, err := a.marketplace(ctx)
			if err != nil {
				return err
			}
			var done []sdk.Uploaded
			var failed []error
			for _, file := range args {
				data, err := readEntryFile(file)
				if err != nil {
					failed = append(failed, fmt.Errorf("%s: %w", file, err))
					continue
				}
				up, err := mp.Upload(ctx, data)
				if err != nil {
					if !perDisk(err) {
						return a.marketError(mp, err)
					}
					failed = append(failed, fmt.Errorf("%s: the Marketplace refused it: %s", file, a.explain(err)))
					continue
				}
				if up.Key.Identifier == "" {
					// The answer named no location: the file says.
					if e, perr := metadata.Parse(data); perr == nil {
						up.Key = sdk.ImageKey{Identifier: e.Identifier, Email: e.Endorsement.Endorser.Email, Endorsed: e.Endorsement.Created}
					}
				}
				done = append(done, up)
				switch {
				case a.json:
				case a.quiet:
					fmt.Fprintln(a.env.stdout, up.Key.Identifier)
				default:
					fmt.Fprintf(a.env.stdout, "UPLOADED %s %s\n", up.Key.Identifier, cmpOr(up.Location, mp.URL()))
				}
			}
			if a.json {
				if err := a.output(done, nil); err != nil {
					return err
				}
			}
			return lastOf(a, failed)
		},
	}
}

// lastOf prints every error but the last on stderr and returns the last,
// so that a command handling several items reports each failure and
// fails.
func lastOf(a *app, failed []error) error {
	if len(failed) == 0 {
		return nil
	}
	for _, err := range failed[:len(failed)-1] {
		fmt.Fprintf(a.env.stderr, "stratus: %v\n", err)
	}
	return failed[len(failed)-1]
}

// defaultReason is the deprecation reason when none is given: the
// Marketplace requires one.
const defaultReason = "no reason given"

func (a *app) deprecateMetadataCmd() *cobra.Command {
	var reason, email string
	var sign bool
	c := &cobra.Command{
		Use:   "deprecate-metadata [--reason R] [--email E] IDENTIFIER",
		Short: "Tell users of an image not to use it any more",
		Long: `deprecate-metadata marks the newest Marketplace entry of IDENTIFIER endorsed by
--email (by default your own address, from your user account) as deprecated,
for --reason: the Marketplace then shows it deprecated, searches leave it out
and clouds refuse to start it unless their policy allows deprecated images.
Only the user who uploaded the entry, or an administrator, may. It prints
"DEPRECATED <identifier>" (-q: the identifier).

With --sign, or when a certificate is given on the command line (--p12-cert,
--pem-cert), it does what the original tool did instead: it fetches your
newest entry of IDENTIFIER, adds the reason (slterms:deprecated), endorses and
signs it again with your certificate and uploads it, so the deprecation is
itself a signed entry.`,
		Example: "  stratus deprecate-metadata --reason \"use debian-12-base 1.1: security fixes\" Hqfgfdtl2xSO64ffzpfxXRIBylX\n  stratus deprecate-metadata --p12-cert ~/.globus/usercert.p12 --reason superseded Hqfgfdtl2xSO64ffzpfxXRIBylX",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := strings.TrimSpace(args[0])
			if !metadata.ValidIdentifier(id) {
				return usageError{fmt.Errorf("%q is not a Marketplace identifier (27 letters, digits, - and _)", args[0])}
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("--reason is empty: say why the image should not be used")}
			}
			if email != "" && !metadata.ValidEmail(email) {
				return usageError{fmt.Errorf("--email %q is not an e-mail address", email)}
			}
			s, err := a.config()
			if err != nil {
				return err
			}
			if !sign {
				for _, k := range []string{config.P12Certificate, config.PemCertificate} {
					sign = sign || strings.HasPrefix(s.Source(k), "the command line")
				}
			}
			mp, err := a.marketplace(ctx)
			if err != nil {
				return err
			}
			if sign {
				err = a.deprecateSigned(cmd, mp, id, email, reason)
			} else {
				err = a.deprecateAction(cmd, mp, id, email, reason)
			}
			if err != nil {
				return a.marketError(mp, err)
			}
			return a.output(map[string]string{"identifier": id, "reason": reason}, func(w io.Writer) {
				if a.quiet {
					fmt.Fprintln(w, id)
					return
				}
				fmt.Fprintf(w, "DEPRECATED %s\n", id)
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", defaultReason, "why the image should not be used")
	c.Flags().StringVar(&email, "email", "", "the endorser of the entry (default: your e-mail address)")
	c.Flags().BoolVar(&sign, "sign", false, "deprecate with a new entry signed with your certificate")
	return c
}

// myEmail is the e-mail address of the user's account on the cloud.
func (a *app) myEmail(cmd *cobra.Command) (string, error) {
	ctx := cmd.Context()
	c, err := a.client(ctx)
	if err != nil {
		return "", err
	}
	who, err := c.Authn(ctx)
	if err != nil {
		return "", err
	}
	var user struct {
		Email string `json:"email"`
	}
	if err := c.Get(ctx, "User/"+who.Identity, &user); err != nil && !sdk.IsCode(err, "not_found") {
		return "", err
	}
	if user.Email == "" {
		return "", fmt.Errorf("your account (%s) has no e-mail address: give the endorser's with --email", who.Identity)
	}
	return user.Email, nil
}

// deprecateAction uses the Marketplace's deprecate action on the newest
// entry of id endorsed by email.
func (a *app) deprecateAction(cmd *cobra.Command, mp *sdk.Marketplace, id, email, reason string) error {
	ctx := cmd.Context()
	if email == "" {
		var err error
		if email, err = a.myEmail(cmd); err != nil {
			return err
		}
	}
	e, err := mp.Get(ctx, sdk.ImageKey{Identifier: id, Email: email}, "all")
	if sdk.IsCode(err, "not_found") {
		return fmt.Errorf("the Marketplace has no entry of %s endorsed by %s", id, email)
	}
	if err != nil {
		return err
	}
	if e.Deprecated != "" {
		a.note("stratus: %s was deprecated already (%s); the reason is now %q", id, e.Deprecated, reason)
	}
	_, err = mp.Deprecate(ctx, e.Key(), reason)
	return err
}

// deprecateSigned uploads the user's newest entry of id again, carrying
// the reason, endorsed now and signed with the user's certificate.
func (a *app) deprecateSigned(cmd *cobra.Command, mp *sdk.Marketplace, id, email, reason string) error {
	ctx := cmd.Context()
	sg, err := a.loadSigner()
	if err != nil {
		return err
	}
	mine := sg.email()
	if mine == "" {
		return fmt.Errorf("the certificate %s has no e-mail address, so it endorses no entry", sg.file)
	}
	if email != "" && !strings.EqualFold(email, mine) {
		return fmt.Errorf("--email %s: your certificate is %s's; a signed deprecation can only replace your own entries (drop --sign and the certificate options to use the deprecate action)", email, mine)
	}
	doc, err := mp.GetXML(ctx, sdk.ImageKey{Identifier: id, Email: mine}, "all")
	if sdk.IsCode(err, "not_found") {
		return fmt.Errorf("the Marketplace has no entry of %s endorsed by %s", id, mine)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	res, err := xmlsig.Verify(doc, xmlsig.VerifyOptions{Now: now})
	if err != nil {
		return &entryError{file: id, what: "the Marketplace's copy of", err: err}
	}
	e, err := metadata.Parse(res.Signed)
	if err != nil {
		return &entryError{file: id, what: "the Marketplace's copy of", err: err}
	}
	e.Deprecated = reason
	// The Marketplace takes only an entry endorsed after the one it
	// replaces, to the second.
	if last, err := metadata.ParseTime(e.Endorsement.Created); err == nil && !now.Truncate(time.Second).After(last) {
		now = last.Add(time.Second)
	}
	signed, err := sg.sign(e, now)
	if err != nil {
		return &entryError{file: id, what: "cannot deprecate", err: err}
	}
	if _, err := mp.Upload(ctx, signed); err != nil {
		return fmt.Errorf("the Marketplace refused the deprecating entry: %s", a.explain(err))
	}
	return nil
}
