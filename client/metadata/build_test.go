package metadata

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// compress writes path.ext with a real compressor.
func compress(t *testing.T, path, command string) string {
	t.Helper()
	ext := map[string]string{"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[command]
	run(t, command, "-k", "-f", path)
	return path + ext
}

func buildOptions(now time.Time) BuildOptions {
	return BuildOptions{
		Email:     "jane@example.org",
		OS:        "debian",
		OSVersion: "12",
		OSArch:    "x86_64",
		Locations: []string{"https://example.org/image"},
		Now:       now,
	}
}

func buildFile(t *testing.T, path string, opts BuildOptions) (*Entry, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Build(opts, f)
}

// TestBuildImages builds entries of images made by qemu-img, gzip, bzip2
// and xz, and checks the detected format and compression and the
// checksums against coreutils.
func TestBuildImages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	writeRandom(t, raw, 3<<20, 7)
	small := filepath.Join(dir, "small.iso")
	if err := os.WriteFile(small, []byte("Flora and Fauna\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, f := range []string{"qcow2", "vmdk", "vdi", "vhdx"} {
		path := filepath.Join(dir, "disk."+f)
		run(t, "qemu-img", "create", "-q", "-f", f, path, "64M")
		images[f] = path
	}
	now := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		path, format, compression string
	}{
		{raw, "raw", "none"},
		{images["qcow2"], "qcow2", "none"},
		{images["vmdk"], "vmdk", "none"},
		{images["vdi"], "vdi", "none"},
		{images["vhdx"], "vhdx", "none"},
		{compress(t, raw, "gzip"), "raw", "gz"},
		{compress(t, images["qcow2"], "gzip"), "qcow2", "gz"},
		{compress(t, images["qcow2"], "bzip2"), "qcow2", "bz2"},
		{compress(t, raw, "bzip2"), "raw", "bz2"},
		{compress(t, small, "gzip"), "raw", "gz"},
		{small, "raw", "none"},
	} {
		name := filepath.Base(tc.path)
		e, err := buildFile(t, tc.path, buildOptions(now))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if e.Format != tc.format || e.Compression != tc.compression {
			t.Errorf("%s: format %q compression %q, want %q %q", name, e.Format, e.Compression, tc.format, tc.compression)
		}
		info, _ := os.Stat(tc.path)
		if e.Bytes != info.Size() {
			t.Errorf("%s: bytes %d, file has %d", name, e.Bytes, info.Size())
		}
		for _, c := range []struct{ algorithm, command string }{
			{AlgorithmMD5, "md5sum"}, {AlgorithmSHA1, "sha1sum"}, {AlgorithmSHA256, "sha256sum"}, {AlgorithmSHA512, "sha512sum"},
		} {
			if got, want := e.Checksum(c.algorithm), commandSum(t, c.command, tc.path); got != want {
				t.Errorf("%s: %s %s, %s says %s", name, c.algorithm, got, c.command, want)
			}
		}
		if sum, err := SHA1Of(e.Identifier); err != nil || e.Checksum(AlgorithmSHA1) != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: identifier %s does not give the SHA-1 (%v)", name, e.Identifier, err)
		}
	}

	// xz is not read: its format must be given.
	xz := compress(t, images["qcow2"], "xz")
	if _, err := buildFile(t, xz, buildOptions(now)); !slices.Equal(rules(err), []string{RuleKnownFormat}) {
		t.Errorf("xz without a format: %v", err)
	}
	opts := buildOptions(now)
	opts.Format = "qcow2"
	if e, err := buildFile(t, xz, opts); err != nil || e.Format != "qcow2" || e.Compression != "xz" {
		t.Errorf("xz with a format: %+v, %v", e, err)
	}
}

func TestBuildRefusesContradictions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	qcow2 := filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", qcow2, "64M")
	gz := compress(t, qcow2, "gzip")
	now := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, path, format, compression, rule string
	}{
		{"gz said none", gz, "", "none", RuleKnownCompression},
		{"qcow2 said gz", qcow2, "", "gz", RuleKnownCompression},
		{"qcow2 said raw", qcow2, "raw", "", RuleKnownFormat},
		{"qcow2.gz said raw", gz, "raw", "gz", RuleKnownFormat},
		{"agreeing", gz, "qcow2", "gz", ""},
	} {
		opts := buildOptions(now)
		opts.Format, opts.Compression = tc.format, tc.compression
		_, err := buildFile(t, tc.path, opts)
		if tc.rule == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !slices.Equal(rules(err), []string{tc.rule}) {
			t.Errorf("%s: %v, want rule %s", tc.name, err, tc.rule)
		}
	}
}

func TestBuildFields(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 31, 10, 0, 0, 123, time.FixedZone("CET", 3600))
	image := []byte("an image")

	e, err := Build(buildOptions(now), bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	// Six calendar months after 31 January is 31 July.
	if e.Created != "2026-01-31T09:00:00Z" || e.Valid != "2026-07-31T09:00:00Z" {
		t.Errorf("created %s valid %s", e.Created, e.Valid)
	}
	if e.Type != TypeMachine || e.Endorsement.Endorser.Email != "jane@example.org" || e.Endorsement.Created != "" {
		t.Errorf("type %q endorsement %+v", e.Type, e.Endorsement)
	}
	if e.Status(now) != StatusValid {
		t.Errorf("status %s", e.Status(now))
	}

	opts := buildOptions(now)
	opts.Validity = 48 * time.Hour
	opts.Type, opts.OS, opts.OSVersion, opts.OSArch = TypeDisk, "", "", ""
	d, err := Build(opts, bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	if d.Valid != "2026-02-02T09:00:00Z" || d.OS != "none" || d.OSVersion != "none" || d.OSArch != "none" {
		t.Errorf("disk: valid %s os %q %q %q", d.Valid, d.OS, d.OSVersion, d.OSArch)
	}

	// Once endorsed, a built entry is valid.
	ca := newCA(t, caName())
	if err := Endorse(e, ca.issue(t, janeName(), "jane@example.org"), now); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(now); err != nil {
		t.Errorf("built and endorsed entry: %v", err)
	}

	for _, tc := range []struct {
		name   string
		change func(*BuildOptions)
		rules  []string
	}{
		{"bad tag", func(o *BuildOptions) { o.Tag = "my image" }, []string{RuleTagSyntax}},
		{"no location", func(o *BuildOptions) { o.Locations = nil }, []string{RuleRequired}},
		{"no e-mail", func(o *BuildOptions) { o.Email = "" }, []string{RuleRequired}},
		{"machine without os", func(o *BuildOptions) { o.OS = "" }, []string{RuleRequired}},
		{"unknown type", func(o *BuildOptions) { o.Type = "vm" }, []string{RuleKnownType}},
		{"bad location and e-mail", func(o *BuildOptions) { o.Locations = []string{"x"}; o.Email = "x" }, []string{RuleLocationURL, RuleEmailSyntax}},
	} {
		opts := buildOptions(now)
		tc.change(&opts)
		e, err := Build(opts, bytes.NewReader(image))
		if e != nil || !slices.Equal(rules(err), tc.rules) {
			t.Errorf("%s: entry %v, error %v; want rules %v", tc.name, e != nil, err, tc.rules)
		}
	}

	opts = buildOptions(now)
	opts.Validity = -time.Hour
	if _, err := Build(opts, bytes.NewReader(image)); err == nil {
		t.Error("negative validity accepted")
	}
	boom := errors.New("disk on fire")
	if _, err := Build(buildOptions(now), &failingReader{left: 5 << 20, err: boom}); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}
