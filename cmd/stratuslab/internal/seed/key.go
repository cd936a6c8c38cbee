package seed

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// KeyFile is the file, in the marketplace's data directory, holding the
// site image endorser's certificate and private key (PEM).
const KeyFile = "seed-key.pem"

// KeyBits is the size of the endorser's RSA key: 3072 bits, the size
// NIST advises for signatures meant to hold beyond 2030.
const KeyBits = 3072

// CommonName is the common name of the endorser's certificate.
const CommonName = "StratusLab site images"

// certValidity is how long the self-signed certificate is valid: long
// enough that no site meets its end, since every entry it signed would
// have to be signed again with a new one.
const certValidity = 20 * 365 * 24 * time.Hour

// Key is the site image endorser: its signing key and certificate.
type Key struct {
	Signer crypto.Signer
	Chain  []*x509.Certificate // the certificate first
	// Email is the endorser's e-mail, the certificate's.
	Email string
	// Created reports that this call made the key (the first start).
	Created bool
}

// LoadOrCreateKey reads dir/KeyFile, or makes the key and its self-signed
// certificate for email and writes them there (mode 0600) when the file
// does not exist. A key file readable by others is refused: whoever reads
// it can sign entries in the site's name.
func LoadOrCreateKey(dir, email string, now time.Time) (*Key, error) {
	path := filepath.Join(dir, KeyFile)
	k, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if !metadata.ValidEmail(email) {
		return nil, fmt.Errorf("seed: %q is not an e-mail address for the image endorser", email)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seed: create %s: %w", dir, err)
	}
	data, err := newKeyPEM(email, now)
	if err != nil {
		return nil, err
	}
	// Written aside, then linked into place: a crash leaves no half key,
	// and of two starts racing the second finds the first's key.
	tmp, err := os.CreateTemp(dir, ".seed-key-*.pem") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("seed: write the endorser key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("seed: write the endorser key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("seed: write the endorser key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("seed: write the endorser key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("seed: write the endorser key: %w", err)
	} else if err != nil {
		return loadKey(path)
	}
	k, err = loadKey(path)
	if k != nil {
		k.Created = true
	}
	return k, err
}

// loadKey reads the key file; the error wraps fs.ErrNotExist when there
// is none.
func loadKey(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seed: the image endorser's key %s may be read by others (mode %04o): run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	signer, chain, err := xmlsig.LoadPEM(data, data)
	if err != nil {
		return nil, fmt.Errorf("seed: %s: %w", path, err)
	}
	emails := metadata.CertificateEmails(chain[0])
	if len(emails) == 0 {
		return nil, fmt.Errorf("seed: the certificate in %s has no e-mail address", path)
	}
	return &Key{Signer: signer, Chain: chain, Email: emails[0]}, nil
}

// newKeyPEM makes an RSA key and a self-signed certificate for email, in
// PEM: the certificate, then the key (PKCS#8).
func newKeyPEM(email string, now time.Time) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("seed: make the endorser key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("seed: make the endorser certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CommonName, Organization: []string{"StratusLab"}},
		EmailAddresses:        []string{email},
		NotBefore:             now.Add(-time.Hour), // the clocks of other hosts may lag
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("seed: make the endorser certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("seed: encode the endorser key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...), nil
}
