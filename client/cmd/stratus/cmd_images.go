package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/sdk"
)

// imageName is an image as users name it in the Marketplace: by
// identifier, by an endorser's tag (email/tag) or by a tag.
type imageName struct {
	identifier string
	email      string
	tag        string
}

// parseImageName reads an identifier, "email/tag" or "tag". Tags are
// made so that the three never clash (see metadata.ValidTag).
func parseImageName(arg string) (imageName, error) {
	s := strings.TrimSpace(arg)
	if metadata.ValidIdentifier(s) {
		return imageName{identifier: s}, nil
	}
	if email, tag, ok := strings.Cut(s, "/"); ok && metadata.ValidEmail(email) && metadata.ValidTag(tag) {
		return imageName{email: email, tag: tag}, nil
	}
	if metadata.ValidTag(s) {
		return imageName{tag: s}, nil
	}
	return imageName{}, usageError{fmt.Errorf("%q is neither a Marketplace identifier (27 letters, digits, - and _), an endorser's tag (e-mail/tag) nor a tag (letters, digits, . - _)", arg)}
}

// imageStatuses are the values of --status.
var imageStatuses = []string{metadata.StatusValid, metadata.StatusExpired, metadata.StatusDeprecated, "all"}

func checkStatus(s string) error {
	if s != "" && !slices.Contains(imageStatuses, s) {
		return usageError{fmt.Errorf("--status %q: give %s", s, strings.Join(imageStatuses, ", "))}
	}
	return nil
}

// dash shows an absent value in a table, so that columns stay columns.
func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// writeImageTable prints the describe-images table: a header, then one
// line an entry, columns separated by spaces.
func writeImageTable(w io.Writer, es []sdk.ImageEntry) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "identifier\tendorser\tos\tversion\tarch\ttag\tcreated\tvalid\tstatus")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Identifier, dash(e.Endorser.Email), dash(e.OS), dash(e.OSVersion),
			dash(e.OSArch), dash(e.Tag), day(cmpOr(e.Endorsed, e.Created)), day(e.Valid), dash(e.Status))
	}
	_ = tw.Flush()
}

func (a *app) describeImagesCmd() *cobra.Command {
	var q sdk.ImageQuery
	c := &cobra.Command{
		Use:   "describe-images [--endorser E] [--os OS] [--os-version V] [--arch A] [--tag T] [--status S] [--first N --last M] [ID-OR-TAG]",
		Short: "Search the Marketplace for images",
		Long: `describe-images searches the Marketplace (--marketplace-endpoint, by default
the endpoint's /marketplace) and prints the entries found, newest first, as a
table:

  identifier                  endorser          os     version arch   tag            created    valid      status
  Hqfgfdtl2xSO64ffzpfxXRIBylX jane@example.org  debian 12      x86_64 debian-12-base 2026-01-15 2026-07-15 valid

ID-OR-TAG narrows the search to an identifier, an endorser's tag
(e-mail/tag) or a tag. --status is valid (the default), expired, deprecated or
all. The Marketplace answers 20 entries at a time: --first and --last choose
which (from 1). -q prints the identifiers only; --json the entries.
Take an identifier (or tag) to stratus run-instance, or to stratus show-image
for all its details.`,
		Example: "  stratus describe-images --os debian\n  stratus describe-images --endorser jane@example.org --status all\n  stratus describe-images jane@example.org/debian-12-base",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := checkStatus(q.Status); err != nil {
				return err
			}
			if q.First < 0 || q.Last < 0 || (q.Last > 0 && q.Last < max(q.First, 1)) {
				return usageError{fmt.Errorf("--first %d --last %d: give 1 <= first <= last", q.First, q.Last)}
			}
			if q.Email != "" && !metadata.ValidEmail(q.Email) {
				return usageError{fmt.Errorf("--endorser %q is not an e-mail address", q.Email)}
			}
			if len(args) == 1 {
				n, err := parseImageName(args[0])
				if err != nil {
					return err
				}
				if n.email != "" && q.Email != "" && !strings.EqualFold(n.email, q.Email) {
					return usageError{fmt.Errorf("%s names the endorser %s, --endorser another", args[0], n.email)}
				}
				q.Identifier, q.Email, q.Tag = cmpOr(n.identifier, q.Identifier), cmpOr(n.email, q.Email), cmpOr(n.tag, q.Tag)
			}
			mp, err := a.marketplace(ctx)
			if err != nil {
				return err
			}
			count, es, err := mp.Search(ctx, q)
			if err != nil {
				return err
			}
			if es == nil {
				es = []sdk.ImageEntry{}
			}
			if err := a.output(es, func(w io.Writer) {
				if a.quiet {
					for _, e := range es {
						fmt.Fprintln(w, e.Identifier)
					}
					return
				}
				writeImageTable(w, es)
			}); err != nil {
				return err
			}
			first := max(q.First, 1)
			switch {
			case count == 0:
				a.note("No entry matches (status %s; --status all shows every entry).", cmpOr(q.Status, metadata.StatusValid))
			case len(es) < count:
				a.note("Entries %d to %d of %d: see --first and --last.", first, first+len(es)-1, count)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&q.Email, "endorser", "", "e-mail address of the endorser")
	f.StringVar(&q.OS, "os", "", "operating system, e.g. debian")
	f.StringVar(&q.OSVersion, "os-version", "", "version of the operating system")
	f.StringVar(&q.Arch, "arch", "", "architecture, e.g. x86_64")
	f.StringVar(&q.Tag, "tag", "", "tag of the image")
	f.StringVar(&q.Created, "created", "", "entries endorsed on or after this date (yyyy-mm-dd)")
	f.StringVar(&q.Status, "status", "", "valid (the default), expired, deprecated or all")
	f.IntVar(&q.First, "first", 0, "first entry to show, from 1")
	f.IntVar(&q.Last, "last", 0, "last entry to show")
	return c
}

// findImage returns the entry an identifier or tag names: for an
// identifier, the newest entry (of the endorser, when given) that status
// allows; for a tag, the newest valid entry with that tag, of one endorser.
func findImage(cmd *cobra.Command, mp *sdk.Marketplace, n imageName, endorser, status string) (*sdk.ImageEntry, error) {
	ctx := cmd.Context()
	email := cmpOr(n.email, endorser)
	if n.identifier != "" {
		e, err := mp.Get(ctx, sdk.ImageKey{Identifier: n.identifier, Email: email}, cmpOr(status, "all"))
		if sdk.IsCode(err, "not_found") {
			by := ""
			if email != "" {
				by = " endorsed by " + email
			}
			return nil, fmt.Errorf("the Marketplace has no entry of %s%s (status %s)", n.identifier, by, cmpOr(status, "all"))
		}
		return e, err
	}
	_, es, err := mp.Search(ctx, sdk.ImageQuery{Tag: n.tag, Email: email, Status: cmpOr(status, metadata.StatusValid), First: 1, Last: 100})
	if err != nil {
		return nil, err
	}
	var endorsers []string
	for _, e := range es {
		if !slices.Contains(endorsers, e.Endorser.Email) {
			endorsers = append(endorsers, e.Endorser.Email)
		}
	}
	switch {
	case len(es) == 0 && email != "":
		return nil, fmt.Errorf("no %s image of %s has the tag %s", cmpOr(status, metadata.StatusValid), email, n.tag)
	case len(es) == 0:
		return nil, fmt.Errorf("no %s image has the tag %s", cmpOr(status, metadata.StatusValid), n.tag)
	case len(endorsers) > 1:
		return nil, fmt.Errorf("the tag %s is used by %d endorsers (%s): give e-mail/%s", n.tag, len(endorsers), strings.Join(endorsers, ", "), n.tag)
	}
	return &es[0], nil
}

// writeImage prints an entry for people: a ":: IMAGE <identifier>" line,
// then "key: value" lines indented by 8 spaces, as describe-volumes does.
func writeImage(w io.Writer, e *sdk.ImageEntry, loc *time.Location) {
	fmt.Fprintf(w, ":: IMAGE %s\n", e.Identifier)
	line := func(k, v string) {
		if strings.TrimSpace(v) != "" {
			fmt.Fprintf(w, "        %s: %s\n", k, v)
		}
	}
	line("title", e.Name)
	status := e.Status
	if e.Deprecated != "" {
		status += ": " + e.Deprecated
		if e.DeprecatedBy != "" {
			status += " (by " + e.DeprecatedBy + ")"
		}
	}
	line("status", status)
	line("tag", e.Tag)
	line("endorser", e.Endorser.Email)
	line("subject", e.Endorser.Subject)
	line("issuer", e.Endorser.Issuer)
	line("endorsed", localTime(e.Endorsed, loc))
	line("valid", localTime(e.Valid, loc))
	line("type", e.Kind)
	line("os", strings.TrimSpace(strings.Join([]string{e.OS, e.OSVersion, e.OSArch}, " ")))
	line("version", e.Version)
	format := e.Format
	if e.Compression != "" {
		format += " (compression " + e.Compression + ")"
	}
	line("format", strings.TrimSpace(format))
	line("hypervisor", e.Hypervisor)
	if e.Bytes > 0 {
		line("bytes", strconv.FormatInt(e.Bytes, 10))
	}
	line("sha1", e.SHA1)
	for _, l := range e.Locations {
		line("location", l)
	}
	line("volume", strings.TrimPrefix(e.Volume, volumeKind+"/"))
	line("description", e.Description)
}

func (a *app) showImageCmd() *cobra.Command {
	var endorser, status string
	var xml bool
	c := &cobra.Command{
		Use:   "show-image ID-OR-TAG [--xml | --json]",
		Short: "Show one Marketplace entry",
		Long: `show-image shows the Marketplace entry ID-OR-TAG names: for an identifier, its
newest entry (of --endorser, when given), whatever its status unless --status
says; for a tag (or e-mail/tag), the newest valid entry with that tag. It
prints ":: IMAGE <identifier>" and the entry's details; --xml prints the signed
entry exactly as it was uploaded (save it to validate it with stratus
validate-metadata); --json the Marketplace's JSON view of it.`,
		Example: "  stratus show-image Hqfgfdtl2xSO64ffzpfxXRIBylX\n  stratus show-image --xml jane@example.org/debian-12-base > entry.xml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkStatus(status); err != nil {
				return err
			}
			if xml && a.json {
				return usageError{errors.New("--xml and --json exclude each other: give one")}
			}
			n, err := parseImageName(args[0])
			if err != nil {
				return err
			}
			mp, err := a.marketplace(cmd.Context())
			if err != nil {
				return err
			}
			e, err := findImage(cmd, mp, n, endorser, status)
			if err != nil {
				return err
			}
			if xml {
				doc, err := mp.GetXML(cmd.Context(), e.Key(), "all")
				if err != nil {
					return err
				}
				_, err = a.env.stdout.Write(doc)
				return err
			}
			return a.output(e, func(w io.Writer) {
				if a.quiet {
					fmt.Fprintln(w, e.Identifier)
					return
				}
				writeImage(w, e, time.Local)
			})
		},
	}
	c.Flags().StringVar(&endorser, "endorser", "", "e-mail address of the endorser")
	c.Flags().StringVar(&status, "status", "", "valid, expired, deprecated or all (default: all for an identifier, valid for a tag)")
	c.Flags().BoolVar(&xml, "xml", false, "print the signed XML entry")
	return c
}
