package metadata

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Digests are the size and checksums of an image, as an entry records them.
type Digests struct {
	Bytes  int64
	MD5    [md5.Size]byte
	SHA1   [sha1.Size]byte
	SHA256 [sha256.Size]byte
	SHA512 [sha512.Size]byte
}

// Identifier is the Marketplace identifier of the image.
func (d Digests) Identifier() string { return Identifier(d.SHA1) }

// Checksums are the four checksums in the order Build writes them.
func (d Digests) Checksums() []Checksum {
	return []Checksum{
		{Algorithm: AlgorithmMD5, Value: hex.EncodeToString(d.MD5[:])},
		{Algorithm: AlgorithmSHA1, Value: hex.EncodeToString(d.SHA1[:])},
		{Algorithm: AlgorithmSHA256, Value: hex.EncodeToString(d.SHA256[:])},
		{Algorithm: AlgorithmSHA512, Value: hex.EncodeToString(d.SHA512[:])},
	}
}

// digestChunk is the read size. Large reads keep system calls and channel
// hand-offs a small part of the work.
const digestChunk = 1 << 20

// digestChunks is how many chunks are in flight between the reader and the
// hashes: enough that the reader is not waiting on the slowest hash after
// each chunk.
const digestChunks = 8

// Digest reads r to its end and returns its size, MD5, SHA-1, SHA-256 and
// SHA-512, reading it once. With more than one CPU the four hashes run in
// parallel goroutines, which is faster than one after the other (see
// BenchmarkDigest).
func Digest(r io.Reader) (Digests, error) {
	if runtime.GOMAXPROCS(0) > 1 {
		return digestParallel(r)
	}
	return digestSequential(r)
}

// digestSequential feeds each chunk to the four hashes in turn.
func digestSequential(r io.Reader) (Digests, error) {
	hs := newHashes()
	w := io.MultiWriter(hs[0], hs[1], hs[2], hs[3])
	n, err := io.CopyBuffer(w, onlyReader{r}, make([]byte, digestChunk))
	if err != nil {
		return Digests{}, fmt.Errorf("metadata: reading the image: %w", err)
	}
	return sums(n, hs), nil
}

// onlyReader hides a WriterTo (an *os.File has one), which would make
// CopyBuffer ignore the buffer and use small writes.
type onlyReader struct{ io.Reader }

// digestParallel reads chunks in this goroutine and gives each to four
// hashing goroutines; a chunk goes back to the free list when all four
// have hashed it.
func digestParallel(r io.Reader) (Digests, error) {
	type chunk struct {
		buf     []byte
		n       int
		pending atomic.Int32
	}
	hs := newHashes()
	free := make(chan *chunk, digestChunks)
	for range digestChunks {
		free <- &chunk{buf: make([]byte, digestChunk)}
	}
	var work [len(hs)]chan *chunk
	var wg sync.WaitGroup
	for i, h := range hs {
		work[i] = make(chan *chunk, digestChunks)
		wg.Go(func() {
			for c := range work[i] {
				h.Write(c.buf[:c.n])
				if c.pending.Add(-1) == 0 {
					free <- c
				}
			}
		})
	}
	var total int64
	var err error
	for {
		c := <-free
		var n int
		n, err = fill(r, c.buf)
		if n > 0 {
			total += int64(n)
			c.n = n
			c.pending.Store(int32(len(hs)))
			for _, w := range work {
				w <- c
			}
		}
		if err != nil {
			break
		}
	}
	for _, w := range work {
		close(w)
	}
	wg.Wait()
	if err != io.EOF {
		return Digests{}, fmt.Errorf("metadata: reading the image: %w", err)
	}
	return sums(total, hs), nil
}

// fill reads into buf until it is full or r fails; at the end of r it
// returns io.EOF itself (io.ReadFull would turn a short last read into
// io.ErrUnexpectedEOF, which could then not be told from a reader's own).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func newHashes() [4]hash.Hash {
	return [4]hash.Hash{md5.New(), sha1.New(), sha256.New(), sha512.New()}
}

func sums(n int64, hs [4]hash.Hash) Digests {
	d := Digests{Bytes: n}
	hs[0].Sum(d.MD5[:0])
	hs[1].Sum(d.SHA1[:0])
	hs[2].Sum(d.SHA256[:0])
	hs[3].Sum(d.SHA512[:0])
	return d
}
