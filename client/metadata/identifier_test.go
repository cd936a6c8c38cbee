package metadata

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// bigIdentifier computes an identifier as REFERENCE.md defines it, with
// integer arithmetic rather than the base64 shortcut Identifier takes.
func bigIdentifier(sum []byte) string {
	n := new(big.Int).SetBytes(sum)
	digits := make([]byte, IdentifierLength)
	sixtyFour := big.NewInt(64)
	mod := new(big.Int)
	for i := IdentifierLength - 1; i >= 0; i-- {
		n.DivMod(n, sixtyFour, mod)
		digits[i] = alphabet[mod.Int64()]
	}
	return string(digits)
}

// commandSum runs one of coreutils' *sum commands on a file and returns
// the hexadecimal digest it prints.
func commandSum(t testing.TB, command, path string) string {
	t.Helper()
	out, err := exec.Command(command, path).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", command, path, err)
	}
	sum, _, _ := strings.Cut(string(out), " ")
	return sum
}

func TestIdentifierReferenceVector(t *testing.T) {
	t.Parallel()
	const id = "BEE8-MMAw-Lk_IgsEExAy3d9R8h"
	sum, err := SHA1Of(id)
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(sum[:])
	// REFERENCE.md gives the first 8 digits; the rest is the SHA-1 of the
	// original Marketplace's test entry with this identifier.
	if want := "1104f3e30c030f8b93f220b04131032dddf51f21"; got != want {
		t.Fatalf("SHA1Of(%s) = %s, want %s", id, got, want)
	}
	if !strings.HasPrefix(got, "1104f3e3") {
		t.Fatalf("SHA1Of(%s) = %s, want 1104f3e3…", id, got)
	}
	if back := Identifier(sum); back != id {
		t.Fatalf("Identifier(%s) = %s, want %s", got, back, id)
	}
	if big := bigIdentifier(sum[:]); big != id {
		t.Fatalf("integer arithmetic gives %s, want %s", big, id)
	}
}

// TestIdentifierFromFiles checks identifiers of files against the SHA-1
// that sha1sum computes, including a digest with a leading zero byte,
// which must pad with A.
func TestIdentifierFromFiles(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	random := make([]byte, 3<<20+7)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	// Find contents whose SHA-1 starts with a zero byte (1 in 256).
	var leadingZero []byte
	for i := 0; ; i++ {
		b := []byte("leading zero " + strings.Repeat("x", i))
		if s := sha1.Sum(b); s[0] == 0 {
			leadingZero = b
			break
		}
	}
	files := map[string][]byte{
		"empty":        nil,
		"hello":        []byte("hello\n"),
		"random":       random,
		"leading-zero": leadingZero,
	}
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		want := commandSum(t, "sha1sum", path)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Digest(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(d.SHA1[:]); got != want {
			t.Errorf("%s: SHA-1 %s, sha1sum says %s", name, got, want)
		}
		id := d.Identifier()
		wantSum, _ := hex.DecodeString(want)
		if big := bigIdentifier(wantSum); id != big {
			t.Errorf("%s: identifier %s, integer arithmetic gives %s", name, id, big)
		}
		if !ValidIdentifier(id) {
			t.Errorf("%s: identifier %s is not valid", name, id)
		}
		back, err := SHA1Of(id)
		if err != nil || !bytes.Equal(back[:], wantSum) {
			t.Errorf("%s: SHA1Of(%s) = %x, %v; want %s", name, id, back, err, want)
		}
		if name == "leading-zero" && !strings.HasPrefix(id, "A") {
			t.Errorf("%s: identifier %s of SHA-1 %s does not start with A", name, id, want)
		}
		t.Logf("%s: sha1 %s identifier %s", name, want, id)
	}
}

func TestIdentifierRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewChaCha8([32]byte{2}))
	edges := [][20]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for range 1000 {
		var s [20]byte
		for i := range s {
			s[i] = byte(r.Uint32())
		}
		edges = append(edges, s)
	}
	for _, s := range edges {
		id := Identifier(s)
		if big := bigIdentifier(s[:]); id != big {
			t.Fatalf("Identifier(%x) = %s, integer arithmetic gives %s", s, id, big)
		}
		back, err := SHA1Of(id)
		if err != nil || back != s {
			t.Fatalf("SHA1Of(Identifier(%x)) = %x, %v", s, back, err)
		}
	}
	if id := Identifier([20]byte{}); id != strings.Repeat("A", 27) {
		t.Errorf("Identifier(0) = %s", id)
	}
	if id := Identifier(edges[1]); id != "P"+strings.Repeat("_", 26) {
		t.Errorf("Identifier(2^160-1) = %s", id)
	}
}

func TestSHA1OfRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"BEE8-MMAw-Lk_IgsEExAy3d9R8h", true},
		{"P__________________________", true},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAA", true},
		{"Q__________________________", false}, // 2^160: one bit too many
		{"_AAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"BEE8-MMAw-Lk_IgsEExAy3d9R8", false},   // 26
		{"BEE8-MMAw-Lk_IgsEExAy3d9R8hh", false}, // 28
		{"BEE8+MMAw-Lk_IgsEExAy3d9R8h", false},  // standard base64
		{"BEE8/MMAw-Lk_IgsEExAy3d9R8h", false},
		{"BEE8=MMAw-Lk_IgsEExAy3d9R8h", false},
		{"BEE8 MMAw-Lk_IgsEExAy3d9R8h", false},
		{"BEE8-MMAw-Lk_IgsEExAy3d9R8\u00e9", false},
		{"", false},
	} {
		_, err := SHA1Of(tc.id)
		if (err == nil) != tc.ok || ValidIdentifier(tc.id) != tc.ok {
			t.Errorf("%q: SHA1Of error %v, ValidIdentifier %v; want ok=%v", tc.id, err, ValidIdentifier(tc.id), tc.ok)
		}
	}
}
