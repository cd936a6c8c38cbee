package lvm

// These tests check the command lines the backend builds and how it reads
// the answers, with a scripted runner that runs nothing (tooltest). They
// show that the backend asks lvm2, dmsetup and qemu-img for the right things
// in the right order and handles their failures; whether the tools then do
// what is asked is the contract suite's business (TestContract).

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/tool"
	"stratuslab.dev/services/pdisk/internal/backend/tool/tooltest"
)

const (
	id     = "0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a"
	origin = "6c1b2a9e-0f4d-4c3b-9a8e-1d2c3b4a5f60"
)

type step = tooltest.Step

var tagRE = regexp.MustCompile(`pdisk_created_[0-9]+`)

// normalize replaces the random parts of a command line: temporary names
// become pdisk-tmp-T-<id> and created tags pdisk_created_N.
func normalize(cmd string) string {
	return tagRE.ReplaceAllString(tooltest.NormalizeTemp(cmd), "pdisk_created_N")
}

// scripted returns a backend on vg0/pdisk whose runner expects exactly
// steps, in order.
func scripted(t *testing.T, steps ...step) *Backend {
	t.Helper()
	b, err := New(Config{VG: "vg0", ThinPool: "pdisk", Runner: tooltest.Script(t, normalize, steps...)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// failure is how a runner reports lvm2's exit status 5, its answer to
// every failure.
func failure(program, stderr string) error { return tooltest.Failure(program, 5, stderr) }

func lvsCmd(selection string) string {
	return "lvs --reportformat json --units b --nosuffix -o " + lvsFields + " -S " + selection + " vg0"
}

func findCmd(name string) string { return lvsCmd(`lv_name="` + name + `" && pool_lv="pdisk"`) }

var (
	poolCmd    = lvsCmd(`pool_lv="pdisk"`)
	dmsetupCmd = "dmsetup status --target thin"
	tmp        = "pdisk-tmp-T-" + id
	noLVs      = report()
)

type lvRow struct{ name, size, origin, time, tags, active, open string }

// report builds lvs's JSON report of rows.
func report(rows ...lvRow) string {
	var lv []map[string]string
	for _, r := range rows {
		lv = append(lv, map[string]string{
			"lv_name": r.name, "lv_size": r.size, "origin": r.origin, "lv_time": r.time,
			"lv_tags": r.tags, "lv_active": r.active, "lv_device_open": r.open,
		})
	}
	out, _ := json.Marshal(map[string]any{"report": []any{map[string]any{"lv": lv}}})
	return string(out)
}

func row(name, size string) lvRow {
	return lvRow{name: name, size: size, time: "2026-11-21 09:15:02 +0000", active: "active"}
}

// fillSteps are the commands that make the temporary of id, write the
// image src of format onto it, tag it and rename it to id.
func fillSteps(format, src string) []step {
	return []step{
		{Cmd: "lvcreate --type thin --virtualsize 4194304b --thinpool pdisk --name " + tmp + " vg0"},
		{Cmd: "qemu-img convert -q -n --target-is-zero -t none -f " + format + " -O raw " + src + " /dev/vg0/" + tmp},
		{Cmd: "lvchange --addtag pdisk_created_N vg0/" + tmp},
		{Cmd: "lvrename vg0 " + tmp + " " + id},
	}
}

// getSteps are the commands of a Get of the volume r describes, with dm as
// dmsetup's answer.
func getSteps(r lvRow, dm string) []step {
	return []step{{Cmd: findCmd(r.name), Out: report(r)}, {Cmd: dmsetupCmd, Out: dm}}
}

func steps(groups ...[]step) []step { return slices.Concat(groups...) }

var (
	made     = time.Date(2026, 11, 21, 9, 15, 3, 0, time.UTC) // lv_time plus a second
	thinStat = "vg0-" + strings.ReplaceAll(id, "-", "--") + ": 0 8192 thin 4352 8191\n" +
		"vg0-" + strings.ReplaceAll(origin, "-", "--") + ": 0 8192 thin 4096 8191\n"
)

func TestCommandLines(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "image.qcow2")
	if err := os.WriteFile(src, []byte("not read: qemu-img info is scripted"), 0o600); err != nil {
		t.Fatal(err)
	}
	qcowInfo := `{"virtual-size": 4194304, "filename": "` + src + `", "format": "qcow2", "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}}`
	snapRow := row(id, "4194304")
	snapRow.origin = origin
	fresh := backend.Volume{ID: id, Size: 4 << 20, Allocated: 4352 * 512, Created: made}

	for _, tc := range []struct {
		name  string
		steps []step
		call  func(ctx context.Context, b *Backend) (any, error)
		want  any
		code  errs.Code
	}{
		{
			name: "Create",
			steps: steps([]step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "lvcreate --type thin --virtualsize 3221225472b --thinpool pdisk --name " + id + " vg0"},
			}, getSteps(row(id, "3221225472"), "No devices found\n")),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 3) },
			want: backend.Volume{ID: id, Size: 3 << 30, Created: made},
		},
		{
			name:  "Create over an existing volume",
			steps: []step{{Cmd: findCmd(id), Out: report(row(id, "1073741824"))}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 3) },
			code:  errs.Conflict,
		},
		{
			name: "Create losing a race",
			steps: []step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "lvcreate --type thin --virtualsize 1073741824b --thinpool pdisk --name " + id + " vg0",
					Err: failure("lvcreate", `Logical Volume "`+id+`" already exists in volume group "vg0"`)},
				{Cmd: findCmd(id), Out: report(row(id, "3221225472"))},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			code: errs.Conflict,
		},
		{
			name: "Create in a full pool",
			steps: []step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "lvcreate --type thin --virtualsize 1073741824b --thinpool pdisk --name " + id + " vg0",
					Err: failure("lvcreate", "Cannot create new thin volume, free space in thin pool vg0/pdisk reached threshold.")},
				{Cmd: findCmd(id), Out: noLVs},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			code: errs.Internal,
		},
		{
			name:  "Create of a bad size runs nothing",
			steps: nil,
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 0) },
			code:  errs.Invalid,
		},
		{
			name: "Snapshot",
			steps: steps([]step{
				{Cmd: findCmd(origin), Out: report(row(origin, "4194304"))},
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "lvcreate --snapshot --setactivationskip n --name " + id + " vg0/" + origin},
			}, getSteps(snapRow, thinStat)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			want: backend.Volume{ID: id, Size: 4 << 20, Allocated: 256 * 512, Origin: origin, Created: made},
		},
		{
			name: "Snapshot of an origin a Delete renamed away",
			steps: []step{
				{Cmd: findCmd(origin), Out: report(row(origin, "4194304"))},
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "lvcreate --snapshot --setactivationskip n --name " + id + " vg0/" + origin,
					Err: failure("lvcreate", `Failed to find logical volume "vg0/`+origin+`"`)},
				{Cmd: findCmd(origin), Out: noLVs},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			code: errs.NotFound,
		},
		{
			name:  "Snapshot of a missing origin",
			steps: []step{{Cmd: findCmd(origin), Out: noLVs}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			code:  errs.NotFound,
		},
		{
			name: "Import",
			steps: steps([]step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "qemu-img info --output=json " + src, Out: qcowInfo},
			}, fillSteps("qcow2", src), getSteps(row(id, "4194304"), thinStat)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			want: fresh,
		},
		{
			name: "Import of a damaged image removes the temporary",
			steps: []step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "qemu-img info --output=json " + src, Out: qcowInfo},
				{Cmd: "lvcreate --type thin --virtualsize 4194304b --thinpool pdisk --name " + tmp + " vg0"},
				{Cmd: "qemu-img convert -q -n --target-is-zero -t none -f qcow2 -O raw " + src + " /dev/vg0/" + tmp,
					Err: &tool.Error{Program: "qemu-img", Status: 1, Stderr: "qemu-img: error while reading at byte 65536: Input/output error"}},
				{Cmd: "lvremove --force vg0/" + tmp},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			code: errs.Internal,
		},
		{
			name: "Import losing a race at the rename",
			steps: []step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "qemu-img info --output=json " + src, Out: qcowInfo},
				{Cmd: "lvcreate --type thin --virtualsize 4194304b --thinpool pdisk --name " + tmp + " vg0"},
				{Cmd: "qemu-img convert -q -n --target-is-zero -t none -f qcow2 -O raw " + src + " /dev/vg0/" + tmp},
				{Cmd: "lvchange --addtag pdisk_created_N vg0/" + tmp},
				{Cmd: "lvrename vg0 " + tmp + " " + id, Err: failure("lvrename", "already exists")},
				{Cmd: findCmd(id), Out: report(row(id, "4194304"))},
				{Cmd: "lvremove --force vg0/" + tmp},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			code: errs.Conflict,
		},
		{
			name: "Import of an image with a backing file",
			steps: []step{
				{Cmd: findCmd(id), Out: noLVs},
				{Cmd: "qemu-img info --output=json " + src, Out: `{"virtual-size": 1048576, "format": "qcow2", "backing-filename": "/etc/shadow"}`},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			code: errs.Invalid,
		},
		{
			name: "Capture",
			steps: steps([]step{
				{Cmd: findCmd(origin), Out: report(row(origin, "4194304"))},
				{Cmd: findCmd(id), Out: noLVs},
			}, fillSteps("raw", "/dev/vg0/"+origin), getSteps(row(id, "4194304"), thinStat)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Capture(ctx, id, origin) },
			want: fresh,
		},
		{
			name: "Grow",
			steps: steps(getSteps(row(id, "1073741824"), ""),
				[]step{{Cmd: "lvextend --size 3221225472b vg0/" + id}},
				getSteps(row(id, "3221225472"), "")),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Grow(ctx, id, 3) },
			want: backend.Volume{ID: id, Size: 3 << 30, Created: made},
		},
		{
			name:  "Grow to a smaller size",
			steps: getSteps(row(id, "3221225472"), ""),
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Grow(ctx, id, 2) },
			code:  errs.Invalid,
		},
		{
			name: "Delete",
			steps: []step{
				{Cmd: findCmd(id), Out: report(row(id, "4194304"))},
				{Cmd: "lvrename vg0 " + id + " " + tmp},
				{Cmd: poolCmd, Out: report(row(tmp, "4194304"), row(origin, "4194304"))},
				{Cmd: "lvremove --force vg0/" + tmp},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
		},
		{
			name: "Delete of an origin with a snapshot gives its name back",
			steps: []step{
				{Cmd: findCmd(origin), Out: report(row(origin, "4194304"))},
				{Cmd: "lvrename vg0 " + origin + " pdisk-tmp-T-" + origin},
				{Cmd: poolCmd, Out: report(row("pdisk-tmp-T-"+origin, "4194304"),
					lvRow{name: id, size: "4194304", origin: "pdisk-tmp-T-" + origin})},
				{Cmd: "lvrename vg0 pdisk-tmp-T-" + origin + " " + origin},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, origin) },
			code: errs.Conflict,
		},
		{
			name: "Delete of an open volume gives its name back",
			steps: []step{
				{Cmd: findCmd(id), Out: report(row(id, "4194304"))},
				{Cmd: "lvrename vg0 " + id + " " + tmp},
				{Cmd: poolCmd, Out: report(lvRow{name: tmp, size: "4194304", open: "open"})},
				{Cmd: "lvrename vg0 " + tmp + " " + id},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
			code: errs.Conflict,
		},
		{
			name:  "Delete of a missing volume",
			steps: []step{{Cmd: findCmd(id), Out: noLVs}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
		},
		{
			name: "Delete racing another Delete",
			steps: []step{
				{Cmd: findCmd(id), Out: report(row(id, "4194304"))},
				{Cmd: "lvrename vg0 " + id + " " + tmp, Err: failure("lvrename", "Existing logical volume \""+id+"\" not found")},
				{Cmd: findCmd(id), Out: noLVs},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
		},
		{
			name: "Locate an inactive volume",
			steps: []step{
				{Cmd: findCmd(id), Out: report(lvRow{name: id, size: "4194304"})},
				{Cmd: "lvchange --activate y --ignoreactivationskip vg0/" + id},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Locate(ctx, id) },
			want: backend.Location{Format: "raw", Path: "/dev/vg0/" + id},
		},
		{
			name:  "Locate an active volume",
			steps: []step{{Cmd: findCmd(id), Out: report(row(id, "4194304"))}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Locate(ctx, id) },
			want:  backend.Location{Format: "raw", Path: "/dev/vg0/" + id},
		},
		{
			name: "Check",
			steps: []step{{Cmd: `lvs --reportformat json -o lv_name,segtype -S lv_name="pdisk" vg0`,
				Out: `{"report": [{"lv": [{"lv_name":"pdisk", "segtype":"thin-pool"}]}]}`}},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Check(ctx) },
		},
		{
			name: "Check of a pool that is not thin",
			steps: []step{{Cmd: `lvs --reportformat json -o lv_name,segtype -S lv_name="pdisk" vg0`,
				Out: `{"report": [{"lv": [{"lv_name":"pdisk", "segtype":"linear"}]}]}`}},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Check(ctx) },
			code: errs.Unavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.call(t.Context(), scripted(t, tc.steps...))
			tooltest.Check(t, got, err, tc.want, tc.code)
		})
	}
}

func TestCancelledContextWins(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := scripted(t, step{Cmd: findCmd(id), Err: &tool.Error{Program: "lvs", Status: -1, Err: context.Canceled}})
	if _, err := b.Get(ctx, id); err != context.Canceled {
		t.Errorf("Get with a cancelled context = %v; want context.Canceled itself", err)
	}
}

// TestList reads the sample report of a thin pool (testdata/README.md).
func TestList(t *testing.T) {
	t.Parallel()
	lvs, err := os.ReadFile("testdata/lvs-thin.json")
	if err != nil {
		t.Fatal(err)
	}
	dm, err := os.ReadFile("testdata/dmsetup-thin.txt")
	if err != nil {
		t.Fatal(err)
	}
	b := scripted(t, step{Cmd: poolCmd, Out: string(lvs)}, step{Cmd: dmsetupCmd, Out: string(dm)})
	got, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Volume{
		{ID: origin, Size: 4 << 20, Allocated: 4096 * 512, Created: time.Unix(0, 1795252375250000000)},
		{ID: id, Size: 4 << 20, Allocated: 256 * 512, Origin: origin, Created: time.Date(2026, 11, 21, 9, 15, 3, 0, time.UTC)},
		{ID: "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", Size: 10 << 30, Created: time.Date(2026, 11, 21, 9, 20, 12, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v\nwant %+v (no temporaries, no foreign volumes)", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Size != want[i].Size || got[i].Allocated != want[i].Allocated ||
			got[i].Origin != want[i].Origin || !got[i].Created.Equal(want[i].Created) {
			t.Errorf("volume %d = %+v\n         want %+v", i, got[i], want[i])
		}
	}
}

// TestListDuringDelete checks that a snapshot whose origin a Delete holds
// under a temporary name still names its origin by id.
func TestListDuringDelete(t *testing.T) {
	t.Parallel()
	held := "pdisk-tmp-1795253100-3fa2c1d0-" + origin
	b := scripted(t,
		step{Cmd: poolCmd, Out: report(row(held, "4194304"), lvRow{name: id, size: "4194304", origin: held})},
		step{Cmd: dmsetupCmd})
	got, err := b.List(t.Context())
	if err != nil || len(got) != 1 || got[0].Origin != origin {
		t.Errorf("List = %+v, %v; want only %s, with origin %s", got, err, id, origin)
	}
}

func TestRemoveTemp(t *testing.T) {
	t.Parallel()
	now := time.Unix(1795260000, 0)
	old := func(id string) string { return tool.TempName(id, now.Add(-2*time.Hour)) }
	abandoned, interrupted, fresh := old(id), old(origin), tool.TempName("9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", now)
	child := "2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
	b := scripted(t,
		step{Cmd: poolCmd, Out: report(row(abandoned, "4194304"), row(interrupted, "4194304"),
			lvRow{name: child, size: "4194304", origin: interrupted}, row(fresh, "4194304"))},
		step{Cmd: "lvremove --force vg0/" + normalize(abandoned)},
		step{Cmd: "lvrename vg0 " + normalize(interrupted) + " " + origin})
	b.now = func() time.Time { return now }
	removed, err := b.RemoveTemp(t.Context(), time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != abandoned {
		t.Errorf("RemoveTemp = %v, %v; want [%s]", removed, err, abandoned)
	}
}

// TestParseRealReport reads lvs output captured on this development machine
// (testdata/README.md): real lvs 2.03.16, without device-mapper.
func TestParseRealReport(t *testing.T) {
	t.Parallel()
	out, err := os.ReadFile("testdata/lvs-no-dm.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseLVs(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []lv{
		{name: "11111111-2222-4333-8444-555555555555", size: 16 << 20, created: time.Unix(0, 1795293855123456789)},
		{name: "pdisk-tmp-1763757849-0a1b2c3d-11111111-2222-4333-8444-555555555555", size: 8 << 20,
			created: time.Date(2026, 11, 21, 20, 53, 22, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("parseLVs = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].name != want[i].name || got[i].size != want[i].size || !got[i].created.Equal(want[i].created) ||
			got[i].active || got[i].open {
			t.Errorf("row %d = %+v\n   want %+v", i, got[i], want[i])
		}
	}
}

func TestParseLVsRefuses(t *testing.T) {
	t.Parallel()
	for _, out := range []string{
		"  Volume group \"vg0\" not found",
		`{"report": [{"lv": [{"lv_name": "x", "lv_size": "12.00m"}]}]}`,
	} {
		if _, err := parseLVs([]byte(out)); err == nil {
			t.Errorf("parseLVs(%q) accepted it", out)
		}
	}
	got, err := parseLVs([]byte(`{"report": [{"lv": [{"lv_name": "x", "lv_size": "4194304B", "lv_time": ""}]}]}`))
	if err != nil || len(got) != 1 || got[0].size != 4<<20 || !got[0].created.IsZero() {
		t.Errorf("parseLVs with a B suffix and no lv_time = %+v, %v", got, err)
	}
}

func TestParseThinStatus(t *testing.T) {
	t.Parallel()
	out, err := os.ReadFile("testdata/dmsetup-thin.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"vg0-root": 8388608 * 512,
		"vg0-0b6f4f5e--2a7c--4d0e--9c1a--3f2e1d0c9b8a":                                   4352 * 512,
		"vg0-6c1b2a9e--0f4d--4c3b--9a8e--1d2c3b4a5f60":                                   4096 * 512,
		"vg0-pdisk--tmp--1795253100--3fa2c1d0--2e4f6a8b--1c3d--4e5f--8a9b--0c1d2e3f4a5b": 0,
	}
	if got := parseThinStatus(out); !reflect.DeepEqual(got, want) {
		t.Errorf("parseThinStatus = %v\nwant %v", got, want)
	}
	if got := parseThinStatus([]byte("No devices found\n")); len(got) != 0 {
		t.Errorf("parseThinStatus of no devices = %v", got)
	}
}

func TestDMName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ vg, lv, want string }{
		{"vg0", "root", "vg0-root"},
		{"my-vg", "a-b", "my--vg-a--b"},
		{"vg", "x--y", "vg-x----y"},
	} {
		if got := dmName(tc.vg, tc.lv); got != tc.want {
			t.Errorf("dmName(%q, %q) = %q, want %q", tc.vg, tc.lv, got, tc.want)
		}
	}
}

func TestCreatedTag(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 9, 12, 55, 250, time.UTC)
	got, ok := parseCreatedTag(createdTag(at))
	if !ok || !got.Equal(at) {
		t.Errorf("parseCreatedTag(createdTag(%v)) = %v, %v", at, got, ok)
	}
	for _, tag := range []string{"", "pdisk_created_", "pdisk_created_x", "pdisk_created_-5", "other_1795252375"} {
		if _, ok := parseCreatedTag(tag); ok {
			t.Errorf("parseCreatedTag accepted %q", tag)
		}
	}
}
