package gateway

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSiteImages(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, ImagesDirName)
	image := make([]byte, 300<<10)
	if _, err := rand.Read(image); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"appliance.img":               image,
		".hidden":                     []byte("not served"),
		"sub/inner.img":               []byte("not served either"),
		filepath.Join("..", "secret"): []byte("outside the directory"),
		"appliance.img.inputs":        []byte("served: any regular file is"),
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"escape.img": filepath.Join(parent, "secret"), // leads out of dir
		"alias.img":  "appliance.img",                 // stays inside
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(Options{ImagesDir: dir}).Handler())
	defer srv.Close()

	for _, tc := range []struct {
		name, method, path, rangeHdr string
		status                       int
		body                         []byte // nil: not checked
		length                       int    // Content-Length; -1: not checked
	}{
		{"whole image", "GET", "/images/appliance.img", "", 200, image, len(image)},
		{"head", "HEAD", "/images/appliance.img", "", 200, []byte{}, len(image)},
		{"range", "GET", "/images/appliance.img", "bytes=1000-1999", 206, image[1000:2000], 1000},
		{"resume to the end", "GET", "/images/appliance.img", "bytes=300000-", 206, image[300000:], len(image) - 300000},
		{"link inside", "GET", "/images/alias.img", "", 200, image, len(image)},
		{"other file", "GET", "/images/appliance.img.inputs", "", 200, []byte("served: any regular file is"), -1},
		{"missing", "GET", "/images/nothing.img", "", 404, nil, -1},
		{"no listing", "GET", "/images/", "", 404, nil, -1},
		{"hidden file", "GET", "/images/.hidden", "", 404, nil, -1},
		{"directory", "GET", "/images/sub", "", 404, nil, -1},
		{"sub-directory file", "GET", "/images/sub/inner.img", "", 404, nil, -1},
		{"encoded slash", "GET", "/images/sub%2Finner.img", "", 404, nil, -1},
		{"encoded traversal", "GET", "/images/..%2Fsecret", "", 404, nil, -1},
		{"link out", "GET", "/images/escape.img", "", 404, nil, -1},
		{"write", "PUT", "/images/appliance.img", "", 405, nil, -1},
		{"delete", "DELETE", "/images/appliance.img", "", 405, nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rangeHdr != "" {
				req.Header.Set("Range", tc.rangeHdr)
			}
			// No credentials: images are public.
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.status, got)
			}
			if tc.body != nil && !bytes.Equal(got, tc.body) {
				t.Errorf("body of %d bytes differs from the %d expected", len(got), len(tc.body))
			}
			if tc.length >= 0 && resp.Header.Get("Content-Length") != strconv.Itoa(tc.length) {
				t.Errorf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), tc.length)
			}
			if tc.status >= 400 && (bytes.Contains(got, []byte("outside")) || bytes.Contains(got, []byte("not served"))) {
				t.Errorf("a refusal leaks a file: %s", got)
			}
			if tc.status == 200 && resp.Header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges %q, want bytes", resp.Header.Get("Accept-Ranges"))
			}
		})
	}

	// A gateway with no images directory, or one that does not exist,
	// serves nothing.
	for _, d := range []string{"", filepath.Join(parent, "none")} {
		rec := httptest.NewRecorder()
		New(Options{ImagesDir: d}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/images/appliance.img", nil))
		if rec.Code != 404 {
			t.Errorf("images dir %q: status %d, want 404", d, rec.Code)
		}
	}
}
