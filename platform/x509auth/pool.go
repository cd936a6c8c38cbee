package x509auth

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadPool reads the PEM certificates of path, a file or a directory (see
// LoadCerts), into a pool.
func LoadPool(path string) (*x509.CertPool, error) {
	certs, err := LoadCerts(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadCerts reads the PEM certificates of a file, or of every *.pem, *.crt
// and hash-named *.0 (*.1, ...) file of a directory such as
// /etc/grid-security/certificates; other files (CRLs, signing policies) are
// skipped. It fails when a chosen file holds no certificate or a broken one,
// and when it finds no certificate at all.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("reading certificates: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if certFileName(e.Name()) && !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	var certs []*x509.Certificate
	for _, f := range files {
		cs, err := readPEMCerts(f)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate found in %s: expected PEM files named *.pem, *.crt or <hash>.0", path)
	}
	return certs, nil
}

// certFileName reports whether a directory entry is a certificate by its
// name: *.pem, *.crt, or an OpenSSL hash link whose extension is a number.
func certFileName(name string) bool {
	ext := filepath.Ext(name)
	switch ext {
	case ".pem", ".crt":
		return true
	case "", ".":
		return false
	}
	return strings.Trim(ext[1:], "0123456789") == ""
}

func readPEMCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s holds a certificate that cannot be parsed: %w", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return certs, nil
}
