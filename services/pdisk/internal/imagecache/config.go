package imagecache

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Defaults of Config.
const (
	DefaultLease      = 30 * time.Second
	DefaultFailureTTL = time.Minute
	DefaultStall      = time.Minute
)

// Limits on requests.
const (
	// MaxImageID bounds image ids, in bytes.
	MaxImageID = 128
	// MaxURLs bounds the locations of one image.
	MaxURLs = 16
	// maxURL bounds one location, in bytes.
	maxURL = 4096
)

// Config is what a Cache needs.
type Config struct {
	// Volumes is the Volume collection (documents are volume.Volume JSON
	// under ids "Volume/<uuid>"), shared by every replica.
	Volumes store.Collection
	// Backend holds the origins and their snapshots.
	Backend backend.Backend
	// Announce publishes each document change (volume.Announcer.Changed);
	// nil: none.
	Announce func(ctx context.Context, event, uuid string, after *volume.Volume, msgID string) error
	// Holder names this replica uniquely (e.g. host name, pid and a random
	// part); it is recorded in an origin while this replica downloads it.
	// Empty: one is made up.
	Holder string
	// HTTP downloads images; nil: a client with connection, TLS and
	// response-header timeouts (a download itself has no time limit but
	// Stall).
	HTTP *http.Client
	// Roots are the certificate authorities HTTPS locations must chain to
	// when HTTP is nil (a given HTTP client brings its own); nil: the
	// system's. A site whose images are behind a private CA passes the
	// system's pool plus that CA.
	Roots *x509.CertPool
	// TempDir receives downloads before Backend.Import; it should be on
	// the filesystem of the backend's data so that imports are cheap.
	TempDir string
	// Lease is how long a downloader's claim holds without renewal; it is
	// renewed every Lease/3. Default DefaultLease.
	Lease time.Duration
	// FailureTTL is how long a FAILED origin stays, so that requests made
	// meanwhile fail fast with its reason. Default DefaultFailureTTL.
	FailureTTL time.Duration
	// Stall abandons a location that sends no data for this long. Default
	// DefaultStall.
	Stall time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Log receives what callers are not told; nil: slog.Default().
	Log *slog.Logger
}

// Request names an image and where to get it, as its Marketplace metadata
// says.
type Request struct {
	// ImageID is the Marketplace id (27 characters of [A-Za-z0-9_-]); any
	// id of 1 to MaxImageID characters of [A-Za-z0-9_.:-] is accepted.
	ImageID string
	// URLs are http(s) locations of the image, tried in order.
	URLs []string
	// Volume is the uuid of a pdisk volume holding the image (a
	// "pdisk:<uuid>" location), tried before URLs; its content is copied
	// and checked like a download. The caller checks that the requester
	// may read it. URLs may be empty when it is set.
	Volume string
	// Bytes is the exact size of the image as served.
	Bytes int64
	// SHA1 is the hexadecimal SHA-1 of the image as served.
	SHA1 string
	// Type is MachineImageOrigin (the default) or DataImageOrigin.
	Type volume.Type
}

// Snap describes the live snapshot Get makes for a machine.
type Snap struct {
	// UUID is the new volume's uuid; a repeated Get with the same UUID
	// returns the same volume.
	UUID string
	// Owner is the user the volume belongs to.
	Owner string
	// Machine is the machine the volume is made for ("Machine/<uuid>"),
	// recorded in the document; may be empty.
	Machine string
	// Type is MachineImageLive (the default), DataImageLive or
	// DataImageRawReadOnly.
	Type volume.Type
	// MsgID is the id of the command asking, from which the ids of the
	// announcements are derived; may be empty.
	MsgID string
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.Volumes == nil:
		return cfg, errors.New("imagecache: no Volume collection")
	case cfg.Backend == nil:
		return cfg, errors.New("imagecache: no storage backend")
	case cfg.TempDir == "":
		return cfg, errors.New("imagecache: no directory for downloads")
	case cfg.Lease < 0 || cfg.FailureTTL < 0 || cfg.Stall < 0:
		return cfg, errors.New("imagecache: negative duration")
	case cfg.HTTP != nil && cfg.Roots != nil:
		// The roots would be silently ignored: the client has its own.
		return cfg, errors.New("imagecache: Roots apply to the default HTTP client only, not to a given one")
	}
	if err := os.MkdirAll(cfg.TempDir, 0o750); err != nil {
		return cfg, fmt.Errorf("imagecache: download directory: %w", err)
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.HTTP == nil {
		cfg.HTTP = defaultClient(cfg.Roots)
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = DefaultFailureTTL
	}
	if cfg.Stall == 0 {
		cfg.Stall = DefaultStall
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return cfg, nil
}

// defaultClient bounds every step of a download but the transfer itself,
// which Stall watches instead: images take minutes on slow links. It
// trusts roots, or the system's CAs when roots is nil.
func defaultClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          16,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       &tls.Config{RootCAs: roots},
		},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
				return fmt.Errorf("redirected to a %s URL; only http and https are followed", r.URL.Scheme)
			}
			return nil
		},
	}
}

// check validates r and returns it normalized (default type, lowercase
// checksum).
func (r Request) check() (Request, error) {
	if err := checkImageID(r.ImageID); err != nil {
		return r, err
	}
	if r.Type == "" {
		r.Type = volume.MachineImageOrigin
	}
	if !r.Type.Origin() {
		return r, errs.Errorf(errs.Invalid, "Image %s cannot be cached as %s: an image-cache origin is %s or %s.", r.ImageID, r.Type, volume.MachineImageOrigin, volume.DataImageOrigin)
	}
	if len(r.URLs) == 0 && r.Volume == "" {
		return r, errs.Errorf(errs.Invalid, "Image %s has no location to download it from.", r.ImageID)
	}
	if r.Volume != "" && !volume.ValidUUID(r.Volume) {
		return r, errs.Errorf(errs.Invalid, "Image %s: %q is not a volume uuid.", r.ImageID, short(r.Volume))
	}
	if len(r.URLs) > MaxURLs {
		return r, errs.Errorf(errs.Invalid, "Image %s has %d locations; at most %d are tried.", r.ImageID, len(r.URLs), MaxURLs)
	}
	for _, s := range r.URLs {
		if err := checkURL(s); err != nil {
			return r, errs.Errorf(errs.Invalid, "Image %s: %v", r.ImageID, err)
		}
	}
	if r.Bytes <= 0 {
		return r, errs.Errorf(errs.Invalid, "Image %s: its size in bytes must be positive, not %d.", r.ImageID, r.Bytes)
	}
	r.SHA1 = strings.ToLower(r.SHA1)
	if !isHex(r.SHA1, 40) {
		return r, errs.Errorf(errs.Invalid, "Image %s: its SHA-1 must be 40 hexadecimal digits, not %q.", r.ImageID, short(r.SHA1))
	}
	return r, nil
}

func checkImageID(id string) error {
	if id == "" {
		return errs.New(errs.Invalid, "The image id is empty: give the Marketplace id of the image.")
	}
	if len(id) > MaxImageID {
		return errs.Errorf(errs.Invalid, "The image id %q is longer than %d characters.", short(id), MaxImageID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return errs.Errorf(errs.Invalid, "The image id %q holds %q; ids are letters, digits and _ - . : only.", short(id), string(rune(c)))
		}
	}
	return nil
}

// checkURL accepts absolute http and https URLs only: other schemes (file,
// ftp, data) would let a request read what the server, not the Marketplace,
// holds.
func checkURL(s string) error {
	if len(s) > maxURL {
		return fmt.Errorf("a location is longer than %d bytes", maxURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("the location %q is not a URL", short(s))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("the location %q is not an http or https URL", short(u.Redacted()))
	}
	if u.Host == "" {
		return fmt.Errorf("the location %q names no host", short(u.Redacted()))
	}
	return nil
}

// check validates s for an origin and returns it normalized.
func (s Snap) check(originUUID string) (Snap, error) {
	if !volume.ValidUUID(s.UUID) {
		return s, errs.Errorf(errs.Invalid, "%q is not a volume uuid (expected 8-4-4-4-12 lowercase hexadecimal digits).", short(s.UUID))
	}
	if s.UUID == originUUID {
		return s, errs.New(errs.Invalid, "A snapshot cannot take the uuid of its origin.")
	}
	if s.Owner == "" {
		return s, errs.New(errs.Invalid, "A machine's disk needs an owner.")
	}
	switch s.Type {
	case "":
		s.Type = volume.MachineImageLive
	case volume.MachineImageLive, volume.DataImageLive, volume.DataImageRawReadOnly:
	default:
		return s, errs.Errorf(errs.Invalid, "A snapshot of an image cannot be of type %s.", s.Type)
	}
	return s, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// short keeps error messages readable when input is garbage.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
