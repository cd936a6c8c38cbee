package proto_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates every .pb.go into a temporary
// directory and fails if the committed files differ in any byte, are
// missing or have no .proto any more. Without the pinned tools it fails
// rather than skips, so a stale tree cannot pass unnoticed; set
// STRATUS_SKIP_PROTO_DRIFT=1 to skip it deliberately.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	t.Parallel()
	if os.Getenv("STRATUS_SKIP_PROTO_DRIFT") == "1" {
		t.Skip("STRATUS_SKIP_PROTO_DRIFT=1: generated code not checked against the .proto files")
	}
	if err := findTools(); err != nil {
		t.Fatalf("%v: run `make deps` to install it (or set STRATUS_SKIP_PROTO_DRIFT=1 to skip this check)", err)
	}

	out := t.TempDir()
	cmd := exec.Command("bash", "generate.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh failed: %v\n%s", err, msg)
	}

	committed, err := pbFiles(".")
	if err != nil {
		t.Fatal(err)
	}
	generated, err := pbFiles(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) == 0 {
		t.Fatal("generate.sh produced no .pb.go file")
	}
	for _, f := range sorted(generated) {
		want := generated[f]
		got, ok := committed[f]
		switch {
		case !ok:
			t.Errorf("%s is not committed: run `make proto` and commit it", f)
		case !bytes.Equal(got, want):
			t.Errorf("%s differs from what its .proto generates (%s): run `make proto` and commit it", f, firstDiff(got, want))
		}
	}
	for _, f := range sorted(committed) {
		if _, ok := generated[f]; !ok {
			t.Errorf("%s is committed but no .proto generates it: delete it (`make proto` does)", f)
		}
	}
}

// findTools reports the first generator tool generate.sh would not find,
// looking where it looks.
func findTools() error {
	if p := os.Getenv("PROTOC"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("protoc not found at PROTOC=%s", p)
		}
	} else if _, err := exec.LookPath("protoc"); err != nil {
		return fmt.Errorf("protoc not found in PATH (Debian package protobuf-compiler)")
	}
	plugin := os.Getenv("PROTOC_GEN_GO")
	if plugin == "" {
		plugin = filepath.Join("..", "bin", "tools", "protoc-gen-go")
	}
	if _, err := os.Stat(plugin); err == nil {
		return nil
	}
	if _, err := exec.LookPath("protoc-gen-go"); err != nil {
		return fmt.Errorf("protoc-gen-go not found at %s nor in PATH", plugin)
	}
	return nil
}

// pbFiles reads every .pb.go under root/stratus, keyed by slash path
// relative to root.
func pbFiles(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(root, "stratus"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading generated files under %s: %w", root, err)
	}
	return files, nil
}

func sorted(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// firstDiff describes the first line where committed and generated differ.
func firstDiff(committed, generated []byte) string {
	c := strings.Split(string(committed), "\n")
	g := strings.Split(string(generated), "\n")
	for i := 0; i < len(c) || i < len(g); i++ {
		var cl, gl string
		if i < len(c) {
			cl = c[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if cl != gl || i >= len(c) || i >= len(g) {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, cl, gl)
		}
	}
	return "same lines, different bytes"
}
