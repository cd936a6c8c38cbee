package x509auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSignedLifetime is how long a generated gateway certificate lasts; it
// is replaced on the first start after it expires.
const selfSignedLifetime = 365 * 24 * time.Hour

// ServerOptions say where the gateway's certificate comes from.
type ServerOptions struct {
	// CertFile and KeyFile are a PEM certificate (chain) and its key. When
	// both are empty, a self-signed pair is kept in DataDir.
	CertFile, KeyFile string
	// DataDir holds tls/cert.pem and tls/key.pem for the self-signed pair.
	DataDir string
	// Hosts are the DNS names and IP addresses a generated certificate
	// names.
	Hosts []string
	// ClientAuth requests (without verifying) client certificates; Verify
	// checks them, since crypto/tls cannot verify proxy chains.
	ClientAuth bool
}

// ServerConfig returns the gateway's TLS configuration: the configured
// certificate and key, or a self-signed ECDSA P-256 pair generated on first
// start in <DataDir>/tls and reused until it expires. TLS 1.2 at least.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case o.CertFile != "" || o.KeyFile != "":
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, errors.New("gateway TLS: set both tls_cert and tls_key, or neither to use a self-signed certificate")
		}
		cert, err = tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gateway TLS: loading %s and %s: %w", o.CertFile, o.KeyFile, err)
		}
	case o.DataDir == "":
		return nil, errors.New("gateway TLS: no certificate configured and no data directory to keep a self-signed one")
	default:
		cert, err = selfSigned(o.DataDir, o.Hosts, time.Now())
		if err != nil {
			return nil, err
		}
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if o.ClientAuth {
		c.ClientAuth = tls.RequestClientCert
	}
	return c, nil
}

// selfSigned loads <dir>/tls/{cert,key}.pem, or generates and writes them
// when absent, unreadable or expired.
func selfSigned(dir string, hosts []string, now time.Time) (tls.Certificate, error) {
	tdir := filepath.Join(dir, "tls")
	certFile, keyFile := filepath.Join(tdir, "cert.pem"), filepath.Join(tdir, "key.pem")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil && now.Before(c.Leaf.NotAfter) {
		return c, nil
	}
	certPEM, keyPEM, err := generateSelfSigned(hosts, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway TLS: %w", err)
	}
	// The key goes first so that a crash between the writes leaves a pair
	// that fails to load, and is regenerated, rather than a stale match.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway TLS: %w", err)
	}
	return c, nil
}

func generateSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway TLS: generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway TLS: %w", err)
	}
	cn := "StratusLab gateway"
	if len(hosts) > 0 {
		cn = hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"StratusLab"}, CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway TLS: creating a self-signed certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway TLS: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeFileAtomic writes data to a temporary file created with mode and
// renames it over name, so that readers never see half a file and the key
// is never readable by others, even for a moment.
func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("gateway TLS: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("gateway TLS: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("gateway TLS: writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("gateway TLS: writing %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("gateway TLS: %w", err)
	}
	return nil
}
