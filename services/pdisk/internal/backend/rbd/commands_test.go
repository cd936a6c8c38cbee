package rbd

// These tests check the command lines the backend builds and how it reads
// the answers, with a scripted runner that runs nothing (tooltest) and
// samples of rbd's JSON output (testdata/README.md). They show that the
// backend asks rbd and qemu-img for the right things in the right order and
// handles their failures; whether a Ceph cluster then does what is asked is
// the contract suite's business (TestContract).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
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
	tmp    = "pdisk-tmp-T-" + id
)

type step = tooltest.Step

var timeRE = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z`)

// normalize replaces the random parts of a command line: temporary names
// become pdisk-tmp-T-<id> and RFC 3339 times TIME.
func normalize(cmd string) string {
	return timeRE.ReplaceAllString(tooltest.NormalizeTemp(cmd), "TIME")
}

// scripted returns a backend on pool volumes (or on cfg, if given) whose
// runner expects exactly steps, in order.
func scripted(t *testing.T, cfg *Config, steps ...step) *Backend {
	t.Helper()
	c := Config{Pool: "volumes"}
	if cfg != nil {
		c = *cfg
	}
	c.Runner = tooltest.Script(t, normalize, steps...)
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// status is how a runner reports rbd's exit status, the errno of what
// failed.
func status(n int, stderr string) error { return tooltest.Failure("rbd", n, stderr) }

func testdata(t *testing.T, name string) string {
	t.Helper()
	out, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// infoJSON is rbd info --format json of a standalone image.
func infoJSON(name string, size int64) string {
	return fmt.Sprintf(`{"name":%q,"id":"2b3c4d5e6f70","size":%d,"objects":1,"order":22,"object_size":4194304,`+
		`"snapshot_count":0,"block_name_prefix":"rbd_data.2b3c4d5e6f70","format":2,"features":["layering"],`+
		`"op_features":[],"flags":[],"create_timestamp":"Sat Nov 21 09:15:02 2026"}`, name, size)
}

func duJSON(name string, used int64) string {
	return fmt.Sprintf(`{"images":[{"name":%q,"id":"2b3c4d5e6f70","provisioned_size":4194304,"used_size":%d}]}`, name, used)
}

var (
	noSuchImage = status(enoent, "rbd: error opening image x: (2) No such file or directory")
	metaJSON    = `{"pdisk.created":"2026-11-21T09:15:02.5Z"}`
	published   = time.Date(2026, 11, 21, 9, 15, 2, 500_000_000, time.UTC)
)

// getSteps are the commands of a Get of name.
func getSteps(name, info string, used int64) []step {
	return []step{
		{Cmd: "rbd info --format json volumes/" + name, Out: info},
		{Cmd: "rbd image-meta list --format json volumes/" + name, Out: metaJSON},
		{Cmd: "rbd du --format json --merge-snapshots volumes/" + name, Out: duJSON(name, used)},
	}
}

// cloneSteps are the commands that check origin and id and clone a new
// protected snapshot of origin as the temporary of id.
func cloneSteps() []step {
	snapshot := "volumes/" + origin + "@" + tmp
	return []step{
		{Cmd: "rbd info --format json volumes/" + origin, Out: infoJSON(origin, 4<<20)},
		{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
		{Cmd: "rbd snap create --no-progress " + snapshot},
		{Cmd: "rbd snap protect " + snapshot},
		{Cmd: "rbd clone " + snapshot + " volumes/" + tmp},
	}
}

// deleteSteps are the first commands of a Delete of name, which rbd info
// describes as info: the rename to its temporary, whose clones rbd children
// lists as children.
func deleteSteps(name, info, children string) []step {
	held := "volumes/pdisk-tmp-T-" + name
	return []step{
		{Cmd: "rbd info --format json volumes/" + name, Out: info},
		{Cmd: "rbd rename volumes/" + name + " " + held},
		{Cmd: "rbd children --format json " + held, Out: children},
	}
}

func steps(groups ...[]step) []step { return slices.Concat(groups...) }

func TestCommandLines(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(src, []byte("not read: qemu-img info is scripted"), 0o600); err != nil {
		t.Fatal(err)
	}
	rawInfo := `{"virtual-size": 4194304, "filename": "` + src + `", "format": "raw"}`
	cloneInfo := testdata(t, "info-clone.json")
	site := &Config{Pool: "volumes", Namespace: "pdisk", User: "pdisk", ConfFile: "/etc/ceph/site.conf"}
	plain := backend.Volume{ID: id, Size: 4 << 20, Allocated: 4 << 20, Created: published}
	snapshot := `volumes/` + origin + `@` + tmp

	for _, tc := range []struct {
		name  string
		cfg   *Config
		steps []step
		call  func(ctx context.Context, b *Backend) (any, error)
		want  any
		code  errs.Code
	}{
		{
			name: "Create",
			steps: steps([]step{
				{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
				{Cmd: "rbd create --size 3221225472B --no-progress volumes/" + tmp},
				{Cmd: "rbd image-meta set volumes/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd rename volumes/" + tmp + " volumes/" + id},
			}, getSteps(id, infoJSON(id, 3<<30), 0)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 3) },
			want: backend.Volume{ID: id, Size: 3 << 30, Created: published},
		},
		{
			name: "Create with a site's user, configuration and namespace",
			cfg:  site,
			steps: steps([]step{
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf info --format json volumes/pdisk/" + id, Err: noSuchImage},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf create --size 1073741824B --no-progress volumes/pdisk/" + tmp},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf image-meta set volumes/pdisk/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf rename volumes/pdisk/" + tmp + " volumes/pdisk/" + id},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf info --format json volumes/pdisk/" + id, Out: infoJSON(id, 1<<30)},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf image-meta list --format json volumes/pdisk/" + id, Out: metaJSON},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf du --format json --merge-snapshots volumes/pdisk/" + id, Out: duJSON(id, 0)},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			want: backend.Volume{ID: id, Size: 1 << 30, Created: published},
		},
		{
			name: "Create losing a race at the rename",
			steps: []step{
				{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
				{Cmd: "rbd create --size 1073741824B --no-progress volumes/" + tmp},
				{Cmd: "rbd image-meta set volumes/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd rename volumes/" + tmp + " volumes/" + id, Err: status(eexist, "rbd: rename error: (17) File exists")},
				{Cmd: "rbd rm --no-progress volumes/" + tmp},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			code: errs.Conflict,
		},
		{
			name:  "Create over an existing volume",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id, Out: infoJSON(id, 1<<30)}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			code:  errs.Conflict,
		},
		{
			name: "Create when the cluster does not answer",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id,
				Err: status(etimedout, "rbd: couldn't connect to the cluster!")}},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Create(ctx, id, 1) },
			code: errs.Unavailable,
		},
		{
			name: "Snapshot",
			steps: steps(cloneSteps(), []step{
				{Cmd: "rbd image-meta set volumes/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd rename volumes/" + tmp + " volumes/" + id},
			}, getSteps(id, cloneInfo, 0)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			want: backend.Volume{ID: id, Size: 4 << 20, Origin: origin, Created: published},
		},
		{
			name: "Snapshot of an origin a Delete renamed away",
			steps: []step{
				{Cmd: "rbd info --format json volumes/" + origin, Out: infoJSON(origin, 4<<20)},
				{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
				{Cmd: "rbd snap create --no-progress " + snapshot, Err: noSuchImage},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			code: errs.NotFound,
		},
		{
			name: "Snapshot whose clone a Delete refused, then removed the origin",
			steps: []step{
				{Cmd: "rbd info --format json volumes/" + origin, Out: infoJSON(origin, 4<<20)},
				{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
				{Cmd: "rbd snap create --no-progress " + snapshot},
				{Cmd: "rbd snap protect " + snapshot},
				{Cmd: "rbd clone " + snapshot + " volumes/" + tmp, Err: status(22, "rbd: clone error: (22) Invalid argument")},
				{Cmd: "rbd info --format json volumes/" + origin, Err: noSuchImage},
				{Cmd: "rbd snap unprotect " + snapshot, Err: noSuchImage},
				{Cmd: "rbd snap rm --no-progress " + snapshot, Err: noSuchImage},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Snapshot(ctx, id, origin) },
			code: errs.NotFound,
		},
		{
			name: "Import",
			cfg:  site,
			steps: []step{
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf info --format json volumes/pdisk/" + id, Err: noSuchImage},
				{Cmd: "qemu-img info --output=json " + src, Out: rawInfo},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf create --size 4194304B --no-progress volumes/pdisk/" + tmp},
				{Cmd: "qemu-img convert -q -n --target-is-zero -t none -f raw -O raw " + src +
					" rbd:volumes/pdisk/" + tmp + ":id=pdisk:conf=/etc/ceph/site.conf"},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf image-meta set volumes/pdisk/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf rename volumes/pdisk/" + tmp + " volumes/pdisk/" + id},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf info --format json volumes/pdisk/" + id, Out: infoJSON(id, 4<<20)},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf image-meta list --format json volumes/pdisk/" + id, Out: metaJSON},
				{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf du --format json --merge-snapshots volumes/pdisk/" + id, Out: duJSON(id, 4<<20)},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			want: plain,
		},
		{
			name: "Import of a damaged image removes the temporary",
			steps: []step{
				{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage},
				{Cmd: "qemu-img info --output=json " + src, Out: rawInfo},
				{Cmd: "rbd create --size 4194304B --no-progress volumes/" + tmp},
				{Cmd: "qemu-img convert -q -n --target-is-zero -t none -f raw -O raw " + src + " rbd:volumes/" + tmp,
					Err: tooltest.Failure("qemu-img", 1, "qemu-img: error while reading at byte 0: Input/output error")},
				{Cmd: "rbd rm --no-progress volumes/" + tmp},
			},
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Import(ctx, id, src) },
			code: errs.Internal,
		},
		{
			name: "Capture",
			steps: steps(cloneSteps(), []step{
				{Cmd: "rbd flatten --no-progress volumes/" + tmp},
				{Cmd: "rbd snap unprotect " + snapshot},
				{Cmd: "rbd snap rm --no-progress " + snapshot},
				{Cmd: "rbd image-meta set volumes/" + tmp + " pdisk.created TIME"},
				{Cmd: "rbd rename volumes/" + tmp + " volumes/" + id},
			}, getSteps(id, infoJSON(id, 4<<20), 4<<20)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Capture(ctx, id, origin) },
			want: plain,
		},
		{
			name: "Capture failing to flatten removes the clone, then the snapshot",
			steps: steps(cloneSteps(), []step{
				{Cmd: "rbd flatten --no-progress volumes/" + tmp, Err: status(28, "rbd: flatten error: (28) No space left on device")},
				{Cmd: "rbd rm --no-progress volumes/" + tmp},
				{Cmd: "rbd snap unprotect " + snapshot},
				{Cmd: "rbd snap rm --no-progress " + snapshot},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Capture(ctx, id, origin) },
			code: errs.Internal,
		},
		{
			name: "Grow",
			steps: steps([]step{
				{Cmd: "rbd info --format json volumes/" + id, Out: infoJSON(id, 1<<30)},
				{Cmd: "rbd resize --size 3221225472B --no-progress volumes/" + id},
			}, getSteps(id, infoJSON(id, 3<<30), 0)),
			call: func(ctx context.Context, b *Backend) (any, error) { return b.Grow(ctx, id, 3) },
			want: backend.Volume{ID: id, Size: 3 << 30, Created: published},
		},
		{
			name:  "Grow to a smaller size",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id, Out: infoJSON(id, 3<<30)}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Grow(ctx, id, 2) },
			code:  errs.Invalid,
		},
		{
			name: "Delete of a clone removes the snapshot it came from",
			steps: steps(deleteSteps(id, cloneInfo, "[]"), []step{
				{Cmd: "rbd snap ls --format json volumes/" + tmp, Out: "[]"},
				{Cmd: "rbd rm --no-progress volumes/" + tmp},
				{Cmd: "rbd snap unprotect " + snapshot},
				{Cmd: "rbd snap rm --no-progress " + snapshot},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
		},
		{
			name: "Delete of an origin with clones gives its name back",
			steps: steps(deleteSteps(origin, infoJSON(origin, 4<<20), testdata(t, "children.json")), []step{
				{Cmd: "rbd rename volumes/pdisk-tmp-T-" + origin + " volumes/" + origin},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, origin) },
			code: errs.Conflict,
		},
		{
			name: "Delete of an origin whose clones are gone drops its snapshots",
			steps: steps(deleteSteps(origin, infoJSON(origin, 4<<20), "[]"), []step{
				{Cmd: "rbd snap ls --format json volumes/pdisk-tmp-T-" + origin, Out: testdata(t, "snap-ls.json")},
				{Cmd: "rbd snap unprotect volumes/pdisk-tmp-T-" + origin + "@pdisk-tmp-T-2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"},
				{Cmd: "rbd snap purge --no-progress volumes/pdisk-tmp-T-" + origin},
				{Cmd: "rbd rm --no-progress volumes/pdisk-tmp-T-" + origin},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, origin) },
		},
		{
			name: "Delete of an origin that got a clone after rbd children",
			steps: steps(deleteSteps(origin, infoJSON(origin, 4<<20), "[]"), []step{
				{Cmd: "rbd snap ls --format json volumes/pdisk-tmp-T-" + origin, Out: testdata(t, "snap-ls.json")},
				{Cmd: "rbd snap unprotect volumes/pdisk-tmp-T-" + origin + "@pdisk-tmp-T-2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
					Err: status(ebusy, "rbd: unprotecting snap failed: (16) Device or resource busy")},
				{Cmd: "rbd rename volumes/pdisk-tmp-T-" + origin + " volumes/" + origin},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, origin) },
			code: errs.Conflict,
		},
		{
			name: "Delete of an image in use",
			steps: steps(deleteSteps(id, infoJSON(id, 4<<20), "[]"), []step{
				{Cmd: "rbd snap ls --format json volumes/" + tmp, Out: "[]"},
				{Cmd: "rbd rm --no-progress volumes/" + tmp, Err: status(ebusy, "rbd: error: image still has watchers")},
				{Cmd: "rbd rename volumes/" + tmp + " volumes/" + id},
			}),
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
			code: errs.Conflict,
		},
		{
			name:  "Delete of a missing volume",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return nil, b.Delete(ctx, id) },
		},
		{
			name:  "Locate",
			cfg:   site,
			steps: []step{{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf info --format json volumes/pdisk/" + id, Out: infoJSON(id, 4<<20)}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Locate(ctx, id) },
			want:  backend.Location{Format: "raw", URL: "rbd:volumes/pdisk/" + id + ":id=pdisk:conf=/etc/ceph/site.conf"},
		},
		{
			name:  "Locate with the defaults",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id, Out: infoJSON(id, 4<<20)}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Locate(ctx, id) },
			want:  backend.Location{Format: "raw", URL: "rbd:volumes/" + id},
		},
		{
			name:  "Locate of a missing volume",
			steps: []step{{Cmd: "rbd info --format json volumes/" + id, Err: noSuchImage}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return b.Locate(ctx, id) },
			code:  errs.NotFound,
		},
		{
			name:  "Check",
			cfg:   site,
			steps: []step{{Cmd: "rbd --id pdisk --conf /etc/ceph/site.conf ls --format json --pool volumes --namespace pdisk", Out: "[]"}},
			call:  func(ctx context.Context, b *Backend) (any, error) { return nil, b.Check(ctx) },
		},
		{
			name: "Check of a missing pool",
			steps: []step{{Cmd: "rbd ls --format json --pool volumes",
				Err: status(enoent, "rbd: error opening pool 'volumes': (2) No such file or directory")}},
			call: func(ctx context.Context, b *Backend) (any, error) { return nil, b.Check(ctx) },
			code: errs.Unavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.call(t.Context(), scripted(t, tc.cfg, tc.steps...))
			tooltest.Check(t, got, err, tc.want, tc.code)
		})
	}
}

func TestCancelledContextWins(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := scripted(t, nil, step{Cmd: "rbd info --format json volumes/" + id, Err: &tool.Error{Program: "rbd", Status: -1, Err: context.Canceled}})
	if _, err := b.Get(ctx, id); err != context.Canceled {
		t.Errorf("Get with a cancelled context = %v; want context.Canceled itself", err)
	}
}

// TestList reads the sample outputs in testdata. The image metadata is read
// by several rbd processes at once, so those commands are answered by
// image and checked as a set.
func TestList(t *testing.T) {
	t.Parallel()
	ls, du := testdata(t, "ls-l.json"), testdata(t, "du.json")
	blank := "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
	var mu sync.Mutex
	var metaCalls []string
	r := &tool.Recorder{Answer: func(argv []string) ([]byte, error) {
		switch cmd := strings.Join(argv, " "); {
		case cmd == "rbd ls -l --format json --pool volumes":
			return []byte(ls), nil
		case cmd == "rbd du --format json --merge-snapshots --pool volumes":
			return []byte(du), nil
		case strings.HasPrefix(cmd, "rbd image-meta list --format json volumes/"):
			mu.Lock()
			metaCalls = append(metaCalls, cmd)
			mu.Unlock()
			switch {
			case strings.HasSuffix(cmd, blank):
				return nil, nil // no metadata: made by something else
			case strings.HasSuffix(cmd, id):
				return nil, noSuchImage // deleted since rbd ls
			}
			return []byte(metaJSON), nil
		}
		t.Errorf("unexpected command %q", argv)
		return nil, noSuchImage
	}}
	b, err := New(Config{Pool: "volumes", Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	got, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Volume{
		{ID: origin, Size: 4 << 20, Allocated: 4 << 20, Created: published},
		{ID: blank, Size: 10 << 30, Allocated: 32 << 20, Created: now},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %+v\nwant %+v (no temporaries, no foreign images, not the clone deleted meanwhile)", got, want)
	}
	slices.Sort(metaCalls)
	wantCalls := []string{
		"rbd image-meta list --format json volumes/" + id,
		"rbd image-meta list --format json volumes/" + origin,
		"rbd image-meta list --format json volumes/" + blank,
	}
	slices.Sort(wantCalls)
	if !slices.Equal(metaCalls, wantCalls) {
		t.Errorf("image-meta calls = %q\nwant %q", metaCalls, wantCalls)
	}
}

func TestListShowsClones(t *testing.T) {
	t.Parallel()
	ls := `[{"image":"` + id + `","size":4194304,"parent":{"pool":"volumes","pool_namespace":"","image":"` + origin + `","snapshot":"s"},"format":2},` +
		`{"image":"7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098","size":4194304,"parent":{"pool":"volumes","pool_namespace":"","image":"pdisk-tmp-1795240100-3fa2c1d0-` + origin + `","snapshot":"s"},"format":2},` +
		`{"image":"2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b","size":4194304,"parent":{"pool":"images","pool_namespace":"","image":"` + origin + `","snapshot":"s"},"format":2}]`
	r := &tool.Recorder{Answer: func(argv []string) ([]byte, error) {
		switch argv[1] {
		case "ls":
			return []byte(ls), nil
		case "du":
			return []byte(`{"images":[]}`), nil
		}
		return []byte(metaJSON), nil
	}}
	b, err := New(Config{Pool: "volumes", Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	origins := map[string]string{}
	for _, v := range got {
		origins[v.ID] = v.Origin
	}
	want := map[string]string{
		id:                                     origin, // a clone
		"7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098": origin, // its origin held by a Delete under a temporary name
		"2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b": "",     // cloned from another pool: not the backend's origin
	}
	if !reflect.DeepEqual(origins, want) {
		t.Errorf("origins = %v, want %v", origins, want)
	}
}

func TestRemoveTemp(t *testing.T) {
	t.Parallel()
	// In ls-l.json: a temporary image from an import (no clones), an
	// orphan snapshot of the origin (its clone is gone), and a snapshot
	// with a clone, which stays.
	b := scripted(t, nil,
		step{Cmd: "rbd ls -l --format json --pool volumes", Out: testdata(t, "ls-l.json")},
		step{Cmd: "rbd snap ls --format json volumes/pdisk-tmp-T-7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098", Out: "[]"},
		step{Cmd: "rbd rm --no-progress volumes/pdisk-tmp-T-7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098"},
		step{Cmd: "rbd snap unprotect volumes/" + origin + "@pdisk-tmp-T-2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"},
		step{Cmd: "rbd snap rm --no-progress volumes/" + origin + "@pdisk-tmp-T-2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"},
	)
	b.now = func() time.Time { return time.Unix(1795260000, 0) }
	removed, err := b.RemoveTemp(t.Context(), time.Hour)
	want := []string{
		"pdisk-tmp-1795240100-3fa2c1d0-7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098",
		origin + "@pdisk-tmp-1795240000-00aa11bb-2e4f6a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
	}
	if err != nil || !slices.Equal(removed, want) {
		t.Errorf("RemoveTemp = %q, %v\nwant %q", removed, err, want)
	}
}

func TestRemoveTempRestoresInterruptedDelete(t *testing.T) {
	t.Parallel()
	held := "pdisk-tmp-1795240100-3fa2c1d0-" + origin
	ls := `[{"image":"` + held + `","size":4194304,"format":2},` +
		`{"image":"` + held + `","snapshot":"s","size":4194304,"format":2,"protected":"true"},` +
		`{"image":"` + id + `","size":4194304,"parent":{"pool":"volumes","pool_namespace":"","image":"` + held + `","snapshot":"s"},"format":2}]`
	b := scripted(t, nil,
		step{Cmd: "rbd ls -l --format json --pool volumes", Out: ls},
		step{Cmd: "rbd rename volumes/pdisk-tmp-T-" + origin + " volumes/" + origin},
	)
	b.now = func() time.Time { return time.Unix(1795260000, 0) }
	if removed, err := b.RemoveTemp(t.Context(), time.Hour); err != nil || len(removed) != 0 {
		t.Errorf("RemoveTemp = %q, %v; want nothing removed", removed, err)
	}
}

func TestParseUsage(t *testing.T) {
	t.Parallel()
	used, err := parseUsage([]byte(testdata(t, "du.json")))
	if err != nil {
		t.Fatal(err)
	}
	if used[origin] != 4<<20 || used[id] != 0 || used["vm-disk-1"] != 1258291200 || len(used) != 5 {
		t.Errorf("parseUsage = %v", used)
	}
	if _, err := parseUsage([]byte("rbd: du failed")); err == nil {
		t.Errorf("parseUsage accepted text that is not JSON")
	}
}

func TestParseCreated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		out  string
		want time.Time
		ok   bool
		bad  bool
	}{
		{out: testdata(t, "image-meta.json"), want: published, ok: true},
		{out: ""},
		{out: "\n"},
		{out: `{"conf_rbd_cache":"false"}`},
		{out: `{"pdisk.created":"yesterday"}`, bad: true},
		{out: `There are 0 metadata on this image.`, bad: true},
	} {
		got, ok, err := parseCreated([]byte(tc.out))
		if (err != nil) != tc.bad || ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseCreated(%q) = %v, %v, %v", tc.out, got, ok, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	if got := describe("pdisk-tmp-1795252600-77aa88bb-" + id); got != "volume "+id+", being made" {
		t.Errorf("describe of a temporary = %q", got)
	}
	if got := describe(id); got != id {
		t.Errorf("describe of a volume = %q", got)
	}
}
