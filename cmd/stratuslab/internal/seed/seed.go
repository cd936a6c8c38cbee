package seed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// Image is a site image the catalogue publishes when its file is there.
type Image struct {
	// File is the image's name in the images directory.
	File string
	// Build describes the image; Prepare fills in the location, the
	// creation time and the validity.
	Build metadata.BuildOptions
}

// ApplianceFile is the test appliance's name in the images directory:
// what scripts/appliance.sh builds and `make run` copies there.
const ApplianceFile = "appliance.img"

// ApplianceTag is the test appliance's tag: `stratus run-instance
// debian-test` starts it.
const ApplianceTag = "debian-test"

// Appliance is the test appliance the VM tests boot (scripts/appliance.sh):
// Debian's kernel and a busybox initramfs that reports its context on the
// serial console. osVersion is the Debian release its kernel came from.
func Appliance(osVersion string) Image {
	if osVersion == "" {
		osVersion = "unknown"
	}
	return Image{File: ApplianceFile, Build: metadata.BuildOptions{
		Type:      metadata.TypeMachine,
		Kind:      "test appliance",
		OS:        "debian",
		OSVersion: osVersion,
		OSArch:    "x86_64",
		Title:     "StratusLab test appliance",
		Tag:       ApplianceTag,
		Description: "Debian's kernel and a busybox initramfs, built by scripts/appliance.sh: it boots in seconds, " +
			"reads the context disk and reports what it finds on the serial console (lines starting with STRATUS-APPLIANCE:). " +
			"For checking a cloud, not for work: it has no network services and no login.",
		Creator:    "StratusLab",
		Publisher:  "this StratusLab site",
		Hypervisor: "kvm",
	}}
}

// Validity is how long a seeded entry is valid: the six months the user
// guide advises for published entries. A start after it ended signs and
// uploads the entry again.
const Validity = 183 * 24 * time.Hour

// Options say what Prepare publishes and where.
type Options struct {
	// ImagesDir holds the image files (<data_dir>/images).
	ImagesDir string
	// KeyDir holds KeyFile (<data_dir>/marketplace).
	KeyDir string
	// BaseURL is the gateway's URL as downloaders reach it, e.g.
	// "http://127.0.0.1:8080": an image's location is
	// BaseURL/images/<file>.
	BaseURL string
	// Email is the endorser's e-mail when the key is made; a key made
	// before keeps its own.
	Email string
	// Images are the images to publish when their file is there.
	Images []Image
	// Now is the time of signing; zero means time.Now().
	Now time.Time
}

// Entry is one signed entry, ready to upload.
type Entry struct {
	File       string
	Identifier string
	Tag        string
	Location   string
	SHA1       string // lower-case hex
	Bytes      int64
	// XML is the signed entry.
	XML []byte
}

// Catalogue is what the all-in-one publishes: the endorser and its
// signed entries.
type Catalogue struct {
	// Endorser is the endorser's e-mail.
	Endorser string
	// KeyCreated reports that this start made the endorser's key.
	KeyCreated bool
	Entries    []Entry
}

// Prepare signs an entry for each image of opts.Images whose file is in
// opts.ImagesDir. With none there, it makes no key and returns an empty
// catalogue.
func Prepare(ctx context.Context, opts Options) (*Catalogue, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var present []Image
	for _, im := range opts.Images {
		if err := plainName(im.File); err != nil {
			return nil, err
		}
		fi, err := os.Stat(filepath.Join(opts.ImagesDir, im.File))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("seed: %s is not a regular file", filepath.Join(opts.ImagesDir, im.File))
		}
		present = append(present, im)
	}
	if len(present) == 0 {
		return &Catalogue{}, nil
	}
	key, err := LoadOrCreateKey(opts.KeyDir, opts.Email, now)
	if err != nil {
		return nil, err
	}
	cat := &Catalogue{Endorser: key.Email, KeyCreated: key.Created}
	for _, im := range present {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := sign(opts, im, key, now)
		if err != nil {
			return nil, err
		}
		cat.Entries = append(cat.Entries, e)
	}
	return cat, nil
}

// plainName refuses image names that are not a plain file name, which the
// gateway would not serve.
func plainName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("seed: %q is not a plain file name", name)
	}
	return nil
}

// sign builds, endorses, renders and signs the entry of one image.
func sign(opts Options, im Image, key *Key, now time.Time) (Entry, error) {
	path := filepath.Join(opts.ImagesDir, im.File)
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	location := strings.TrimSuffix(opts.BaseURL, "/") + "/images/" + url.PathEscape(im.File)
	b := im.Build
	b.Locations = []string{location}
	b.Email = key.Email
	b.Now = now
	b.Validity = Validity
	e, err := metadata.Build(b, f)
	if err != nil {
		return Entry{}, fmt.Errorf("seed: the entry of %s: %w", path, err)
	}
	if err := metadata.Endorse(e, key.Chain[0], now); err != nil {
		return Entry{}, fmt.Errorf("seed: the entry of %s: %w", path, err)
	}
	if err := e.Validate(now); err != nil {
		return Entry{}, fmt.Errorf("seed: the entry of %s: %w", path, err)
	}
	doc, err := metadata.Render(e)
	if err != nil {
		return Entry{}, fmt.Errorf("seed: the entry of %s: %w", path, err)
	}
	signed, err := xmlsig.Sign(doc, key.Signer, key.Chain, xmlsig.Options{})
	if err != nil {
		return Entry{}, fmt.Errorf("seed: sign the entry of %s: %w", path, err)
	}
	return Entry{
		File:       im.File,
		Identifier: e.Identifier,
		Tag:        e.Tag,
		Location:   location,
		SHA1:       e.Checksum(metadata.AlgorithmSHA1),
		Bytes:      e.Bytes,
		XML:        signed,
	}, nil
}
