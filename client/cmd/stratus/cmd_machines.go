package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/sdk"
)

// refsPerQuery bounds the machines one describe query names.
const refsPerQuery = 50

// findMachines reads the machines refs name, in the order given, and
// lists those that do not exist (or that the user may not see).
func (a *app) findMachines(ctx context.Context, c *sdk.Client, refs []machineRef) ([]json.RawMessage, []machine, []machineRef, error) {
	var raws []json.RawMessage
	var all []machine
	for chunk := range slices.Chunk(refs, refsPerQuery) {
		terms := make([]string, len(chunk))
		for i, r := range chunk {
			terms[i] = r.filter()
		}
		_, items, err := a.query(ctx, c, machineKind, sdk.Query{Filter: strings.Join(terms, " or "), OrderBy: "created"})
		if err != nil {
			return nil, nil, nil, err
		}
		for _, it := range items {
			m, err := decodeMachine(it)
			if err != nil {
				return nil, nil, nil, err
			}
			raws, all = append(raws, it), append(all, m)
		}
	}
	outRaw := []json.RawMessage{}
	var out []machine
	var missing []machineRef
	for _, r := range refs {
		// A vm ID is the cloud's for good; should two documents claim
		// one, the newer (listed last) is the machine meant.
		at := -1
		for i, m := range all {
			if r.matches(m) {
				at = i
			}
		}
		if at < 0 {
			missing = append(missing, r)
			continue
		}
		if !slices.ContainsFunc(out, func(m machine) bool { return m.ID == all[at].ID }) {
			outRaw, out = append(outRaw, raws[at]), append(out, all[at])
		}
	}
	return outRaw, out, missing, nil
}

// oneMachine reads the single machine ref names.
func (a *app) oneMachine(ctx context.Context, c *sdk.Client, ref machineRef) (machine, error) {
	_, ms, missing, err := a.findMachines(ctx, c, []machineRef{ref})
	if err != nil {
		return machine{}, err
	}
	if len(missing) > 0 {
		return machine{}, noMachine(missing)
	}
	return ms[0], nil
}

// noMachine explains machines that were not found.
func noMachine(missing []machineRef) error {
	names := make([]string, len(missing))
	for i, r := range missing {
		names[i] = r.String()
	}
	if len(names) == 1 {
		return fmt.Errorf("no machine %s: it does not exist, or it is another user's (see stratus describe-instance)", names[0])
	}
	return fmt.Errorf("no machines %s: they do not exist, or they are other users' (see stratus describe-instance)", strings.Join(names, ", "))
}

// perMachine reports whether err concerns one machine or disk only, so
// that a command handling several goes on with the others.
func perMachine(err error) bool { return perDisk(err) }

// saveOptions are the options that capture a machine's root disk as a new
// image at its shutdown, shared by run-instance and shutdown-instance.
type saveOptions struct {
	save                                         bool
	title, comment, author, authorEmail, version string
}

func (s *saveOptions) flags(c *cobra.Command) {
	f := c.Flags()
	f.BoolVar(&s.save, "save", false, "save the root disk as a new image when the machine shuts down (needs --title)")
	f.StringVar(&s.title, "title", "", "with --save: title of the new image")
	f.StringVar(&s.comment, "comment", "", "with --save: description of the new image")
	f.StringVar(&s.author, "author", "", "with --save: author of the new image")
	f.StringVar(&s.authorEmail, "author-email", "", "with --save: email address of the author, told when the image is saved")
	f.StringVar(&s.version, "image-version", "", "with --save: version of the new image")
}

// body returns the "save" document, nil without --save.
func (s *saveOptions) body(c *cobra.Command) (map[string]any, error) {
	f := c.Flags()
	if !s.save {
		for _, name := range []string{"title", "comment", "author", "author-email", "image-version"} {
			if f.Changed(name) {
				return nil, usageError{fmt.Errorf("--%s describes the image --save makes: give --save too", name)}
			}
		}
		return nil, nil
	}
	if strings.TrimSpace(s.title) == "" {
		return nil, usageError{errors.New("--save needs a --title for the new image")}
	}
	body := map[string]any{"title": s.title}
	for k, v := range map[string]string{"comment": s.comment, "author": s.author, "authorEmail": s.authorEmail, "imageVersion": s.version} {
		if v != "" {
			body[k] = v
		}
	}
	return body, nil
}

// runOptions are run-instance's options.
type runOptions struct {
	number        int
	typ           string
	cpu, ram      int
	swap          int
	listTypes     bool
	key           string
	contexts      []string
	contextFile   string
	contextMethod string
	cloudInit     string
	volatile      []int
	persistent    []string
	readonly      []string
	save          saveOptions
	localIP       bool
	privateIP     bool
	vmName        string
	sha1          string
	bytes         int64
	wait          bool
	waitTimeout   time.Duration
}

// body checks the options and builds the create body of one machine,
// without its image and SSH key: reading files through read, and asking
// nothing of the cloud, so that every mistake is found before anything
// starts.
func (o *runOptions) body(c *cobra.Command, read func(string) ([]byte, error)) (map[string]any, error) {
	f := c.Flags()
	if o.number < 1 {
		return nil, usageError{fmt.Errorf("-n %d: give the number of machines to start, 1 or more", o.number)}
	}
	body := map[string]any{}
	if t := strings.TrimSpace(o.typ); t != defaultMachineType || f.Changed("type") {
		if t == "" || strings.ContainsAny(t, " \t/'\"") {
			return nil, usageError{fmt.Errorf("-t %q is not a machine type: see stratus run-instance --list-types", o.typ)}
		}
		body["type"] = t
	}
	for _, r := range []struct {
		flag, key, what string
		v, min          int
	}{
		{"cpu", "cpu", "a number of CPUs, 1 or more", o.cpu, 1},
		{"ram", "ram", "MiB of RAM, 1 or more", o.ram, 1},
		{"swap", "swap", "MiB of swap, 0 or more", o.swap, 0},
	} {
		if !f.Changed(r.flag) {
			continue
		}
		if r.v < r.min {
			return nil, usageError{fmt.Errorf("--%s %d: give %s", r.flag, r.v, r.what)}
		}
		body[r.key] = r.v
	}
	var filePairs []pair
	if o.contextFile != "" {
		data, err := read(o.contextFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the context file: %w", err)
		}
		if filePairs, err = parseContextFile(o.contextFile, data); err != nil {
			return nil, err
		}
	}
	argPairs, err := parseContextArgs(o.contexts)
	if err != nil {
		return nil, err
	}
	if pairs := mergePairs(filePairs, argPairs); len(pairs) > 0 {
		body["context"] = pairs
	}
	switch o.contextMethod {
	case "":
	case "one", "cloud-init":
		body["contextMethod"] = o.contextMethod
	default:
		return nil, usageError{fmt.Errorf("--context-method %q: the method is one (the default) or cloud-init", o.contextMethod)}
	}
	if f.Changed("cloud-init") {
		if o.contextMethod == "one" {
			return nil, usageError{errors.New("--cloud-init needs the cloud-init context method, not --context-method one")}
		}
		spec, files, err := parseCloudInit(o.cloudInit, read)
		if err != nil {
			return nil, err
		}
		body["contextMethod"], body["cloudInit"], body["files"] = "cloud-init", spec, files
	}
	for _, g := range o.volatile {
		if g < 1 {
			return nil, usageError{fmt.Errorf("--volatile-disk %d: give the size of the disk in GiB, 1 or more", g)}
		}
	}
	if len(o.volatile) > 0 {
		body["volatileDisks"] = o.volatile
	}
	if len(o.persistent) > 0 {
		uuids, err := diskUUIDs(o.persistent)
		if err != nil {
			return nil, err
		}
		if o.number > 1 {
			return nil, usageError{fmt.Errorf("--persistent-disk with -n %d: a disk attaches to one machine at a time", o.number)}
		}
		body["persistentDisks"] = uuids
	}
	var readonly []string
	for _, r := range o.readonly {
		r = strings.TrimSpace(r)
		if !isMarketplaceID(r) {
			u, err := diskUUID(r)
			if err != nil {
				return nil, usageError{fmt.Errorf("--readonly-disk %q is neither a Marketplace image id (27 characters) nor a disk uuid", r)}
			}
			r = u
		}
		readonly = append(readonly, r)
	}
	if len(readonly) > 0 {
		body["readonlyDisks"] = readonly
	}
	switch {
	case o.localIP && o.privateIP:
		return nil, usageError{errors.New("--local-ip and --private-ip exclude each other: give one")}
	case o.localIP:
		body["network"] = "local"
	case o.privateIP:
		body["network"] = "private"
	}
	if f.Changed("vm-name") {
		if strings.TrimSpace(o.vmName) == "" {
			return nil, usageError{errors.New("--vm-name is empty")}
		}
		body["name"] = o.vmName
	}
	save, err := o.save.body(c)
	if err != nil {
		return nil, err
	}
	if save != nil {
		body["save"] = save
	}
	if o.waitTimeout <= 0 {
		return nil, usageError{fmt.Errorf("--wait-timeout %s: give a duration such as 10m", o.waitTimeout)}
	}
	return body, nil
}

// sshKey returns the public keys to put into new machines: from -k, else
// from the user_public_key_file setting. When nothing was set and the
// usual file is missing, it returns no key and says what that means.
func (a *app) sshKey(c *cobra.Command, flag string) (string, error) {
	path, source := flag, "-k/--key"
	if !c.Flags().Changed("key") {
		s, err := a.config()
		if err != nil {
			return "", err
		}
		path, source = s.Get(config.UserPublicKeyFile), s.Source(config.UserPublicKeyFile)
		path = expandHome(path, a.env.home)
		if _, err := os.Stat(path); source == "the default" && errors.Is(err, fs.ErrNotExist) {
			a.note("stratus: warning: no SSH public key (%s does not exist): you will not be able to log in to the machine; give one with -k", path)
			return "", nil
		}
	}
	keys, err := readPublicKeys(path)
	if err != nil {
		return "", fmt.Errorf("cannot use your SSH public key (set by %s): %w", source, err)
	}
	return strings.Join(keys, "\n"), nil
}

// resolveImage looks up an image given by tag among the user's disks;
// a tag no disk has is a Marketplace tag, which the cloud resolves.
func (a *app) resolveImage(ctx context.Context, img imageRef) (imageRef, error) {
	if img.tag == "" {
		return img, nil
	}
	pd, err := a.clientAt(ctx, config.PdiskEndpoint)
	if err != nil {
		return img, err
	}
	_, items, err := a.query(ctx, pd, volumeKind, sdk.Query{Filter: "tag=" + cimiString(img.tag), OrderBy: "created,id"})
	if err != nil {
		return img, err
	}
	switch len(items) {
	case 0:
		if metadata.ValidTag(img.tag) {
			return imageRef{marketTag: img.tag}, nil
		}
		return img, fmt.Errorf("image %q: no disk you may use has this tag, and it is no Marketplace id, tag, disk uuid or URL%s", img.tag, idHint(img.tag))
	case 1:
		var v volume
		_ = json.Unmarshal(items[0], &v)
		return imageRef{volume: v.uuid()}, nil
	}
	uuids := make([]string, len(items))
	for i, it := range items {
		var v volume
		_ = json.Unmarshal(it, &v)
		uuids[i] = v.uuid()
	}
	return img, fmt.Errorf("image %q: %d disks have this tag (%s): give the uuid of the one to start", img.tag, len(items), strings.Join(uuids, ", "))
}

// machineTypes reads the cloud's machine types, or the standard ones when
// the cloud publishes none or none is configured.
func (a *app) machineTypes(ctx context.Context) ([]machineType, error) {
	c, err := a.client(ctx)
	if errors.Is(err, errNoEndpoint) {
		return standardTypes(), nil
	}
	if err != nil {
		return nil, err
	}
	_, items, err := a.query(ctx, c, machineConfigKind, sdk.Query{})
	if sdk.IsCode(err, "not_found") {
		return standardTypes(), nil
	}
	if err != nil {
		return nil, err
	}
	types := make([]machineType, 0, len(items))
	for _, it := range items {
		var t machineType
		if err := json.Unmarshal(it, &t); err != nil || t.Name == "" {
			return nil, fmt.Errorf("the cloud sent a machine type that cannot be read: %s", it)
		}
		types = append(types, t)
	}
	if len(types) == 0 {
		return standardTypes(), nil
	}
	return types, nil
}

func (a *app) runInstanceCmd() *cobra.Command {
	o := &runOptions{}
	c := &cobra.Command{
		Use:   "run-instance IMAGE",
		Short: "Start virtual machines from an image",
		Long: `run-instance starts machines from IMAGE: a Marketplace image id (27
characters), a Marketplace tag (e-mail/tag: that endorser's newest valid image
with the tag; tag: the newest valid image with the tag, when one endorser uses
it), the uuid of a disk, the tag of one of your disks (looked up before the
Marketplace's tags), or an http(s) URL of an image file with its --bytes and
--sha1.

It returns once the cloud has accepted the machines, printing for each its vm
ID and address; -q prints "vmID, ip" lines only. The machines then boot by
themselves (see stratus describe-instance); --wait waits until they run,
showing their states on standard error.

The machine gets your public SSH key (-k, else the key setting, else
~/.ssh/id_rsa.pub) for root. --context KEY=VALUE pairs (several separated by
#, or one --context each) and the lines KEY=VALUE of --context-file go to
the machine's context; --cloud-init 'MIME,FILE#MIME,FILE' gives it
cloud-init user data (MIME a subtype such as cloud-config or x-shellscript,
or ssh for a public key file, or none for one file used as it is).`,
		Example: `  stratus run-instance KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF
  stratus run-instance -t m1.large -n 3 -q KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF
  stratus run-instance --context "ROLE=web#PEERS=3" --volatile-disk 20 KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF
  stratus run-instance --cloud-init 'cloud-config,config.yaml#ssh,~/.ssh/id_rsa.pub' KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF
  stratus run-instance --list-types`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.listTypes {
				return nil // the image, if any, is not started
			}
			if len(args) != 1 {
				return errors.New("give one IMAGE to start: a Marketplace image id, a disk uuid or tag, or an http(s) URL")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if o.listTypes {
				return a.listTypes(ctx, o.typ)
			}
			img, err := parseImage(args[0], o.sha1, o.bytes, cmd.Flags().Changed("bytes"))
			if err != nil {
				return err
			}
			read := func(name string) ([]byte, error) {
				return readFileLimited(expandHome(name, a.env.home), maxCloudInitFile)
			}
			body, err := o.body(cmd, read)
			if err != nil {
				return err
			}
			key, err := a.sshKey(cmd, o.key)
			if err != nil {
				return err
			}
			if key != "" {
				body["sshKey"] = key
			}
			if img, err = a.resolveImage(ctx, img); err != nil {
				return err
			}
			body["image"] = img.body()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			err = a.start(ctx, c, body, o)
			if hint := idHint(img.marketTag); hint != "" && perMachine(err) {
				return fmt.Errorf("%s%s", a.explain(err), hint)
			}
			return err
		},
	}
	f := c.Flags()
	f.IntVarP(&o.number, "number", "n", 1, "number of machines to start")
	f.StringVarP(&o.typ, "type", "t", defaultMachineType, "machine type (see --list-types)")
	f.IntVar(&o.cpu, "cpu", 0, "number of CPUs, instead of the type's")
	f.IntVar(&o.ram, "ram", 0, "RAM in MiB, instead of the type's")
	f.IntVar(&o.swap, "swap", 0, "swap in MiB, instead of the type's")
	f.BoolVarP(&o.listTypes, "list-types", "l", false, "list the machine types and exit")
	f.StringVarP(&o.key, "key", "k", "", "file of the public SSH key(s) to log in as root (default: the key setting, ~/.ssh/id_rsa.pub)")
	f.StringArrayVar(&o.contexts, "context", nil, "context pairs KEY=VALUE, separated by # (repeatable)")
	f.StringVar(&o.contextFile, "context-file", "", "file of context pairs, one KEY=VALUE a line")
	f.StringVar(&o.contextMethod, "context-method", "", "contextualization method: one (the default) or cloud-init")
	f.StringVar(&o.cloudInit, "cloud-init", "", "cloud-init parts MIME,FILE separated by #")
	f.IntSliceVar(&o.volatile, "volatile-disk", nil, "add a volatile disk of this many GiB (repeatable)")
	f.StringArrayVar(&o.persistent, "persistent-disk", nil, "attach the persistent disk of this uuid (repeatable)")
	f.StringArrayVar(&o.readonly, "readonly-disk", nil, "attach this Marketplace image or disk read-only (repeatable)")
	o.save.flags(c)
	f.BoolVar(&o.localIP, "local-ip", false, "give the machine an address reachable only from the cloud's other machines")
	f.BoolVar(&o.privateIP, "private-ip", false, "give the machine a private address, reachable from nowhere")
	f.StringVar(&o.vmName, "vm-name", "", "name of the machine (default one-<vm ID>)")
	f.StringVar(&o.sha1, "sha1", "", "SHA-1 of the image file, for an image given by URL")
	f.Int64Var(&o.bytes, "bytes", 0, "size in bytes of the image file, for an image given by URL")
	f.BoolVar(&o.wait, "wait", false, "wait until the machines run")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 10*time.Minute, "with --wait: give up after this long")
	return c
}

// listTypes prints the machine types for --list-types.
func (a *app) listTypes(ctx context.Context, selected string) error {
	types, err := a.machineTypes(ctx)
	if err != nil {
		return err
	}
	return a.output(types, func(w io.Writer) {
		if a.quiet {
			for _, t := range types {
				fmt.Fprintln(w, t.Name)
			}
			return
		}
		writeTypes(w, types, selected)
	})
}

// started is a machine run-instance created: its number in this run and
// its document.
type started struct {
	n   int
	m   machine
	raw json.RawMessage
}

// start creates the machines one after the other, printing each as the
// cloud accepts it; it stops at the first refusal.
func (a *app) start(ctx context.Context, c *sdk.Client, body map[string]any, o *runOptions) error {
	human := !a.quiet && !a.json
	if human {
		writeStartBanner(a.env.stdout, o.number)
	}
	var ms []started
	for n := 1; n <= o.number; n++ {
		res, err := c.Create(ctx, machineKind, body)
		if err == nil {
			err = a.finish(ctx, c, &res)
		}
		if err != nil {
			if len(ms) > 0 {
				return fmt.Errorf("%d of %d machines started; the next was refused: %s", len(ms), o.number, a.explain(err))
			}
			return err
		}
		raw, err := document(ctx, c, res, res.ID)
		if err != nil {
			return err
		}
		m, err := decodeMachine(raw)
		if err != nil {
			return err
		}
		ms = append(ms, started{n, m, raw})
		switch {
		case a.json:
		case a.quiet:
			fmt.Fprintf(a.env.stdout, "%d, %s\n", m.VMID, m.address())
		default:
			writeStarted(a.env.stdout, n, m)
		}
		if m.address() == "" {
			a.note("stratus: warning: the cloud gave machine %d no address yet; see stratus describe-instance %d", m.VMID, m.VMID)
		}
	}
	if o.wait {
		if err := a.waitRunning(ctx, c, ms, o.waitTimeout); err != nil {
			return err
		}
	}
	if human {
		fmt.Fprintln(a.env.stdout, " :: Done!")
	}
	if a.json {
		docs := make([]json.RawMessage, len(ms))
		for i, s := range ms {
			docs[i] = s.raw
		}
		return a.output(docs, nil)
	}
	return nil
}

// waitRunning reads the machines until they all run, showing each change
// of state on stderr. A machine that fails, or ends, stops the wait.
func (a *app) waitRunning(ctx context.Context, c *sdk.Client, ms []started, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := map[int]string{}
	for _, s := range ms {
		last[s.n] = s.m.state()
	}
	delay := 100 * time.Millisecond
	for {
		waiting := 0
		for i := range ms {
			s := &ms[i]
			if last[s.n] == "Running" {
				continue
			}
			var raw json.RawMessage
			if err := c.Get(ctx, s.m.ID, &raw); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			m, err := decodeMachine(raw)
			if err != nil {
				return err
			}
			s.m, s.raw = m, raw
			state := m.state()
			if state != last[s.n] {
				last[s.n] = state
				a.note(" :: Machine %d (vm ID: %d): %s", s.n, m.VMID, state)
			}
			switch state {
			case "Pending", "Prolog", "Boot":
				waiting++
			case "Running":
			default:
				msg := ""
				if m.StateMessage != "" {
					msg = ": " + m.StateMessage
				}
				return fmt.Errorf("machine %d did not start: it is %s%s", m.VMID, state, msg)
			}
		}
		if waiting == 0 && ctx.Err() == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, s := range ms {
				if last[s.n] != "Running" {
					if errors.Is(ctx.Err(), context.DeadlineExceeded) {
						return fmt.Errorf("machine %d is still %s after %s; it may yet start: see stratus describe-instance %d", s.m.VMID, last[s.n], timeout, s.m.VMID)
					}
					return ctx.Err()
				}
			}
			return nil
		case <-t.C:
		}
		delay = min(delay*3/2, 3*time.Second)
	}
}

func (a *app) describeInstanceCmd() *cobra.Command {
	var level int
	var all bool
	c := &cobra.Command{
		Use:   "describe-instance [ID...]",
		Short: "Show virtual machines",
		Long: `describe-instance shows your machines that have not ended, by vm ID, or the
machines given (by vm ID or uuid, ended ones too), as a table:

  id   state     vcpu memory    cpu% host/ip                  name
  4710 Running   1    1572864   8    vm-152.lal.stratuslab.eu one-4710

state is Pending, Prolog, Boot, Running, Shutdown, Epilog, Done, Failed,
Unknown or Stopped; memory is in KiB; host/ip is the machine's host name, or
its address when it has none. Why a machine failed is printed under its line.

Here -v means more detail (not the requests, as for other commands):
  -v    adds the columns type, ip and uuid before the name
  -vv   also prints each machine's attributes, one "key: value" a line
  -vvv  prints the machines' documents as JSON
-q prints the vm IDs only; --json the documents.`,
		Example: "  stratus describe-instance\n  stratus describe-instance 4710 -vv\n  stratus-describe-instance -a -q",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			refs, err := parseMachineRefs(args)
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			var raws []json.RawMessage // never nil after the reads: [] for none
			var ms []machine
			var missing []machineRef
			if len(refs) > 0 {
				raws, ms, missing, err = a.findMachines(ctx, c, refs)
			} else {
				q := sdk.Query{OrderBy: "vmId"}
				if !all {
					q.Filter = "detailedState!='Done'"
				}
				_, raws, err = a.query(ctx, c, machineKind, q)
				for _, raw := range raws {
					m, derr := decodeMachine(raw)
					if derr != nil {
						return derr
					}
					ms = append(ms, m)
				}
			}
			if err != nil {
				return err
			}
			switch {
			case a.json:
				if err := a.output(raws, nil); err != nil {
					return err
				}
			case a.quiet:
				for _, m := range ms {
					fmt.Fprintln(a.env.stdout, m.VMID)
				}
			case level >= 3:
				doc, _ := json.Marshal(raws)
				printJSON(a.env.stdout, doc)
			case len(ms) > 0 || len(missing) == 0:
				writeMachineTable(a.env.stdout, ms, level >= 1)
				if level >= 2 {
					for _, m := range ms {
						writeMachineDetail(a.env.stdout, m, time.Local)
					}
				}
			}
			if len(missing) > 0 {
				return noMachine(missing)
			}
			return nil
		},
	}
	// A local -v shadows the global one, which would trace requests.
	c.Flags().CountVarP(&level, "verbose", "v", "show more: -v more columns, -vv attributes, -vvv JSON documents")
	c.Flags().BoolVarP(&all, "all", "a", false, "list ended (Done) machines too")
	return c
}

// eachMachine runs do on each machine args name, after checking every
// argument. Failures concerning one machine are printed and the others
// handled; the command then fails with the last.
func (a *app) eachMachine(ctx context.Context, args []string, do func(*sdk.Client, machine) error) error {
	refs, err := parseMachineRefs(args)
	if err != nil {
		return err
	}
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	_, ms, missing, err := a.findMachines(ctx, c, refs)
	if err != nil {
		return err
	}
	var failed []error
	for _, m := range ms {
		if err := do(c, m); err != nil {
			if !perMachine(err) {
				return err
			}
			failed = append(failed, fmt.Errorf("machine %d: %s", m.VMID, a.explain(err)))
		}
	}
	if len(missing) > 0 {
		failed = append(failed, noMachine(missing))
	}
	if len(failed) == 0 {
		return nil
	}
	for _, err := range failed[:len(failed)-1] {
		fmt.Fprintf(a.env.stderr, "stratus: %v\n", err)
	}
	return failed[len(failed)-1]
}

func (a *app) killInstanceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kill-instance ID...",
		Short: "Destroy virtual machines at once",
		Long: `kill-instance destroys each machine given (by vm ID or uuid) at once, as
pulling its plug would, and releases its address and disks; a persistent disk
keeps what was written to it. It prints nothing. The machine is then shown
Done by stratus describe-instance ID for a while. To let the machine stop
cleanly, use stratus shutdown-instance.`,
		Example: "  stratus kill-instance 4710\n  stratus-kill-instance 4710 4711",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			killed := []string{}
			err := a.eachMachine(ctx, args, func(c *sdk.Client, m machine) error {
				if _, err := c.Delete(ctx, m.ID); err != nil {
					return err
				}
				killed = append(killed, m.ID)
				return nil
			})
			if a.json {
				if oerr := a.output(killed, nil); oerr != nil {
					return oerr
				}
			}
			return err
		},
	}
}

func (a *app) shutdownInstanceCmd() *cobra.Command {
	var save saveOptions
	c := &cobra.Command{
		Use:   "shutdown-instance ID...",
		Short: "Shut virtual machines down cleanly",
		Long: `shutdown-instance asks each machine given (by vm ID or uuid) to power off,
as its power button would; once it has, the cloud releases its resources. It
prints nothing. With --save the machine's root disk is kept as a new image
(--title, and --comment, --author, --author-email, --image-version describe
it); stratus describe-instance -vv ID then shows the saved disk.`,
		Example: "  stratus shutdown-instance 4710\n  stratus shutdown-instance 4710 --save --title \"web server\" --author-email me@example.org",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			body, err := save.body(cmd)
			if err != nil {
				return err
			}
			params := map[string]any{}
			if body != nil {
				params["save"] = body
			}
			done := []string{}
			err = a.eachMachine(ctx, args, func(c *sdk.Client, m machine) error {
				if _, err := c.Action(ctx, m.ID, "shutdown", params); err != nil {
					return err
				}
				done = append(done, m.ID)
				return nil
			})
			if a.json {
				if oerr := a.output(done, nil); oerr != nil {
					return oerr
				}
			}
			return err
		},
	}
	save.flags(c)
	return c
}

// lookPath finds an executable in the PATH of the run's environment.
func (a *app) lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(a.env.getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("cannot find %s in your PATH: install an SSH client (e.g. the openssh-client package)", name)
}

func (a *app) connectInstanceCmd() *cobra.Command {
	var key string
	c := &cobra.Command{
		Use:   "connect-instance ID [SSH-ARGUMENTS...]",
		Short: "Log in to a virtual machine with ssh",
		Long: `connect-instance runs ssh root@ADDRESS for the machine given (by vm ID or
uuid), with -i KEY when -k names your private key. Anything after the ID is
passed to ssh: options, or a command to run on the machine.`,
		Example: "  stratus connect-instance 4710\n  stratus connect-instance -k ~/.ssh/cloud 4710 uptime",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref, err := parseMachineRef(args[0])
			if err != nil {
				return err
			}
			sshArgs := []string{}
			if cmd.Flags().Changed("key") {
				k := expandHome(key, a.env.home)
				// A public key given by habit (-k of run-instance): its
				// private half is beside it.
				if priv, ok := strings.CutSuffix(k, ".pub"); ok {
					if _, err := os.Stat(priv); err == nil {
						k = priv
					}
				}
				if _, err := os.Stat(k); err != nil {
					return usageError{fmt.Errorf("-k %s: the private key cannot be read: %w", key, err)}
				}
				sshArgs = append(sshArgs, "-i", k)
			}
			ssh, err := a.lookPath("ssh")
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			m, err := a.oneMachine(ctx, c, ref)
			if err != nil {
				return err
			}
			ip := m.address()
			if ip == "" {
				return fmt.Errorf("machine %d has no address (it is %s): see stratus describe-instance %d", m.VMID, m.state(), m.VMID)
			}
			if st := m.state(); st != "Running" {
				a.note("stratus: machine %d is %s, not Running: ssh may fail", m.VMID, st)
			}
			sshArgs = append(sshArgs, "root@"+ip)
			sshArgs = append(sshArgs, args[1:]...)
			run := exec.Command(ssh, sshArgs...)
			run.Stdin, run.Stdout, run.Stderr = a.env.stdin, a.env.stdout, a.env.stderr
			if err := run.Run(); err != nil {
				return fmt.Errorf("ssh root@%s: %w", ip, err)
			}
			return nil
		},
	}
	// Everything after the ID belongs to ssh.
	c.Flags().SetInterspersed(false)
	c.Flags().StringVarP(&key, "key", "k", "", "your private SSH key, passed to ssh -i")
	return c
}

func (a *app) prepareContextCmd() *cobra.Command {
	var contexts []string
	var contextFile, key, out string
	c := &cobra.Command{
		Use:   "prepare-context",
		Short: "Write a context file for run-instance --context-file",
		Long: `prepare-context checks context pairs and writes them as a context file, one
KEY=VALUE a line, the form stratus run-instance --context-file reads: to
standard output, or to -o FILE (readable by you alone). Pairs come from
--context-file then --context; a key given twice keeps its last value. -k adds
SSH_PUBLIC_KEY=<the key of the file>, which cloud-init's OpenNebula datasource
installs for root.`,
		Example: "  stratus prepare-context --context \"ROLE=web#PEERS=3\" -o web.ctx\n  stratus run-instance --context-file web.ctx KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var filePairs []pair
			if contextFile != "" {
				data, err := readFileLimited(expandHome(contextFile, a.env.home), maxCloudInitFile)
				if err != nil {
					return fmt.Errorf("cannot read the context file: %w", err)
				}
				if filePairs, err = parseContextFile(contextFile, data); err != nil {
					return err
				}
			}
			argPairs, err := parseContextArgs(contexts)
			if err != nil {
				return err
			}
			var keyPairs []pair
			if cmd.Flags().Changed("key") {
				keys, err := readPublicKeys(expandHome(key, a.env.home))
				if err != nil {
					return fmt.Errorf("cannot use -k: %w", err)
				}
				if len(keys) > 1 {
					return fmt.Errorf("-k %s holds %d keys; a context line carries one: give a file with one key (run-instance -k takes several)", key, len(keys))
				}
				keyPairs = []pair{{Key: "SSH_PUBLIC_KEY", Value: keys[0]}}
			}
			pairs := mergePairs(filePairs, argPairs, keyPairs)
			if len(pairs) == 0 {
				return usageError{errors.New("nothing to write: give --context pairs, a --context-file or -k")}
			}
			if a.json {
				return a.output(pairs, nil)
			}
			if out == "" || out == "-" {
				writeContext(a.env.stdout, pairs)
				return nil
			}
			var b strings.Builder
			writeContext(&b, pairs)
			if err := os.WriteFile(out, []byte(b.String()), 0o600); err != nil {
				return fmt.Errorf("cannot write the context file: %w", err)
			}
			a.note("Wrote %d pairs to %s.", len(pairs), out)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&contexts, "context", nil, "context pairs KEY=VALUE, separated by # (repeatable)")
	f.StringVar(&contextFile, "context-file", "", "a context file to start from")
	f.StringVarP(&key, "key", "k", "", "public SSH key file to add as SSH_PUBLIC_KEY")
	f.StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	return c
}

// volumeAction is what attach-volume and detach-volume share: the machine
// of -i, the disks given, and one action per disk.
func (a *app) volumeAction(ctx context.Context, instance string, args []string, verb string, report func(m machine, uuid, device string)) error {
	if instance == "" {
		return usageError{errors.New("give the machine with -i/--instance VM_ID")}
	}
	ref, err := parseMachineRef(instance)
	if err != nil {
		return err
	}
	uuids, err := diskUUIDs(args)
	if err != nil {
		return err
	}
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	m, err := a.oneMachine(ctx, c, ref)
	if err != nil {
		return err
	}
	var failed []error
	for _, u := range uuids {
		device, err := a.changeVolume(ctx, c, m, verb, u)
		if err != nil {
			if !perMachine(err) {
				return err
			}
			failed = append(failed, fmt.Errorf("disk %s: %s", u, a.explain(err)))
			continue
		}
		report(m, u, device)
	}
	if len(failed) == 0 {
		return nil
	}
	for _, err := range failed[:len(failed)-1] {
		fmt.Fprintf(a.env.stderr, "stratus: %v\n", err)
	}
	return failed[len(failed)-1]
}

// changeVolume runs the action verb for the disk uuid on m and waits for
// its job. After an attachment it returns the device: the one the answer
// names, else the one the machine's disks show.
func (a *app) changeVolume(ctx context.Context, c *sdk.Client, m machine, verb, uuid string) (string, error) {
	res, err := c.Action(ctx, m.ID, verb, map[string]any{"volume": uuid})
	if err != nil {
		return "", err
	}
	if !res.Done && res.JobID != "" {
		if _, err := c.WaitJob(ctx, res.JobID); err != nil {
			return "", err
		}
	}
	if verb != "attach_volume" {
		return "", nil
	}
	var answer struct {
		Device string `json:"device"`
	}
	if json.Unmarshal(res.Document, &answer) == nil && answer.Device != "" {
		return strings.TrimPrefix(answer.Device, "/dev/"), nil
	}
	var raw json.RawMessage
	if err := c.Get(ctx, m.ID, &raw); err != nil {
		return "", err
	}
	now, err := decodeMachine(raw)
	if err != nil {
		return "", err
	}
	if dev, ok := now.disk(uuid); ok {
		return dev, nil
	}
	return "", fmt.Errorf("the cloud attached disk %s but does not say on which device; see stratus describe-instance -vv %d", uuid, m.VMID)
}

func (a *app) attachVolumeCmd() *cobra.Command {
	var instance string
	c := &cobra.Command{
		Use:   "attach-volume -i VM_ID UUID...",
		Short: "Attach persistent disks to a running machine",
		Long: `attach-volume plugs each disk given into the running machine -i names (by
vm ID or uuid) and prints "ATTACHED <uuid> in VM <vm ID> on /dev/<device>"
(-q: the device alone). A disk is attached to one machine at a time; a disk
that cannot be attached is reported and the others are still attached; the
command then fails.`,
		Example: "  stratus attach-volume -i 4710 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var done []map[string]any
			err := a.volumeAction(cmd.Context(), instance, args, "attach_volume", func(m machine, uuid, device string) {
				done = append(done, map[string]any{"volume": uuid, "machine": m.ID, "vmId": m.VMID, "device": device})
				switch {
				case a.json:
				case a.quiet:
					fmt.Fprintf(a.env.stdout, "/dev/%s\n", device)
				default:
					fmt.Fprintf(a.env.stdout, "ATTACHED %s in VM %d on /dev/%s\n", uuid, m.VMID, device)
				}
			})
			if a.json && len(done) > 0 {
				if oerr := a.output(done, nil); oerr != nil {
					return oerr
				}
			}
			return err
		},
	}
	c.Flags().StringVarP(&instance, "instance", "i", "", "the machine (vm ID or uuid) to attach the disks to")
	return c
}

func (a *app) detachVolumeCmd() *cobra.Command {
	var instance string
	c := &cobra.Command{
		Use:   "detach-volume -i VM_ID UUID...",
		Short: "Detach persistent disks from a running machine",
		Long: `detach-volume unplugs each disk given from the running machine -i names (by
vm ID or uuid) and prints "DETACHED <uuid> from VM <vm ID>" (-q: the uuid).
Only disks attached with attach-volume can be detached; those given at
start (run-instance --persistent-disk) stay until the machine ends.
Unmount the disk in the machine first.`,
		Example: "  stratus detach-volume -i 4710 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var done []map[string]any
			err := a.volumeAction(cmd.Context(), instance, args, "detach_volume", func(m machine, uuid, _ string) {
				done = append(done, map[string]any{"volume": uuid, "machine": m.ID, "vmId": m.VMID})
				switch {
				case a.json:
				case a.quiet:
					fmt.Fprintln(a.env.stdout, uuid)
				default:
					fmt.Fprintf(a.env.stdout, "DETACHED %s from VM %d\n", uuid, m.VMID)
				}
			})
			if a.json && len(done) > 0 {
				if oerr := a.output(done, nil); oerr != nil {
					return oerr
				}
			}
			return err
		},
	}
	c.Flags().StringVarP(&instance, "instance", "i", "", "the machine (vm ID or uuid) to detach the disks from")
	return c
}
