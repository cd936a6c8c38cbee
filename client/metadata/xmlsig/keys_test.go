package xmlsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// opensslPKI makes, with the openssl CLI, a CA and a grid-like endorser
// certificate (e-mail address in the subject) in dir, and returns a reader
// of the files there.
func opensslPKI(t *testing.T) (dir string, read func(name string) []byte) {
	t.Helper()
	need(t, "openssl", "openssl")
	dir = t.TempDir()
	read = func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	steps := [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/C=EU/O=Example Grid/CN=Example Grid CA"},
		{"req", "-newkey", "rsa:2048", "-noenc", "-keyout", "user.key", "-out", "user.csr", "-subj", "/C=EU/O=Example Grid/CN=Jane Doe/emailAddress=jane.doe@example.org"},
		{"x509", "-req", "-in", "user.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "user.pem", "-days", "30"},
		{"rsa", "-in", "user.key", "-traditional", "-out", "user.pkcs1.pem"},
		{"pkey", "-in", "user.key", "-aes256", "-passout", "pass:secret", "-out", "user.enc8.pem"},
		{"rsa", "-in", "user.key", "-traditional", "-aes256", "-passout", "pass:secret", "-out", "user.enc1.pem"},
		{"ecparam", "-name", "prime256v1", "-genkey", "-out", "ec.key"},
		{"req", "-x509", "-key", "ec.key", "-out", "ec.pem", "-days", "30", "-subj", "/CN=EC endorser/emailAddress=ec@example.org"},
		{"pkcs12", "-export", "-inkey", "user.key", "-in", "user.pem", "-certfile", "ca.pem", "-passout", "pass:secret", "-out", "aes.p12"},
		{"pkcs12", "-export", "-legacy", "-inkey", "user.key", "-in", "user.pem", "-certfile", "ca.pem", "-passout", "pass:secret", "-out", "legacy.p12"},
		{"pkcs12", "-export", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", "-inkey", "user.key", "-in", "user.pem", "-certfile", "ca.pem", "-passout", "pass:secret", "-out", "3des.p12"},
	}
	for _, args := range steps {
		cmd := append([]string{"-c", `cd "$0" && exec openssl "$@"`, dir}, args...)
		if out, err := run("sh", cmd...); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir, read
}

// TestLoadKeys loads the formats grid users have, signs the entry with
// what was loaded, and verifies it against the openssl-made CA.
func TestLoadKeys(t *testing.T) {
	t.Parallel()
	_, read := opensslPKI(t)
	user, ca := read("user.pem"), read("ca.pem")
	combined := append(append([]byte{}, user...), read("user.key")...)
	type signerAndChain struct {
		key   crypto.Signer
		chain []*x509.Certificate
	}
	type loaded struct {
		name     string
		load     func() (signerAndChain, error)
		wantErr  error
		msg      string
		chainLen int
		signs    bool // Sign accepts the key
	}
	pemLoad := func(cert, key []byte) func() (signerAndChain, error) {
		return func() (signerAndChain, error) { k, c, err := LoadPEM(cert, key); return signerAndChain{k, c}, err }
	}
	p12Load := func(file, password string) func() (signerAndChain, error) {
		return func() (signerAndChain, error) {
			k, c, err := LoadPKCS12(read(file), password)
			return signerAndChain{k, c}, err
		}
	}
	cases := []loaded{
		{"PEM, PKCS#8 key", pemLoad(user, read("user.key")), nil, "", 1, true},
		{"PEM, PKCS#1 key", pemLoad(user, read("user.pkcs1.pem")), nil, "", 1, true},
		{"PEM, CA certificate first", pemLoad(append(append([]byte{}, ca...), user...), read("user.key")), nil, "", 2, true},
		{"PEM, certificate and key in one file", pemLoad(combined, combined), nil, "", 1, true},
		{"PEM, encrypted PKCS#8 key", pemLoad(user, read("user.enc8.pem")), ErrEncryptedKey, "passphrase", 0, false},
		{"PEM, encrypted PKCS#1 key", pemLoad(user, read("user.enc1.pem")), ErrEncryptedKey, "passphrase", 0, false},
		{"PEM, key of another certificate", pemLoad(user, read("ca.key")), ErrKeyMismatch, "public half", 0, false},
		{"PEM, no key", pemLoad(user, user), nil, "no private key", 0, false},
		{"PEM, no certificate", pemLoad(read("user.key"), read("user.key")), nil, "no CERTIFICATE", 0, false},
		{"PEM, EC key loads but cannot sign entries", pemLoad(read("ec.pem"), read("ec.key")), nil, "", 1, false},
		{"PKCS#12, AES (OpenSSL 3 default)", p12Load("aes.p12", "secret"), nil, "", 2, true},
		{"PKCS#12, legacy RC2 and 3DES", p12Load("legacy.p12", "secret"), nil, "", 2, true},
		{"PKCS#12, 3DES", p12Load("3des.p12", "secret"), nil, "", 2, true},
		{"PKCS#12, wrong password", p12Load("aes.p12", "nope"), nil, "wrong password", 0, false},
		{"PKCS#12, not PKCS#12", func() (signerAndChain, error) {
			k, c, err := LoadPKCS12(user, "secret")
			return signerAndChain{k, c}, err
		}, nil, "cannot read the PKCS#12", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.load()
			if tc.msg != "" || tc.wantErr != nil {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.wantErr, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.chain) != tc.chainLen {
				t.Fatalf("%d certificates, want %d", len(got.chain), tc.chainLen)
			}
			pub, _ := got.key.Public().(interface{ Equal(crypto.PublicKey) bool })
			if pub == nil || !pub.Equal(got.chain[0].PublicKey) {
				t.Fatal("the first certificate is not the key's")
			}
			signed, err := Sign(readEntry(t), got.key, got.chain, Options{})
			if !tc.signs {
				if _, isEC := got.key.(*ecdsa.PrivateKey); !isEC || !errors.Is(err, ErrUnsupportedAlgorithm) {
					t.Fatalf("Sign with %T: %v, want ErrUnsupportedAlgorithm", got.key, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got.key.(*rsa.PrivateKey); !ok {
				t.Errorf("key of type %T", got.key)
			}
			_, caCerts, err := LoadPEM(ca, read("ca.key"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Verify(signed, VerifyOptions{Roots: caPool(caCerts[0])})
			if err != nil {
				t.Fatal(err)
			}
			if email := subjectEmail(res.Certificate); email != "jane.doe@example.org" {
				t.Errorf("signer's e-mail address %q", email)
			}
		})
	}
}

// subjectEmail returns the emailAddress attribute of the subject, which
// pkix.Name.String only shows in hexadecimal.
func subjectEmail(c *x509.Certificate) string {
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidEmail) {
			s, _ := n.Value.(string)
			return s
		}
	}
	return ""
}
