package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/sdk"
)

// volumeKind is the CIMI collection of persistent disks.
const volumeKind = "Volume"

// noDisk is what describe-volumes prints when there is nothing to show;
// scripts test for it.
const noDisk = "No disk to show"

// createdLayout is how the disk commands show times, in the client's zone.
const createdLayout = "2006/01/02 15:04:05"

// uuidsPerQuery bounds the uuids one describe query names, keeping its
// $filter and URL short.
const uuidsPerQuery = 50

// volume is what the disk commands show of a Volume document.
type volume struct {
	ID         string      `json:"id"`
	UUID       string      `json:"uuid"`
	Created    string      `json:"created"`
	Visibility string      `json:"visibility"`
	Tag        string      `json:"tag"`
	Owner      string      `json:"owner"`
	Size       json.Number `json:"size"`
	Count      json.Number `json:"count"`
	Type       string      `json:"type"`
	State      string      `json:"state"`
	Machine    string      `json:"machine"`
	Device     string      `json:"device"`
	Identifier string      `json:"identifier"`
	Quarantine string      `json:"quarantine"`
}

// uuid is the disk's uuid, read from its id when the document lacks it.
func (v volume) uuid() string {
	if v.UUID != "" {
		return v.UUID
	}
	return strings.TrimPrefix(v.ID, volumeKind+"/")
}

// writeVolume prints one disk as the StratusLab documentation shows it:
// a ":: DISK <uuid>" line, then "key: value" lines indented by 8 spaces,
// the optional ones only when set. Times are shown in loc.
func writeVolume(w io.Writer, v volume, loc *time.Location) {
	fmt.Fprintf(w, ":: DISK %s\n", v.uuid())
	line := func(k, val string) { fmt.Fprintf(w, "        %s: %s\n", k, val) }
	line("created", localTime(v.Created, loc))
	line("visibility", strings.ToLower(v.Visibility))
	line("tag", v.Tag)
	line("owner", v.Owner)
	line("size", numberOr0(v.Size))
	line("users", numberOr0(v.Count))
	for _, kv := range [][2]string{
		{"type", v.Type},
		{"state", v.State},
		{"machine", strings.TrimPrefix(v.Machine, "Machine/")},
		{"device", v.Device},
		{"identifier", v.Identifier},
		{"quarantine", localTime(v.Quarantine, loc)},
	} {
		if kv[1] != "" {
			line(kv[0], kv[1])
		}
	}
}

// writeVolumes prints the disks, or noDisk when there are none.
func writeVolumes(w io.Writer, vs []volume, loc *time.Location) {
	if len(vs) == 0 {
		fmt.Fprintln(w, noDisk)
		return
	}
	for _, v := range vs {
		writeVolume(w, v, loc)
	}
}

func numberOr0(n json.Number) string {
	if n == "" {
		return "0"
	}
	return n.String()
}

// localTime shows an RFC 3339 time of a document in loc, or the text as
// it is when it is not such a time.
func localTime(s string, loc *time.Location) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.In(loc).Format(createdLayout)
}

// diskUUID checks a disk argument: a uuid (any case) or "Volume/<uuid>".
// It returns the uuid in the lowercase form the cloud uses.
func diskUUID(arg string) (string, error) {
	u := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(arg), volumeKind+"/"))
	if !validUUID(u) {
		return "", usageError{fmt.Errorf("%q is not a disk uuid: a disk uuid is 32 hexadecimal digits grouped 8-4-4-4-12, e.g. 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51", arg)}
	}
	return u, nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// diskUUIDs checks every argument before any request, dropping repeats.
func diskUUIDs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		u, err := diskUUID(a)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// How --filter KEY=VALUE pairs become comparisons.
var (
	// numberAttrs compare as numbers.
	numberAttrs = []string{"size", "count", "capacity", "bytes"}
	// upperAttrs hold upper-case words: visibility=public finds PUBLIC.
	upperAttrs = []string{"visibility", "state", "type"}
	// filterAliases are the names describe-volumes shows for attributes.
	filterAliases = map[string]string{"users": "count"}
)

// volumeFilter turns the --filter arguments into one CIMI $filter, their
// conjunction. An argument NAME=VALUE whose value has no space and does
// not start with a quote is a pair: the value is quoted for CIMI (so that
// nothing in it can end the string), except for numbers, booleans and
// the upper-case words of visibility, state and type. Anything else is a
// CIMI expression, passed as written.
func volumeFilter(args []string) (string, error) {
	terms := make([]string, 0, len(args))
	for _, arg := range args {
		term, raw, err := filterTerm(arg)
		if err != nil {
			return "", err
		}
		if raw && len(args) > 1 {
			term = "(" + term + ")"
		}
		terms = append(terms, term)
	}
	return strings.Join(terms, " and "), nil
}

// filterTerm translates one --filter argument; raw says it is a CIMI
// expression as the user wrote it.
func filterTerm(arg string) (term string, raw bool, err error) {
	e := strings.TrimSpace(arg)
	if e == "" {
		return "", false, usageError{errors.New("--filter is empty: give KEY=VALUE, e.g. --filter tag=HELLO, or a CIMI expression")}
	}
	key, val, ok := strings.Cut(e, "=")
	if !ok || !isAttrName(key) || strings.ContainsAny(val, " \t\r\n") || strings.HasPrefix(val, "'") || strings.HasPrefix(val, `"`) {
		return e, true, nil
	}
	if k, ok := filterAliases[key]; ok {
		key = k
	}
	switch {
	case slices.Contains(numberAttrs, key):
		if _, err := strconv.ParseInt(val, 10, 64); err != nil {
			return "", false, usageError{fmt.Errorf("--filter %s: %s is a whole number (of GiB for size), not %q", arg, key, val)}
		}
		return key + "=" + val, false, nil
	case key == "volatile":
		if val != "true" && val != "false" {
			return "", false, usageError{fmt.Errorf("--filter %s: volatile is true or false, not %q", arg, val)}
		}
		return key + "=" + val, false, nil
	case slices.Contains(upperAttrs, key):
		val = strings.ToUpper(val)
	case key == "machine" && validUUID(strings.ToLower(val)):
		val = "Machine/" + strings.ToLower(val)
	}
	return key + "=" + cimiString(val), false, nil
}

func isAttrName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; c != '_' && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// cimiString quotes s as a CIMI filter string. The gateway reads a doubled
// quote as a quote and "\\" as a backslash, so doubling both leaves no
// way for s to end the string early.
func cimiString(s string) string {
	return "'" + strings.NewReplacer(`'`, `''`, `\`, `\\`).Replace(s) + "'"
}

// uuidFilter selects the disks of uuids.
func uuidFilter(uuids []string) string {
	terms := make([]string, len(uuids))
	for i, u := range uuids {
		terms[i] = "uuid=" + cimiString(u)
	}
	return strings.Join(terms, " or ")
}

// andFilters joins two filters, either of which may be empty.
func andFilters(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return "(" + a + ") and (" + b + ")"
}

// perDisk reports whether err concerns one disk only (refused, missing,
// attached, its job failed), so that the other disks of a command can
// still be handled; any other error (credentials, network) stops it.
func perDisk(err error) bool {
	var ce *sdk.Error
	var je *sdk.JobError
	if errors.As(err, &je) {
		return true
	}
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict:
		return true
	}
	return false
}

// finish waits for the job of an accepted (202) change, so that the disk
// is in its new state when the command returns, and fills in the id the
// job names when the answer did not.
func (a *app) finish(ctx context.Context, c *sdk.Client, res *sdk.Result) error {
	if res.Done {
		return nil
	}
	if res.JobID == "" {
		return errors.New("the cloud accepted the request but named no job to follow; check with stratus describe-volumes")
	}
	job, err := a.wait(ctx, c, res.JobID)
	if err != nil {
		return err
	}
	res.Done = true
	if res.ID == "" && job.TargetResource != nil {
		res.ID = c.ID(job.TargetResource.Href)
	}
	return nil
}

// document returns the disk's document for --json: the one the answer
// carried, else the one read now.
func document(ctx context.Context, c *sdk.Client, res sdk.Result, id string) (json.RawMessage, error) {
	if len(res.Document) > 0 {
		return res.Document, nil
	}
	var doc json.RawMessage
	err := c.Get(ctx, id, &doc)
	return doc, err
}

func (a *app) createVolumeCmd() *cobra.Command {
	var size, tag, desc string
	var public, private bool
	c := &cobra.Command{
		Use:   "create-volume --size GiB [--tag TAG] [--public|--private] [--description TEXT]",
		Short: "Create a persistent disk",
		Long: `create-volume creates an empty persistent disk of --size GiB, private unless
--public is given, and prints "DISK <uuid>" once it exists (the uuid alone
with -q). Attach it to a machine, or describe it with stratus describe-volumes.`,
		Example: "  stratus create-volume --size 10 --tag HELLO\n  stratus-create-volume --size 1 --public --description \"shared data\" -q",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f := cmd.Flags()
			if !f.Changed("size") {
				return usageError{errors.New("give the size of the disk in GiB with --size, e.g. --size 10")}
			}
			n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
			if err != nil || n < 1 {
				return usageError{fmt.Errorf("--size %q: the size is a whole number of GiB, 1 or more", size)}
			}
			if public && private {
				return usageError{errors.New("--public and --private exclude each other: give one")}
			}
			body := map[string]any{"size": n, "visibility": "PRIVATE"}
			if public {
				body["visibility"] = "PUBLIC"
			}
			if f.Changed("tag") {
				body["tag"] = tag
			}
			if f.Changed("description") {
				body["description"] = desc
			}
			c, err := a.clientAt(ctx, config.PdiskEndpoint)
			if err != nil {
				return err
			}
			res, err := c.Create(ctx, volumeKind, body)
			if err != nil {
				return err
			}
			if err := a.finish(ctx, c, &res); err != nil {
				return err
			}
			uuid := strings.TrimPrefix(res.ID, volumeKind+"/")
			if uuid == "" {
				return errors.New("the cloud created the disk but did not say its uuid; look for it with stratus describe-volumes")
			}
			if a.json {
				doc, err := document(ctx, c, sdk.Result{}, res.ID)
				if err != nil {
					return err
				}
				return a.output(doc, nil)
			}
			if a.quiet {
				fmt.Fprintln(a.env.stdout, uuid)
			} else {
				fmt.Fprintf(a.env.stdout, "DISK %s\n", uuid)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&size, "size", "s", "", "size of the disk in GiB (required)")
	f.StringVarP(&tag, "tag", "t", "", "a short name of your choice for the disk")
	f.StringVar(&desc, "description", "", "what the disk holds")
	f.BoolVar(&public, "public", false, "let every user of the cloud see and use the disk")
	f.BoolVar(&private, "private", false, "keep the disk to yourself (the default)")
	return c
}

func (a *app) describeVolumesCmd() *cobra.Command {
	var filters []string
	c := &cobra.Command{
		Use:   "describe-volumes [UUID...] [--filter KEY=VALUE|EXPRESSION]...",
		Short: "Show persistent disks",
		Long: `describe-volumes shows the disks you may see (yours and the public ones),
oldest first, or those of the uuids given. Each disk is a line ":: DISK <uuid>"
followed by its attributes, one "key: value" a line: created (in your time
zone), visibility, tag, owner, size (GiB), users (the machines using it), then
type, state, machine, device, identifier and quarantine when they are set.
With no disk to show it prints "No disk to show".

--filter narrows the list; several --filter must all hold. Each is either
  KEY=VALUE  an attribute equal to a value, written without quotes:
             tag=HELLO, owner=alice, size=10, users=0, visibility=public,
             state=available, machine=<uuid>; the value may hold anything
             but spaces, and is compared exactly (words of visibility, state
             and type in any case)
or a CIMI filter expression, for other comparisons (!=, <, <=, >, >=), "or",
parentheses and values with spaces; quote its strings:
             "size>=10", "tag!='scratch'", "tag='my disk' or tag='other'",
             "created>2026-01-01" (dates and numbers are not quoted)`,
		Example: "  stratus describe-volumes\n  stratus describe-volumes 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51\n  stratus describe-volumes --filter tag=HELLO --filter visibility=public\n  stratus describe-volumes --filter \"size>=10 and created>2026-01-01\"",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			uuids, err := diskUUIDs(args)
			if err != nil {
				return err
			}
			filter, err := volumeFilter(filters)
			if err != nil {
				return err
			}
			c, err := a.clientAt(ctx, config.PdiskEndpoint)
			if err != nil {
				return err
			}
			items, err := a.volumes(ctx, c, uuids, filter)
			if err != nil {
				return err
			}
			vs := make([]volume, 0, len(items))
			for _, it := range items {
				var v volume
				if err := json.Unmarshal(it, &v); err != nil {
					return fmt.Errorf("the cloud sent a disk that cannot be read: %w", err)
				}
				vs = append(vs, v)
			}
			missing, err := a.missingDisks(ctx, c, uuids, vs, filter != "")
			if err != nil {
				return err
			}
			switch {
			case a.json:
				if err := a.output(items, nil); err != nil {
					return err
				}
			case a.quiet:
				for _, v := range vs {
					fmt.Fprintln(a.env.stdout, v.uuid())
				}
			case len(vs) > 0 || len(missing) == 0:
				writeVolumes(a.env.stdout, vs, time.Local)
			}
			switch len(missing) {
			case 0:
				return nil
			case 1:
				return fmt.Errorf("no disk %s: it does not exist, or it is another user's private disk", missing[0])
			}
			return fmt.Errorf("no disks %s: they do not exist, or they are other users' private disks", strings.Join(missing, ", "))
		},
	}
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "show only the disks where KEY=VALUE or a CIMI expression holds (repeatable; see above)")
	return c
}

// volumes reads the disks matching filter (all when empty), of uuids
// when given, oldest first, every page.
func (a *app) volumes(ctx context.Context, c *sdk.Client, uuids []string, filter string) ([]json.RawMessage, error) {
	q := sdk.Query{OrderBy: "created,id"}
	if len(uuids) == 0 {
		q.Filter = filter
		_, items, err := a.query(ctx, c, volumeKind, q)
		return items, err
	}
	items := []json.RawMessage{}
	for chunk := range slices.Chunk(uuids, uuidsPerQuery) {
		q.Filter = andFilters(uuidFilter(chunk), filter)
		_, page, err := a.query(ctx, c, volumeKind, q)
		if err != nil {
			return nil, err
		}
		items = append(items, page...)
	}
	if len(uuids) > uuidsPerQuery {
		// Each query was in order; their concatenation is not.
		created := func(raw json.RawMessage) (time.Time, string) {
			var v volume
			_ = json.Unmarshal(raw, &v)
			t, _ := time.Parse(time.RFC3339Nano, v.Created)
			return t, v.ID
		}
		slices.SortStableFunc(items, func(x, y json.RawMessage) int {
			tx, ix := created(x)
			ty, iy := created(y)
			if c := tx.Compare(ty); c != 0 {
				return c
			}
			return strings.Compare(ix, iy)
		})
	}
	return items, nil
}

// missingDisks lists the uuids asked for that were not found. With a
// filter, a disk absent from the answer may only not match: it is missing
// if reading it fails.
func (a *app) missingDisks(ctx context.Context, c *sdk.Client, uuids []string, found []volume, filtered bool) ([]string, error) {
	var missing []string
	for _, u := range uuids {
		if slices.ContainsFunc(found, func(v volume) bool { return v.uuid() == u }) {
			continue
		}
		if filtered {
			err := c.Get(ctx, volumeKind+"/"+u, nil)
			if err == nil {
				continue
			}
			if !sdk.IsCode(err, "not_found") {
				return nil, err
			}
		}
		missing = append(missing, u)
	}
	return missing, nil
}

func (a *app) updateVolumeCmd() *cobra.Command {
	var tag, desc string
	var public, private bool
	c := &cobra.Command{
		Use:   "update-volume [--tag TAG] [--description TEXT] [--public|--private] UUID",
		Short: "Change the tag, description or visibility of a persistent disk",
		Long: `update-volume changes only the attributes given and prints "UPDATED <uuid>"
(the uuid alone with -q). An empty value, as in --tag "", clears it.`,
		Example: "  stratus update-volume --tag backup 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51\n  stratus update-volume --public --description \"shared data\" 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			uuid, err := diskUUID(args[0])
			if err != nil {
				return err
			}
			if public && private {
				return usageError{errors.New("--public and --private exclude each other: give one")}
			}
			f := cmd.Flags()
			body := map[string]any{}
			var attrs []string
			if f.Changed("tag") {
				body["tag"], attrs = tag, append(attrs, "tag")
			}
			if f.Changed("description") {
				body["description"], attrs = desc, append(attrs, "description")
			}
			if public || private {
				body["visibility"], attrs = "PRIVATE", append(attrs, "visibility")
				if public {
					body["visibility"] = "PUBLIC"
				}
			}
			if len(attrs) == 0 {
				return usageError{errors.New("nothing to change: give --tag, --description, --public or --private")}
			}
			c, err := a.clientAt(ctx, config.PdiskEndpoint)
			if err != nil {
				return err
			}
			id := volumeKind + "/" + uuid
			res, err := c.EditSelect(ctx, id, body, attrs...)
			if err != nil {
				return err
			}
			if err := a.finish(ctx, c, &res); err != nil {
				return err
			}
			if a.json {
				if res.Status == http.StatusAccepted {
					res.Document = nil // the answer was about the job, not the disk
				}
				doc, err := document(ctx, c, res, id)
				if err != nil {
					return err
				}
				return a.output(doc, nil)
			}
			if a.quiet {
				fmt.Fprintln(a.env.stdout, uuid)
			} else {
				fmt.Fprintf(a.env.stdout, "UPDATED %s\n", uuid)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&tag, "tag", "t", "", "the disk's new tag")
	f.StringVar(&desc, "description", "", "the disk's new description")
	f.BoolVar(&public, "public", false, "let every user of the cloud see and use the disk")
	f.BoolVar(&private, "private", false, "keep the disk to yourself")
	return c
}

func (a *app) deleteVolumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-volume UUID...",
		Short: "Delete persistent disks",
		Long: `delete-volume deletes each disk given and prints "DELETED <uuid>" for each
(the uuid alone with -q). A disk that cannot be deleted (another user's, or
one attached to a machine) is reported and the others are still deleted; the
command then fails.`,
		Example: "  stratus delete-volume 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			uuids, err := diskUUIDs(args)
			if err != nil {
				return err
			}
			c, err := a.clientAt(ctx, config.PdiskEndpoint)
			if err != nil {
				return err
			}
			var failed []error
			// report prints the failures but the last, which run prints.
			report := func(last error) error {
				for _, err := range failed {
					if err != last {
						fmt.Fprintf(a.env.stderr, "stratus: %v\n", err)
					}
				}
				return last
			}
			done := []sdk.Result{}
			for _, u := range uuids {
				res, err := c.Delete(ctx, volumeKind+"/"+u)
				if err == nil {
					err = a.finish(ctx, c, &res)
				}
				if err != nil {
					if !perDisk(err) {
						return report(err)
					}
					failed = append(failed, fmt.Errorf("disk %s: %s", u, a.explain(err)))
					continue
				}
				res.ID = volumeKind + "/" + u
				done = append(done, res)
				switch {
				case a.json:
				case a.quiet:
					fmt.Fprintln(a.env.stdout, u)
				default:
					fmt.Fprintf(a.env.stdout, "DELETED %s\n", u)
				}
			}
			if a.json {
				if err := a.output(done, nil); err != nil {
					return err
				}
			}
			if len(failed) == 0 {
				return nil
			}
			return report(failed[len(failed)-1])
		},
	}
}
