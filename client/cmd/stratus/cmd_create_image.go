package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/sdk"
)

// createImageOptions are create-image's options.
type createImageOptions struct {
	script   string
	packages []string
	typ      string
	key      string
	save     saveOptions
	timeout  time.Duration
}

// writeBanner prints a heading framed as the original client framed them.
func writeBanner(w io.Writer, text string) {
	rule := " " + strings.Repeat(":", len(text)+6) + "\n"
	fmt.Fprintf(w, "\n%s :: %s ::\n%s", rule, text, rule)
}

// pollMachine reads the machine id until step says it is done (or fails),
// waiting a little longer between reads each time, up to 3 s; tick runs
// before each wait, to show progress.
func pollMachine(ctx context.Context, c *sdk.Client, id string, step func(machine) (bool, error), tick func()) (machine, error) {
	delay := 100 * time.Millisecond
	for {
		var raw json.RawMessage
		if err := c.Get(ctx, id, &raw); err != nil {
			return machine{}, err
		}
		m, err := decodeMachine(raw)
		if err != nil {
			return m, err
		}
		if done, err := step(m); done || err != nil {
			return m, err
		}
		tick()
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return m, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*3/2, 3*time.Second)
	}
}

// failedState explains a machine that left the path create-image expects.
func failedState(m machine, while string) error {
	msg := ""
	if m.StateMessage != "" {
		msg = ": " + m.StateMessage
	}
	return fmt.Errorf("machine %d is %s%s, %s; nothing is saved", m.VMID, m.state(), msg, while)
}

func (a *app) createImageCmd() *cobra.Command {
	o := &createImageOptions{}
	c := &cobra.Command{
		Use:   "create-image [-s SCRIPT] [-a PKG,PKG] [--type TYPE] [--title T] [--comment C] [--author A] [--author-email E] [--image-version V] BASE-ID",
		Short: "Make a new image from an image, packages and a script",
		Long: `create-image makes a new image from BASE-ID (a Marketplace identifier or tag,
or a disk uuid): it starts a machine of BASE-ID with --save, which installs
the packages of -a with the distribution's tool (apt-get, dnf, yum, zypper, apk
or pacman) and runs the script of -s, then powers itself off; the machine is
then shut down, and the cloud saves its disk as a new image and makes an
unsigned draft Marketplace entry of it, visible to you alone for two days. It
prints the new image's identifier ("New image identifier: X"; -q: X alone):
start it with stratus run-instance X to test it, then get its draft with
stratus show-image --xml X, sign it with stratus sign-metadata and upload it
with stratus upload-metadata to publish it.

The packages and the script reach the machine as cloud-init user data, not
through SSH as in the original tool (an appliance need not run an SSH server):
BASE-ID must run cloud-init. The script runs as root, with sh unless it starts
with #!. Only when the packages and the script succeed does the machine power
off; otherwise it keeps running and nothing is saved: after --timeout
create-image gives up, and you may log in (stratus connect-instance) to read
/var/log/stratus-create-image.log, then kill the machine.`,
		Example: `  stratus create-image -s setup-ubuntu.sh -a apache2,chkconfig --type m1.xlarge \
      --comment "ubuntu create image test" --title "My first image" \
      --author "Joe Builder" --author-email builder@example.org HZTKYZgX7XzSokCHMB60lS0wsiv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.createImage(cmd, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVarP(&o.script, "script", "s", "", "script to run in the machine, as root, after the packages are installed")
	f.StringSliceVarP(&o.packages, "packages", "a", nil, "packages to install, separated by commas")
	f.StringVarP(&o.typ, "type", "t", defaultMachineType, "machine type to build the image on (see stratus run-instance --list-types)")
	f.StringVarP(&o.key, "key", "k", "", "public SSH key for root, to inspect a failed build (default: the key setting)")
	f.StringVar(&o.save.title, "title", "", "title of the new image (default: \"<BASE-ID> with <packages>\")")
	f.StringVar(&o.save.comment, "comment", "", "description of the new image")
	f.StringVar(&o.save.author, "author", "", "author of the new image")
	f.StringVar(&o.save.authorEmail, "author-email", "", "e-mail address of the author")
	f.StringVar(&o.save.version, "image-version", "", "version of the new image")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up when the machine has not powered off after this long")
	return c
}

// createImage runs create-image: check everything, start the machine,
// wait for its guest to power off, shut it down and report the image.
func (a *app) createImage(cmd *cobra.Command, o *createImageOptions, base string) error {
	ctx := cmd.Context()
	img, err := parseImage(base, "", 0, false)
	if err != nil {
		return err
	}
	if img.url != "" {
		return usageError{errors.New("create-image starts from a Marketplace image or a disk: give its identifier, tag or uuid")}
	}
	packages, err := parsePackages(o.packages)
	if err != nil {
		return err
	}
	var script []byte
	if o.script != "" {
		if script, err = readFileLimited(expandHome(o.script, a.env.home), maxCloudInitFile); err != nil {
			return fmt.Errorf("cannot read the script: %w", err)
		}
	}
	if len(packages) == 0 && len(script) == 0 {
		return usageError{errors.New("nothing to add to the image: give packages with -a and/or a script with -s")}
	}
	if o.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %s: give a duration such as 30m", o.timeout)}
	}
	if o.save.authorEmail != "" && !metadata.ValidEmail(o.save.authorEmail) {
		return usageError{fmt.Errorf("--author-email %q is not an e-mail address", o.save.authorEmail)}
	}
	userData, err := createImageUserData(packages, script, guestDefaults())
	if err != nil {
		return err
	}
	o.save.save = true
	if strings.TrimSpace(o.save.title) == "" {
		o.save.title = strings.TrimSpace(base + " with " + strings.Join(packages, ", "))
		if len(packages) == 0 {
			o.save.title = base + " customized"
		}
	}
	save, err := o.save.body(cmd)
	if err != nil {
		return err
	}
	body := map[string]any{"contextMethod": "cloud-init", "userData": string(userData), "save": save}
	if t := strings.TrimSpace(o.typ); t != defaultMachineType {
		body["type"] = t
	}
	key, err := a.sshKey(cmd, o.key)
	if err != nil {
		return err
	}
	if key != "" {
		body["sshKey"] = key
	}

	human := !a.quiet && !a.json
	out := io.Discard
	if human {
		out = a.env.stdout
	}
	writeBanner(out, "Starting image creation")
	if img.marketplace != "" || img.marketTag != "" {
		fmt.Fprintln(out, " :: Checking that base image exists")
		if err := a.checkBase(cmd, img); err != nil {
			return err
		}
		fmt.Fprintln(out, " :: Retrieving image manifest")
	}
	if img, err = a.resolveImage(ctx, img); err != nil {
		return err
	}
	body["image"] = img.body()
	fmt.Fprintln(out, " :: Starting base image")
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	res, err := c.Create(ctx, machineKind, body)
	if err == nil {
		err = a.finish(ctx, c, &res)
	}
	if err != nil {
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
	writeStartBanner(out, 1)
	writeStarted(out, 1, m)
	fmt.Fprintln(out, " :: Done!")

	vm := m.VMID
	dots := func() { fmt.Fprint(out, ".") }
	fmt.Fprintln(out, " :: Waiting for machine to boot")
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	running := false
	m, err = pollMachine(wctx, c, m.ID, func(m machine) (bool, error) {
		switch m.state() {
		case "Pending", "Prolog", "Boot":
			return false, nil
		case "Running":
			if !running {
				running = true
				fmt.Fprintln(out, "\n :: Installing user packages and executing user script (cloud-init, in the machine)")
				fmt.Fprintln(out, " :: Waiting for the machine to power itself off")
			}
			return false, nil
		case "Unknown", "Stopped":
			return true, nil
		}
		return false, failedState(m, "before its build ended")
	}, dots)
	fmt.Fprintln(out)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("machine %d has not powered off after %s: the packages or the script may have failed, or still run; log in (stratus connect-instance %d) and read /var/log/stratus-create-image.log, then end the machine with stratus kill-instance %d (nothing is saved) or stratus shutdown-instance %d (its disk is saved as it is)",
			vm, o.timeout, vm, vm, vm)
	}
	if err != nil {
		return err
	}
	writeBanner(out, "Finished building image increment.")
	fmt.Fprintln(out, " :: Shutting down machine")
	res, err = c.Action(ctx, m.ID, "shutdown", nil)
	if err != nil {
		return err
	}
	identifier := ""
	if !res.Done && res.JobID != "" {
		if _, err := a.wait(ctx, c, res.JobID); err != nil {
			return err
		}
		var job map[string]any
		if c.Get(ctx, res.JobID, &job) == nil {
			identifier, _ = job["savedIdentifier"].(string)
		}
	}
	fmt.Fprintln(out, " :: Saving the image")
	m, err = pollMachine(ctx, c, m.ID, func(m machine) (bool, error) {
		switch m.state() {
		case "Shutdown", "Epilog", "Unknown", "Stopped":
			return false, nil
		case "Done":
			return true, nil
		}
		return false, failedState(m, "while its disk was being saved")
	}, dots)
	fmt.Fprintln(out)
	if err != nil {
		return err
	}
	identifier = cmpOr(m.SavedIdentifier, identifier)
	volume := strings.TrimPrefix(cmpOr(m.SavedVolume, m.SavedImage), volumeKind+"/")
	if identifier == "" {
		if volume != "" {
			return fmt.Errorf("the cloud saved the disk of machine %d as volume %s but made no Marketplace entry of it (is the Marketplace running?); start the volume with stratus run-instance %s", m.VMID, volume, volume)
		}
		return fmt.Errorf("machine %d ended but the cloud says of no saved image; see stratus describe-instance -vv %d", m.VMID, m.VMID)
	}
	return a.output(map[string]any{"identifier": identifier, "volume": volume, "machine": m.ID, "vmId": m.VMID}, func(w io.Writer) {
		if a.quiet {
			fmt.Fprintln(w, identifier)
			return
		}
		fmt.Fprintf(w, " New image identifier: %s\n", identifier)
		if volume != "" {
			fmt.Fprintf(w, " New image disk: %s\n", volume)
		}
		fmt.Fprintf(w, " :: Test it with stratus run-instance %s; publish it with stratus show-image --xml %s > %s.xml, then sign-metadata and upload-metadata\n", identifier, identifier, identifier)
	})
}

// checkBase checks that the Marketplace has a machine image for BASE-ID,
// so that nothing starts from a mistyped identifier.
func (a *app) checkBase(cmd *cobra.Command, img imageRef) error {
	mp, err := a.marketplace(cmd.Context())
	if err != nil {
		return err
	}
	n := imageName{identifier: img.marketplace}
	if img.marketTag != "" {
		if n, err = parseImageName(img.marketTag); err != nil {
			return err
		}
	}
	// An identifier of any status: the cloud judges whether it may start
	// (a draft of one's own may; an expired image may not, by default).
	e, err := findImage(cmd, mp, n, "", "")
	if err != nil {
		return err
	}
	if e.Kind == metadata.TypeDisk {
		return fmt.Errorf("%s is a data image (type disk), not a machine image", e.Identifier)
	}
	return nil
}
