package metadata

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"time"
)

// BuildOptions are what stratus build-metadata is told about an image
// besides its bytes.
type BuildOptions struct {
	Type        string   // machine (the default) or disk
	Kind        string   // slterms:kind, free text
	Format      string   // raw, qcow2, vmdk, vdi, vhdx; empty: read from the image
	Compression string   // none, gz, bz2, xz; empty: read from the image
	Creator     string   // the author's name
	Email       string   // the author's e-mail: the draft's endorser until it is signed
	OS          string   // slterms:os; "none" by default for a disk image
	OSVersion   string   // slterms:os-version; "none" by default for a disk image
	OSArch      string   // slterms:os-arch; "none" by default for a disk image
	Version     string   // of the image
	Title       string   // dcterms:title
	Tag         string   // dcterms:alternative, see ValidTag
	Description string   // dcterms:description (the CLI's --comment)
	Publisher   string   // dcterms:publisher
	Locations   []string // download URLs, at least one
	Hypervisor  string   // slterms:hypervisor
	// Validity is how long the entry is valid after now; zero means
	// DefaultValidityMonths months. The user guide advises six months for
	// a published entry.
	Validity time.Duration
	// Now is the creation time; zero means time.Now().
	Now time.Time
}

// DefaultValidityMonths is the validity Build gives when none is asked:
// the six months the user guide recommends for published entries. Drafts
// made at capture are only visible to their author for two days, but that
// is the Marketplace's visibility rule, not the entry's validity.
const DefaultValidityMonths = 6

// sniffSize is how much of the image Build reads first to recognize its
// compression and format; a bzip2 stream needs a whole block (up to 900 kB)
// before it yields a byte.
const sniffSize = 1 << 20

// Build makes the unsigned entry of an image for stratus build-metadata:
// it reads the image once for its size and four checksums, sets the
// identifier, created (now) and valid (now + validity), and copies the
// options. The compression and format are read from the image's first
// bytes (gzip, bzip2, xz; qcow2, vmdk, vdi, vhdx, raw otherwise); options
// that name them must agree, and an xz image must name its format. It
// fails with Problems when the entry breaks a rule of Validate other than
// those only signing fills (the endorsement date and the certificate
// subject).
func Build(opts BuildOptions, image io.Reader) (*Entry, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	if opts.Validity < 0 {
		return nil, fmt.Errorf("metadata: the validity %s is negative", opts.Validity)
	}

	head := make([]byte, sniffSize)
	n, err := fill(image, head)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("metadata: reading the image: %w", err)
	}
	head = head[:n]
	compression, format, err := detect(head, opts.Compression, opts.Format)
	if err != nil {
		return nil, err
	}
	d, err := Digest(io.MultiReader(bytes.NewReader(head), image))
	if err != nil {
		return nil, err
	}

	valid := now.AddDate(0, DefaultValidityMonths, 0)
	if opts.Validity > 0 {
		valid = now.Add(opts.Validity)
	}
	e := &Entry{
		Identifier:  d.Identifier(),
		Type:        opts.Type,
		Kind:        opts.Kind,
		Format:      format,
		Compression: compression,
		Creator:     opts.Creator,
		Created:     FormatTime(now),
		Valid:       FormatTime(valid),
		Title:       opts.Title,
		Tag:         opts.Tag,
		Description: opts.Description,
		Publisher:   opts.Publisher,
		Bytes:       d.Bytes,
		Checksums:   d.Checksums(),
		OS:          opts.OS,
		OSVersion:   opts.OSVersion,
		OSArch:      opts.OSArch,
		Version:     opts.Version,
		Locations:   append([]string(nil), opts.Locations...),
		Hypervisor:  opts.Hypervisor,
	}
	if len(e.Locations) == 0 {
		e.Locations = nil
	}
	if opts.Email != "" {
		e.Endorsement.Endorser.Email = opts.Email
	}
	if e.Type == "" {
		e.Type = TypeMachine
	}
	if e.Type == TypeDisk {
		// The user guide: data images give "none" for these.
		for _, f := range []*string{&e.OS, &e.OSVersion, &e.OSArch} {
			if *f == "" {
				*f = "none"
			}
		}
	}

	var ps Problems
	if err := e.Validate(now); err != nil {
		for _, p := range err.(Problems) {
			if p.Rule == RuleRequired && (p.Field == "endorsement.created" || p.Field == "endorsement.endorser.subject") {
				continue
			}
			ps = append(ps, p)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return e, nil
}

// detect reads the compression and format from the first bytes of an
// image and checks them against the ones the user gave.
func detect(head []byte, wantCompression, wantFormat string) (compression, format string, err error) {
	compression = "none"
	var inner io.Reader
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		compression = "gz"
		if zr, err := gzip.NewReader(bytes.NewReader(head)); err == nil {
			inner = zr
		}
	case bytes.HasPrefix(head, []byte("BZh")):
		compression = "bz2"
		inner = bzip2.NewReader(bytes.NewReader(head))
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		compression = "xz"
	}
	if wantCompression != "" && wantCompression != compression {
		return "", "", problem(RuleKnownCompression, "compression", "the compression is given as %q but the image is %s", wantCompression, described(compression))
	}

	plain, readable := head, true
	if compression != "none" {
		plain, readable = nil, false
		if inner != nil {
			// The magic numbers are in the first 0x44 bytes; fewer is
			// enough when the head held the whole image and it ended.
			buf := make([]byte, 512)
			n, err := io.ReadFull(inner, buf)
			plain = buf[:n]
			whole := len(head) < sniffSize && (err == io.EOF || err == io.ErrUnexpectedEOF)
			readable = n >= 0x44 || whole
		}
	}
	if !readable {
		if wantFormat == "" {
			return "", "", problem(RuleKnownFormat, "format", "cannot read the format of the %s-compressed image; give it (raw, qcow2, ...)", compression)
		}
		return compression, wantFormat, nil
	}
	format = "raw"
	switch {
	case bytes.HasPrefix(plain, []byte{'Q', 'F', 'I', 0xfb}):
		format = "qcow2"
	case bytes.HasPrefix(plain, []byte("KDMV")):
		format = "vmdk"
	case len(plain) >= 0x44 && bytes.Equal(plain[0x40:0x44], []byte{0x7f, 0x10, 0xda, 0xbe}):
		format = "vdi"
	case bytes.HasPrefix(plain, []byte("vhdxfile")):
		format = "vhdx"
	}
	if wantFormat != "" && wantFormat != format {
		return "", "", problem(RuleKnownFormat, "format", "the format is given as %q but the image is %s", wantFormat, format)
	}
	return compression, format, nil
}

func described(compression string) string {
	if compression == "none" {
		return "not compressed"
	}
	return compression + "-compressed"
}
