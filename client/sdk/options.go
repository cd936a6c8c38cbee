package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Option configures a Client.
type Option func(*settings)

type settings struct {
	username, password string
	token              string
	certFile, keyFile  string
	p12File, p12Pass   string
	caFile             string
	insecure           bool
	timeout            time.Duration
	agent              string
	traceOut           io.Writer
	traceLevel         int
}

// WithBasicAuth sends a username and password with every request (HTTP
// Basic) until Login replaces them with a session token.
func WithBasicAuth(username, password string) Option {
	return func(s *settings) { s.username, s.password = username, password }
}

// WithToken sends a session token obtained earlier by Login.
func WithToken(token string) Option {
	return func(s *settings) { s.token = token }
}

// WithCertificate presents a client certificate from PEM files. certFile may
// be an RFC 3820 proxy holding certificate, key and chain; keyFile may then
// be the same file.
func WithCertificate(certFile, keyFile string) Option {
	return func(s *settings) { s.certFile, s.keyFile = certFile, keyFile }
}

// WithPKCS12 presents the client certificate and key of a PKCS#12 bundle.
func WithPKCS12(file, password string) Option {
	return func(s *settings) { s.p12File, s.p12Pass = file, password }
}

// WithCAFile trusts the PEM certificate authorities in file, in addition to
// the system's, to verify the cloud's certificate; for a cloud whose
// certificate is self-signed, this is its certificate.
func WithCAFile(file string) Option {
	return func(s *settings) { s.caFile = file }
}

// WithInsecure accepts any certificate from the cloud. Anyone on the path
// can then read the credentials sent: only for a test cloud.
func WithInsecure(insecure bool) Option {
	return func(s *settings) { s.insecure = insecure }
}

// WithTimeout bounds each request, answer included; 0 means no bound.
func WithTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// WithUserAgent names the program in the User-Agent header.
func WithUserAgent(agent string) Option {
	return func(s *settings) { s.agent = agent }
}

// WithTrace writes each exchange to w: level 1 the request line, status and
// time; 2 adds headers; 3 adds bodies. Passwords, tokens and cookies are
// masked at every level.
func WithTrace(w io.Writer, level int) Option {
	return func(s *settings) { s.traceOut, s.traceLevel = w, level }
}

func (s *settings) tlsConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.insecure}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA file %s holds no PEM certificate", s.caFile)
		}
		conf.RootCAs = pool
	}
	switch {
	case s.p12File != "":
		data, err := os.ReadFile(s.p12File)
		if err != nil {
			return nil, fmt.Errorf("cannot read the PKCS#12 certificate: %w", err)
		}
		key, cert, chain, err := pkcs12.DecodeChain(data, s.p12Pass)
		if err != nil {
			return nil, fmt.Errorf("cannot open the PKCS#12 certificate %s (wrong p12_password?): %w", s.p12File, err)
		}
		c := tls.Certificate{PrivateKey: key, Leaf: cert, Certificate: [][]byte{cert.Raw}}
		for _, ca := range chain {
			c.Certificate = append(c.Certificate, ca.Raw)
		}
		conf.Certificates = []tls.Certificate{c}
	case s.certFile != "":
		keyFile := s.keyFile
		if keyFile == "" {
			keyFile = s.certFile
		}
		c, err := tls.LoadX509KeyPair(s.certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load the client certificate %s with key %s: %w", s.certFile, keyFile, err)
		}
		conf.Certificates = []tls.Certificate{c}
	}
	return conf, nil
}
