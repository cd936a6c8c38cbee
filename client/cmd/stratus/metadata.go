package main

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/client/internal/config"
	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// What the Marketplace commands share: reading and writing entry files,
// the signing credentials, and naming the rule each failure breaks. The
// commands are in cmd_metadata.go and cmd_images.go.

// problemLines turns an error about an entry into lines that start with
// the rule it breaks: each of metadata's Problems, or the signature rule.
func problemLines(err error) []string {
	var ps metadata.Problems
	if errors.As(err, &ps) {
		lines := make([]string, len(ps))
		for i, p := range ps {
			lines[i] = p.String()
		}
		return lines
	}
	return []string{metadata.SignatureRule(err) + ": " + strings.TrimPrefix(err.Error(), "xmlsig: ")}
}

// entryError is an error about the entry of a file: it prints as the file
// followed by one indented line per broken rule.
type entryError struct {
	file string
	what string // e.g. "cannot sign"
	err  error
}

func (e *entryError) Error() string {
	lines := problemLines(e.err)
	if len(lines) == 1 {
		return fmt.Sprintf("%s %s: %s", e.what, e.file, lines[0])
	}
	return fmt.Sprintf("%s %s:\n  %s", e.what, e.file, strings.Join(lines, "\n  "))
}

func (e *entryError) Unwrap() error { return e.err }

// readEntryFile reads an entry file. One larger than any entry can be is
// refused under metadata's document-size rule.
func readEntryFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read the entry: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, metadata.MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the entry: %w", err)
	}
	if len(data) > metadata.MaxDocumentSize {
		return nil, metadata.Problems{{Rule: metadata.RuleDocumentSize, Message: fmt.Sprintf("%s is larger than %d bytes, which no entry is", name, metadata.MaxDocumentSize)}}
	}
	return data, nil
}

// writeOutput writes data to path ("-": standard output). A file is
// replaced whole, never left half written: it is written beside and
// renamed. Entries are public documents: the file is readable by all.
func (a *app) writeOutput(path string, data []byte) error {
	if path == "-" {
		_, err := a.env.stdout.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// validForUpload is Validate as the Marketplace applies it: an entry that
// deprecates an image may have expired, since that is how an endorser
// withdraws an old image.
func validForUpload(e *metadata.Entry, now time.Time) error {
	err := e.Validate(now)
	var ps metadata.Problems
	if err == nil || e.Deprecated == "" || !errors.As(err, &ps) {
		return err
	}
	ps = slices.DeleteFunc(slices.Clone(ps), func(p metadata.Problem) bool { return p.Rule == metadata.RuleNotExpired })
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// signer is the key and certificates that sign entries.
type signer struct {
	key   crypto.Signer
	chain []*x509.Certificate // the key's certificate first
	file  string              // where they came from, for messages
}

// cert is the signing certificate.
func (s *signer) cert() *x509.Certificate { return s.chain[0] }

// email is the address the certificate vouches for, the endorser's.
func (s *signer) email() string {
	if emails := metadata.CertificateEmails(s.cert()); len(emails) > 0 {
		return emails[0]
	}
	return ""
}

// rank orders where a setting came from: the command line, then the
// environment, then the configuration file, then the defaults.
func rank(source string) int {
	switch {
	case strings.HasPrefix(source, "the command line"):
		return 3
	case strings.HasPrefix(source, "STRATUSLAB_"):
		return 2
	case source == "the default" || source == "":
		return 0
	}
	return 1
}

// errNoSigner says how to give a certificate.
func errNoSigner(s *config.Settings) error {
	return usageError{fmt.Errorf("no certificate to sign with: give --p12-cert FILE (and --p12-password) or --pem-cert FILE --pem-key FILE, or set p12_certificate in %s", s.Where())}
}

// loadSigner loads the credentials that sign entries: the PKCS#12 file or
// the PEM certificate and key of the settings. When both are set, the one
// set with more precedence (command line, environment, file, default)
// wins; on a tie, PKCS#12. A PKCS#12 file that the configured password
// (none, when it is empty) does not open is asked for its password on a
// terminal.
func (a *app) loadSigner() (*signer, error) {
	s, err := a.config()
	if err != nil {
		return nil, err
	}
	p12, pem := s.Get(config.P12Certificate), s.Get(config.PemCertificate)
	usePEM := pem != "" && (p12 == "" || rank(s.Source(config.PemCertificate)) > rank(s.Source(config.P12Certificate)))
	switch {
	case usePEM:
		certFile := expandHome(pem, a.env.home)
		keyFile := expandHome(s.Get(config.PemKey), a.env.home)
		if keyFile == "" {
			keyFile = certFile
		}
		certPEM, err := readFileLimited(certFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("cannot read the certificate (set by %s): %w", s.Source(config.PemCertificate), err)
		}
		keyPEM, err := readFileLimited(keyFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("cannot read the key of the certificate (set by %s): %w", s.Source(config.PemKey), err)
		}
		key, chain, err := xmlsig.LoadPEM(certPEM, keyPEM)
		if errors.Is(err, xmlsig.ErrEncryptedKey) {
			return nil, fmt.Errorf("the key %s is protected by a passphrase, which stratus does not ask for: use a PKCS#12 file (--p12-cert), or an unencrypted copy of the key readable only by you", keyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot use the certificate %s with the key %s: %w", certFile, keyFile, err)
		}
		return &signer{key: key, chain: chain, file: certFile}, nil
	case p12 != "":
		file := expandHome(p12, a.env.home)
		data, err := readFileLimited(file, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("cannot read the PKCS#12 certificate (set by %s): %w", s.Source(config.P12Certificate), err)
		}
		pass := s.Get(config.P12Password)
		key, chain, err := xmlsig.LoadPKCS12(data, pass)
		if err != nil && pass == "" && a.env.terminal() {
			pw, perr := a.prompt(fmt.Sprintf("Password of %s: ", file))
			if perr != nil {
				return nil, perr
			}
			key, chain, err = xmlsig.LoadPKCS12(data, string(pw))
		}
		if err != nil {
			return nil, fmt.Errorf("cannot open the PKCS#12 certificate %s (wrong p12_password?): %w", file, err)
		}
		return &signer{key: key, chain: chain, file: file}, nil
	}
	return nil, errNoSigner(s)
}

// sign endorses e with the signer at now, checks it as the Marketplace
// will, and returns the signed document.
func (sg *signer) sign(e *metadata.Entry, now time.Time) ([]byte, error) {
	if err := metadata.Endorse(e, sg.cert(), now); err != nil {
		return nil, fmt.Errorf("cannot sign with %s: %w", sg.file, err)
	}
	if err := validForUpload(e, now); err != nil {
		return nil, err
	}
	doc, err := metadata.Render(e)
	if err != nil {
		return nil, err
	}
	signed, err := xmlsig.Sign(doc, sg.key, sg.chain, xmlsig.Options{})
	if err != nil {
		return nil, fmt.Errorf("cannot sign with %s: %w", sg.file, err)
	}
	return signed, nil
}

// verified is an entry whose signature and rules were checked.
type verified struct {
	entry  *metadata.Entry
	result *xmlsig.Result
}

// verifyEntry checks a signed entry as the Marketplace does: the
// signature (and, with roots, the certificate's issuer), then the entry
// read from what the signature covers, its rules at now and its endorser
// against the certificate. The error lists what is wrong.
func verifyEntry(doc []byte, roots *x509.CertPool, now time.Time) (*verified, error) {
	res, err := xmlsig.Verify(doc, xmlsig.VerifyOptions{Roots: roots, Now: now})
	if err != nil {
		return nil, err
	}
	e, err := metadata.Parse(res.Signed)
	if err != nil {
		return nil, err
	}
	var ps metadata.Problems
	for _, err := range []error{validForUpload(e, now), metadata.CheckEndorser(e, res.Certificate)} {
		var more metadata.Problems
		if errors.As(err, &more) {
			ps = append(ps, more...)
		} else if err != nil {
			return nil, err
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return &verified{entry: e, result: res}, nil
}

// parseValidity reads --validity: a number of calendar months ("6"), of
// days ("30d"), or a duration ("48h"). Zero means the default.
func parseValidity(s string, now time.Time) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	bad := usageError{fmt.Errorf("--validity %q: give a number of months (6), of days (30d) or a duration (48h)", s)}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 1200 {
			return 0, bad
		}
		return now.AddDate(0, n, 0).Sub(now), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 36500 {
			return 0, bad
		}
		return now.AddDate(0, 0, n).Sub(now), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// day shows the date of an RFC 3339 time, or "-".
func day(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return cmpOr(s, "-")
}
