package gateway

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"stratuslab.dev/platform/errs"
)

// ImagesPrefix is where the gateway serves the site's image files: the
// locations of the Marketplace entries a site publishes for its own images
// (the all-in-one's seed catalogue), which pdisk's image cache downloads
// like any other http(s) location.
const ImagesPrefix = "/images/"

// ImagesDirName is the directory, in the data directory, whose files the
// gateway serves under ImagesPrefix.
const ImagesDirName = "images"

// siteImages serves the regular files directly in dir, read-only and to
// anyone: images are public, as the Marketplace entries naming them are.
// Nothing else is served: no sub-directory, no hidden file, no listing,
// and no path out of dir, even through a symbolic link (os.Root). Range
// requests and conditional requests are answered by http.ServeContent,
// so an interrupted download resumes.
func siteImages(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		name := strings.TrimPrefix(r.URL.Path, ImagesPrefix)
		f, err := openImage(dir, name)
		if err != nil {
			writeError(w, err)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			writeError(w, errs.Errorf(errs.Internal, "The image %s cannot be read.", quote(name)))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		// The same name may hold a rebuilt image later: caches revalidate
		// (Last-Modified) rather than keep stale bytes.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, fi.ModTime(), f)
	})
}

// openImage opens the regular file name directly in dir, or says why
// nothing is served under that name.
func openImage(dir, name string) (*os.File, error) {
	missing := errs.Errorf(errs.NotFound, "No site image is called %s; images are served as %s<file name>.", quote(name), ImagesPrefix)
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) || dir == "" {
		return nil, missing
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missing
	} else if err != nil {
		return nil, errs.Errorf(errs.Internal, "The site images cannot be read.")
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		// Not there, or a link leading out of dir: the same answer, so
		// that nothing outside dir can be probed.
		return nil, missing
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, missing
	}
	return f, nil
}
