package tgt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
	"stratuslab.dev/services/pdisk/internal/export"
	"stratuslab.dev/services/pdisk/internal/export/exporttest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	exporttest.Run(t, func(t *testing.T) export.Exporter { return d.exporter(t) }, true)
}

// TestQcow2OverISCSI follows one qcow2 volume through its export: QEMU
// writes to it as a qcow2 image over the iscsi protocol, the data is in the
// file, and once unexported the target is gone for initiators too.
func TestQcow2OverISCSI(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	ctx := t.Context()
	id, loc := exporttest.NewVolume(t)

	turl, err := e.Export(ctx, id, loc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "iscsi://" + d.portal + "/iqn.2011-01.eu.stratuslab:" + id + "/1"; turl != want {
		t.Fatalf("Export = %q; want %q", turl, want)
	}
	tt := d.targets(t)
	if len(tt) != 1 || tt[0].luns[1] != loc.Path || !slices.Equal(tt[0].acl, []string{"ALL"}) {
		t.Fatalf("tgtd serves %+v; want one target with LUN 1 on %s open to ALL", tt, loc.Path)
	}
	exporttest.WriteThrough(t, turl, "qcow2", loc.Path)
	// The whole volume fits in the logical unit: writing its last MiB
	// makes qcow2 allocate past the file's original end.
	exporttest.Run1(t, "qemu-io", "-f", "qcow2", turl, "-c", "write -P 0xa5 63M 1M")
	exporttest.Run1(t, "qemu-io", "-f", "qcow2", loc.Path, "-c", "read -P 0xa5 63M 1M")
	if out := exporttest.Run1(t, "qemu-img", "check", "-f", "qcow2", loc.Path); !strings.Contains(out, "No errors") {
		t.Errorf("qemu-img check after writes over iSCSI: %s", out)
	}

	if ids, err := e.List(ctx); err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v, %v; want [%s]", ids, err, id)
	}
	if again, err := e.Export(ctx, id, loc); err != nil || again != turl {
		t.Errorf("second Export = %q, %v; want %q", again, err, turl)
	}
	if n := len(d.targets(t)); n != 1 {
		t.Errorf("after a second Export tgtd has %d targets; want 1", n)
	}

	if err := e.Unexport(ctx, id); err != nil {
		t.Fatal(err)
	}
	if tt := d.targets(t); len(tt) != 0 {
		t.Errorf("after Unexport tgtd still serves %+v", tt)
	}
	if ids, err := e.List(ctx); err != nil || len(ids) != 0 {
		t.Errorf("List after Unexport = %v, %v; want nothing", ids, err)
	}
	_, err = exporttest.Cmd(ctx, "qemu-io", "-f", "qcow2", turl, "-c", "read 0 1M")
	if err == nil || !strings.Contains(err.Error(), "Failed to connect to LUN") {
		t.Errorf("opening %s after Unexport = %v; want the login refused", turl, err)
	}
	if err := e.Unexport(ctx, id); err != nil {
		t.Errorf("second Unexport = %v; want success", err)
	}
}

// TestRawVolume exports a raw file as LVM or a raw backend would give it,
// and checks that Export leaves raw files at their size.
func TestRawVolume(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	id := backendtest.NewID(t)
	path := filepath.Join(t.TempDir(), id)
	exporttest.Run1(t, "qemu-img", "create", "-q", "-f", "raw", path, "8M")
	turl, err := e.Export(t.Context(), id, backend.Location{Format: "raw", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	exporttest.WriteThrough(t, turl, "raw", path)
	if st, err := os.Stat(path); err != nil || st.Size() != 8<<20 {
		t.Errorf("raw file after Export: %v, %v; want 8 MiB", st.Size(), err)
	}
}

// TestRelativePath checks that tgtd is given an absolute path: it would
// resolve a relative one from its own working directory.
func TestRelativePath(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	id, loc := exporttest.NewVolume(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.exporter(t).Export(t.Context(), id, backend.Location{Format: "qcow2", Path: rel}); err != nil {
		t.Fatal(err)
	}
	if tt := d.targets(t); len(tt) != 1 || tt[0].luns[1] != loc.Path {
		t.Errorf("exporting %s: tgtd serves %+v; want LUN 1 on %s", rel, tt, loc.Path)
	}
}

// TestConcurrentExports exports ten volumes at once through ten exporters,
// as replicas sharing a tgtd would, with so few target ids to choose from
// that their choices collide; every volume must get a target of its own.
func TestConcurrentExports(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	ctx := t.Context()
	const n = 10
	ids := make([]string, n)
	locs := make([]backend.Location, n)
	for i := range n {
		ids[i], locs[i] = exporttest.NewVolume(t)
	}
	turls := make([]string, n)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		e := d.exporter(t)
		e.space = n + 2
		wg.Go(func() {
			var err error
			turls[i], err = e.Export(ctx, ids[i], locs[i])
			if err != nil {
				errc <- fmt.Errorf("Export %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	tt := d.targets(t)
	tids := map[int]bool{}
	for _, tg := range tt {
		tids[tg.tid] = true
		i := slices.Index(ids, strings.TrimPrefix(tg.name, DefaultIQNPrefix))
		if i < 0 || tg.luns[1] != locs[i].Path {
			t.Errorf("target %d %s serves %q; want one of the volumes", tg.tid, tg.name, tg.luns[1])
		}
	}
	if len(tt) != n || len(tids) != n {
		t.Fatalf("tgtd has %d targets with %d distinct tids; want %d of each: %+v", len(tt), len(tids), n, tt)
	}
	// Each volume is reachable at its URL, not at a neighbour's.
	for i := range n {
		exporttest.Run1(t, "qemu-io", "-f", "qcow2", turls[i], "-c", fmt.Sprintf("write -P %d 0 64k", i+1))
		exporttest.Run1(t, "qemu-io", "-f", "qcow2", locs[i].Path, "-c", fmt.Sprintf("read -P %d 0 64k", i+1))
	}

	e := d.exporter(t)
	for i := range n {
		wg.Go(func() {
			if err := e.Unexport(ctx, ids[i]); err != nil {
				t.Errorf("Unexport %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ids, err := e.List(ctx); err != nil || len(ids) != 0 {
		t.Errorf("List after unexporting all = %v, %v; want nothing", ids, err)
	}
}

// TestConcurrentSameVolume exports one volume from five exporters at once:
// all get its URL and tgtd ends with a single complete target.
func TestConcurrentSameVolume(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	id, loc := exporttest.NewVolume(t)
	var wg sync.WaitGroup
	turls := make([]string, 5)
	for i := range turls {
		e := d.exporter(t)
		wg.Go(func() {
			var err error
			if turls[i], err = e.Export(t.Context(), id, loc); err != nil {
				t.Errorf("Export %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	want := d.exporter(t).URL(id)
	for i, u := range turls {
		if u != want {
			t.Errorf("Export %d = %q; want %q", i, u, want)
		}
	}
	if tt := d.targets(t); len(tt) != 1 || tt[0].luns[1] != loc.Path || !slices.Equal(tt[0].acl, []string{"ALL"}) {
		t.Errorf("tgtd serves %+v; want one complete target", tt)
	}
}

// TestExportFailures checks that what cannot be exported is refused with a
// clear error and leaves no target behind, including when tgtd itself
// refuses the backing store after the target was made.
func TestExportFailures(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	dir := t.TempDir()
	_, origin := exporttest.NewVolume(t)
	snapshot := filepath.Join(dir, "snapshot.qcow2")
	exporttest.Run1(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", origin.Path, snapshot)
	for _, tc := range []struct {
		name string
		loc  backend.Location
		code errs.Code
		msg  string
	}{
		{"missing file", backend.Location{Format: "qcow2", Path: filepath.Join(dir, "gone.qcow2")}, errs.NotFound, "its storage is missing"},
		{"snapshot", backend.Location{Format: "qcow2", Path: snapshot}, errs.Invalid, "copy-on-write snapshot"},
		{"not a qcow2 file", backend.Location{Format: "qcow2", Path: dir}, errs.Internal, "qcow2 file cannot be read"},
		{"tgtd refuses a directory", backend.Location{Format: "raw", Path: dir}, errs.Internal, "tgtd) refused"},
		{"no location", backend.Location{Format: "raw"}, errs.Internal, "neither a path nor a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := backendtest.NewID(t)
			turl, err := e.Export(t.Context(), id, tc.loc)
			if errs.CodeOf(err) != tc.code || !strings.Contains(errs.MessageOf(err), tc.msg) || !strings.Contains(errs.MessageOf(err), id) {
				t.Errorf("Export = %q, %v (%s); want code %s naming %s and saying %q", turl, err, errs.CodeOf(err), tc.code, id, tc.msg)
			}
			if tt := d.targets(t); len(tt) != 0 {
				t.Errorf("a failed Export left %+v", tt)
			}
		})
	}
}

// TestNetworkLocation checks that a volume a network backend already serves
// is handed back as it is, with nothing set up in tgtd.
func TestNetworkLocation(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	id := backendtest.NewID(t)
	turl, err := d.exporter(t).Export(t.Context(), id, backend.Location{Format: "raw", URL: "rbd:pdisk/" + id})
	if err != nil || turl != "rbd:pdisk/"+id {
		t.Errorf("Export = %q, %v; want the backend's URL", turl, err)
	}
	if tt := d.targets(t); len(tt) != 0 {
		t.Errorf("tgtd serves %+v; want nothing", tt)
	}
}

// TestCompletesHalfMadeTarget plays a crash between the steps of Export:
// the target exists without its logical unit and ACL. List reports it so a
// reconciler can find it, and the next Export completes it.
func TestCompletesHalfMadeTarget(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	id, loc := exporttest.NewVolume(t)
	d.adm(t, "--mode", "target", "--op", "new", "--tid", "7", "--targetname", e.TargetName(id))
	if ids, err := e.List(t.Context()); err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v, %v; want the half-made target's volume", ids, err)
	}
	turl, err := e.Export(t.Context(), id, loc)
	if err != nil {
		t.Fatal(err)
	}
	if tt := d.targets(t); len(tt) != 1 || tt[0].tid != 7 || tt[0].luns[1] != loc.Path || !slices.Equal(tt[0].acl, []string{"ALL"}) {
		t.Errorf("tgtd serves %+v; want target 7 completed", tt)
	}
	exporttest.WriteThrough(t, turl, "qcow2", loc.Path)
}

// TestSharedDaemon checks that targets not named with the prefix are left
// alone: List ignores them, their tids are avoided, Unexport keeps them.
func TestSharedDaemon(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	e.space = 2
	d.adm(t, "--mode", "target", "--op", "new", "--tid", "1", "--targetname", "iqn.2003-01.org.example:backup")
	d.adm(t, "--mode", "target", "--op", "new", "--tid", "3", "--targetname", DefaultIQNPrefix+"not-a-uuid")
	id, loc := exporttest.NewVolume(t)
	if _, err := e.Export(t.Context(), id, loc); err != nil {
		t.Fatal(err)
	}
	if ids, err := e.List(t.Context()); err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v, %v; want only %s", ids, err, id)
	}
	other, otherLoc := exporttest.NewVolume(t)
	if _, err := e.Export(t.Context(), other, otherLoc); errs.CodeOf(err) != errs.Unavailable {
		t.Errorf("Export with every tid taken = %v; want unavailable", err)
	}
	if err := e.Unexport(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range d.targets(t) {
		names = append(names, strconv.Itoa(tg.tid)+" "+tg.name)
	}
	if want := []string{"1 iqn.2003-01.org.example:backup", "3 " + DefaultIQNPrefix + "not-a-uuid"}; !slices.Equal(names, want) {
		t.Errorf("tgtd serves %q; want %q", names, want)
	}
}

// TestConflictingPath checks that a volume exported from one file is not
// silently re-pointed at another.
func TestConflictingPath(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	id, loc := exporttest.NewVolume(t)
	_, elsewhere := exporttest.NewVolume(t)
	if _, err := e.Export(t.Context(), id, loc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Export(t.Context(), id, elsewhere); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("Export from another file = %v; want a conflict", err)
	}
	if tt := d.targets(t); len(tt) != 1 || tt[0].luns[1] != loc.Path {
		t.Errorf("tgtd serves %+v; want the first export untouched", tt)
	}
}

// TestInitiators checks that the ACL is enforced for initiators and that
// Export brings an existing target's ACL to the configuration.
func TestInitiators(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	id, loc := exporttest.NewVolume(t)
	stranger := d.exporter(t, func(c *Config) { c.Initiators = []string{"192.0.2.7"} })
	turl, err := stranger.Export(t.Context(), id, loc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exporttest.Cmd(t.Context(), "qemu-io", "-f", "qcow2", turl, "-c", "read 0 64k"); err == nil {
		t.Errorf("qemu-io from 127.0.0.1 read a target open only to 192.0.2.7")
	}
	local := d.exporter(t, func(c *Config) {
		c.Initiators = []string{"127.0.0.1", "iqn.1993-08.org.debian:01:vmhost"}
	})
	if _, err := local.Export(t.Context(), id, loc); err != nil {
		t.Fatal(err)
	}
	if tt := d.targets(t); len(tt) != 1 || !slices.Equal(tt[0].acl, []string{"127.0.0.1", "iqn.1993-08.org.debian:01:vmhost"}) {
		t.Errorf("tgtd serves %+v; want the ACL replaced", tt)
	}
	exporttest.WriteThrough(t, turl, "qcow2", loc.Path)
}

func TestDaemonDown(t *testing.T) {
	t.Parallel()
	d := startTgtd(t)
	e := d.exporter(t)
	e.control = strconv.Itoa(d.control + 1) // no daemon there
	id, loc := exporttest.NewVolume(t)
	for name, call := range map[string]func() error{
		"Export":   func() error { _, err := e.Export(t.Context(), id, loc); return err },
		"Unexport": func() error { return e.Unexport(t.Context(), id) },
		"List":     func() error { _, err := e.List(t.Context()); return err },
	} {
		if err := call(); errs.CodeOf(err) != errs.Unavailable || !strings.Contains(errs.MessageOf(err), "not answering") {
			t.Errorf("%s with tgtd down = %v; want unavailable", name, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.exporter(t).List(ctx); err == nil {
		t.Errorf("List with a cancelled context succeeded")
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg    Config
		portal string // "" means New must fail
	}{
		{Config{Portal: "storage.example.org"}, "storage.example.org:3260"},
		{Config{Portal: "10.1.2.3:3261"}, "10.1.2.3:3261"},
		{Config{Portal: "[2001:db8::1]:3260"}, "[2001:db8::1]:3260"},
		{Config{Portal: "2001:db8::1"}, "[2001:db8::1]:3260"},
		{Config{Portal: "[2001:db8::1]"}, "[2001:db8::1]:3260"},
		{Config{Portal: "h:3260", IQNPrefix: "iqn.2024-01.org.example:vol-", Initiators: []string{"ALL", "ALL"}}, "h:3260"},
		{Config{}, ""},
		{Config{Portal: "h:0"}, ""},
		{Config{Portal: "h:99999"}, ""},
		{Config{Portal: "h:x"}, ""},
		{Config{Portal: ":3260"}, ""},
		{Config{Portal: "a/b:3260"}, ""},
		{Config{Portal: "h", ControlPort: -1}, ""},
		{Config{Portal: "h", IQNPrefix: "IQN.Upper:"}, ""},
		{Config{Portal: "h", IQNPrefix: "iqn.x: y"}, ""},
		{Config{Portal: "h", IQNPrefix: strings.Repeat("a", 200)}, ""},
		{Config{Portal: "h", Initiators: []string{"a b"}}, ""},
		{Config{Portal: "h", Initiators: []string{""}}, ""},
	} {
		e, err := New(tc.cfg)
		switch {
		case tc.portal == "" && err == nil:
			t.Errorf("New(%+v) succeeded; want an error", tc.cfg)
		case tc.portal != "" && err != nil:
			t.Errorf("New(%+v) = %v", tc.cfg, err)
		case tc.portal != "" && e.portal != tc.portal:
			t.Errorf("New(%+v) portal = %q; want %q", tc.cfg, e.portal, tc.portal)
		}
	}
	e, err := New(Config{Portal: "h", IQNPrefix: "iqn.2024-01.org.example:vol-"})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0b6c7e3e-4a43-4a4b-9b5a-3f1c2d3e4f50"
	if got, want := e.URL(id), "iscsi://h:3260/iqn.2024-01.org.example:vol-"+id+"/1"; got != want {
		t.Errorf("URL = %q; want %q", got, want)
	}
}
