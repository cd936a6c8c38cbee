package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/sdk"
)

func (a *app) cloudEntryPointCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cloud-entry-point",
		Short: "Show the cloud's entry point and its collections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			cep, err := c.CloudEntryPoint(ctx)
			if err != nil {
				return err
			}
			if a.quiet && !a.json {
				fmt.Fprintln(a.env.stdout, cep["baseURI"])
				return nil
			}
			a.json = true // the entry point is a document: always shown as JSON
			return a.output(cep, nil)
		},
	}
}

func (a *app) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Show one resource, e.g. stratus get ServiceMessage/<uuid>",
		Example: "  stratus get User/admin\n  stratus get Job/0f8f6b8e-...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			var doc json.RawMessage
			if err := c.Get(ctx, args[0], &doc); err != nil {
				return err
			}
			if a.quiet && !a.json {
				var d struct{ ID string }
				_ = json.Unmarshal(doc, &d)
				fmt.Fprintln(a.env.stdout, d.ID)
				return nil
			}
			return a.output(doc, func(w io.Writer) { printJSON(w, doc) })
		},
	}
}

func (a *app) listCmd() *cobra.Command {
	var q sdk.Query
	var sel string
	c := &cobra.Command{
		Use:   "list KIND",
		Short: "List the resources of a collection, e.g. stratus list ServiceMessage",
		Long: `list shows the resources of a collection you may see: KIND is its name
(ServiceMessage) or its attribute in the entry point (serviceMessages). Without
--first or --last it reads every page.`,
		Example: "  stratus list ServiceMessage\n  stratus list User --filter \"roles='ADMIN'\" --select name,enabled\n  stratus list Job --orderby created:desc --first 1 --last 10",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			kind, err := c.Collection(ctx, args[0])
			if err != nil {
				return err
			}
			if sel != "" {
				q.Select = strings.Split(sel, ",")
			}
			count, items, err := a.query(ctx, c, kind, q)
			if err != nil {
				return err
			}
			return a.output(map[string]any{"count": count, "items": items}, func(w io.Writer) {
				printTable(w, items, a.quiet)
				a.note("%d of %d %s shown.", len(items), count, kind)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&q.Filter, "filter", "", "CIMI $filter, e.g. \"name='x' and created>'2026-01-01'\"")
	f.StringVar(&q.OrderBy, "orderby", "", "CIMI $orderby, e.g. created:desc")
	f.IntVar(&q.First, "first", 0, "first resource to show, counting from 1")
	f.IntVar(&q.Last, "last", 0, "last resource to show")
	f.StringVar(&sel, "select", "", "attributes to show, separated by commas")
	return c
}

// query reads one page when --first or --last is given, else all of them.
func (a *app) query(ctx context.Context, c *sdk.Client, kind string, q sdk.Query) (int, []json.RawMessage, error) {
	if q.First > 0 || q.Last > 0 {
		return c.Query(ctx, kind, q)
	}
	items := []json.RawMessage{}
	for it, err := range c.QueryAll(ctx, kind, q, 100) {
		if err != nil {
			return 0, nil, err
		}
		items = append(items, it)
	}
	return len(items), items, nil
}

// printTable shows documents one a line: id, then name and description
// when they have them. quiet prints ids only.
func printTable(w io.Writer, items []json.RawMessage, quiet bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if !quiet && len(items) > 0 {
		fmt.Fprintln(tw, "ID\tNAME\tDESCRIPTION\tUPDATED")
	}
	for _, it := range items {
		var d struct {
			ID, Name, Description, Updated string
		}
		_ = json.Unmarshal(it, &d)
		if quiet {
			fmt.Fprintln(tw, d.ID)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, short(d.Name, 30), short(d.Description, 50), d.Updated)
	}
	_ = tw.Flush()
}

func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// readBody reads a JSON document from a file, or standard input for "-".
func (a *app) readBody(file string) (json.RawMessage, error) {
	if file == "" {
		return nil, usageError{fmt.Errorf("give the document with -f FILE (or -f - for standard input)")}
	}
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(a.env.stdin, 16<<20))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the document: %w", err)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%s is not valid JSON", file)
	}
	return data, nil
}

// change reports a write, waiting for its job when asked to.
func (a *app) change(ctx context.Context, c *sdk.Client, verb string, res sdk.Result, wait bool) error {
	if !res.Done && wait && res.JobID != "" {
		job, err := a.wait(ctx, c, res.JobID)
		if err != nil {
			return err
		}
		res.Done = true
		if job.TargetResource != nil && res.ID == "" {
			res.ID = c.ID(job.TargetResource.Href)
		}
	}
	return a.output(res, func(w io.Writer) {
		switch {
		case a.quiet:
			fmt.Fprintln(w, res.ID)
		case res.Done:
			fmt.Fprintf(w, "%s %s\n", verb, res.ID)
		default:
			fmt.Fprintf(w, "%s %s: accepted, follow %s (stratus wait-job %s)\n", verb, res.ID, res.JobID, res.JobID)
		}
	})
}

func (a *app) createCmd() *cobra.Command {
	var file string
	var wait bool
	c := &cobra.Command{
		Use:     "create KIND -f FILE",
		Short:   "Add a resource to a collection from a JSON document",
		Example: "  stratus create ServiceMessage -f message.json\n  echo '{\"name\":\"x\"}' | stratus create ServiceMessage -f -",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			body, err := a.readBody(file)
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			kind, err := c.Collection(ctx, args[0])
			if err != nil {
				return err
			}
			res, err := c.Create(ctx, kind, body)
			if err != nil {
				return err
			}
			return a.change(ctx, c, "created", res, wait)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the JSON document, - for standard input")
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait for the cloud to finish")
	return c
}

func (a *app) editCmd() *cobra.Command {
	var file string
	var wait bool
	c := &cobra.Command{
		Use:     "edit ID -f FILE",
		Short:   "Replace a resource with a JSON document",
		Long:    "edit replaces the attributes of a resource with those of the document; start from stratus get ID --json.",
		Example: "  stratus get ServiceMessage/<uuid> --json > m.json; vi m.json; stratus edit ServiceMessage/<uuid> -f m.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			body, err := a.readBody(file)
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			res, err := c.Edit(ctx, args[0], body)
			if err != nil {
				return err
			}
			return a.change(ctx, c, "updated", res, wait)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the JSON document, - for standard input")
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait for the cloud to finish")
	return c
}

func (a *app) deleteCmd() *cobra.Command {
	var wait bool
	c := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a resource",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			res, err := c.Delete(ctx, args[0])
			if err != nil {
				return err
			}
			return a.change(ctx, c, "deleted", res, wait)
		},
	}
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait for the cloud to finish")
	return c
}

func (a *app) waitJobCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wait-job JOB",
		Short: "Wait for a job to end and show how it ended",
		Long:  "wait-job follows a job (Job/<uuid>, or the uuid alone) until it succeeds or fails; it fails if the job does.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			id := args[0]
			if !strings.Contains(id, "/") {
				id = "Job/" + id
			}
			job, err := a.wait(ctx, c, id)
			if err != nil {
				return err
			}
			return a.output(job, func(w io.Writer) {
				if a.quiet {
					fmt.Fprintln(w, job.State)
					return
				}
				fmt.Fprintf(w, "%s %s: %s\n", job.ID, job.State, job.StatusMessage)
			})
		},
	}
}

// wait follows a job, showing its progress on stderr.
func (a *app) wait(ctx context.Context, c *sdk.Client, id string) (*sdk.Job, error) {
	last := ""
	return c.WaitJob(ctx, id, func(j *sdk.Job) {
		if s := fmt.Sprintf("%s %d%%", j.State, j.Progress); s != last {
			last = s
			a.note("%s: %s", j.ID, s)
		}
	})
}
