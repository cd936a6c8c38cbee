package metadata

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// writeRandom writes size pseudo-random bytes to path.
func writeRandom(t testing.TB, path string, size int64, seed byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewChaCha8([32]byte{seed}))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		for i := 0; i < int(n); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < int(n); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDigestAgainstCoreutils compares both ways of hashing with md5sum,
// sha1sum, sha256sum and sha512sum, at sizes around the chunk size.
func TestDigestAgainstCoreutils(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	impls := map[string]func(io.Reader) (Digests, error){
		"parallel":   digestParallel,
		"sequential": digestSequential,
		"Digest":     Digest,
	}
	for i, size := range []int64{0, 1, 4095, digestChunk - 1, digestChunk, digestChunk + 1, digestChunks*digestChunk + 12345} {
		path := filepath.Join(dir, strconv.FormatInt(size, 10))
		writeRandom(t, path, size, byte(i))
		want := map[string]string{
			AlgorithmMD5:    commandSum(t, "md5sum", path),
			AlgorithmSHA1:   commandSum(t, "sha1sum", path),
			AlgorithmSHA256: commandSum(t, "sha256sum", path),
			AlgorithmSHA512: commandSum(t, "sha512sum", path),
		}
		for name, digest := range impls {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			d, err := digest(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", name, size, err)
			}
			if d.Bytes != size {
				t.Errorf("%s of %d bytes: Bytes = %d", name, size, d.Bytes)
			}
			cs := d.Checksums()
			if len(cs) != 4 {
				t.Fatalf("%d checksums", len(cs))
			}
			for _, c := range cs {
				if c.Value != want[c.Algorithm] {
					t.Errorf("%s of %d bytes: %s %s, coreutils says %s", name, size, c.Algorithm, c.Value, want[c.Algorithm])
				}
			}
			if d.Identifier() != Identifier(d.SHA1) {
				t.Errorf("Digests.Identifier differs from Identifier")
			}
		}
	}
}

// failingReader yields some bytes, then an error.
type failingReader struct {
	left int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, r.err
	}
	n := min(len(p), r.left)
	r.left -= n
	return n, nil
}

func TestDigestReportsReadErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	for name, digest := range map[string]func(io.Reader) (Digests, error){
		"parallel":   digestParallel,
		"sequential": digestSequential,
	} {
		for _, err := range []error{boom, io.ErrUnexpectedEOF} {
			_, got := digest(&failingReader{left: 3*digestChunk + 5, err: err})
			if !errors.Is(got, err) {
				t.Errorf("%s: error %v, want it to wrap %v", name, got, err)
			}
		}
	}
}

// BenchmarkDigest hashes a 256 MiB file (in the page cache after it is
// written) with Digest, and with sha1sum in the same loop, and reports
// both speeds; sub-benchmarks compare the parallel and sequential ways and
// SHA-1 alone in Go.
//
//	go test -run XXX -bench Digest -benchtime 5x ./metadata/
func BenchmarkDigest(b *testing.B) {
	const size = 256 << 20
	path := filepath.Join(b.TempDir(), "image")
	writeRandom(b, path, size, 42)
	hashFile := func(b *testing.B, digest func(io.Reader) (Digests, error)) Digests {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		d, err := digest(f)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	const mb = float64(size) / 1e6

	b.Run("Digest-vs-sha1sum", func(b *testing.B) {
		var ours, theirs time.Duration
		n := 0
		for b.Loop() {
			start := time.Now()
			d := hashFile(b, Digest)
			ours += time.Since(start)
			start = time.Now()
			sum := commandSum(b, "sha1sum", path)
			theirs += time.Since(start)
			if sum != hex.EncodeToString(d.SHA1[:]) {
				b.Fatalf("sha1sum says %s, Digest %x", sum, d.SHA1)
			}
			n++
		}
		b.ReportMetric(mb*float64(n)/ours.Seconds(), "Digest-MB/s")
		b.ReportMetric(mb*float64(n)/theirs.Seconds(), "sha1sum-MB/s")
	})
	for name, digest := range map[string]func(io.Reader) (Digests, error){
		"parallel":   digestParallel,
		"sequential": digestSequential,
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				hashFile(b, digest)
			}
		})
	}
	b.Run("sha1-only", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			hashFile(b, func(r io.Reader) (Digests, error) {
				h := sha1.New()
				_, err := io.CopyBuffer(h, onlyReader{r}, make([]byte, digestChunk))
				return Digests{}, err
			})
		}
	})
	b.Run("sha1sum", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if err := exec.Command("sha1sum", path).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
