package xmlsig

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// LoadPKCS12 reads a PKCS#12 (.p12, .pfx) file: the private key and the
// certificates, the key's certificate first. Both the legacy encryptions
// (RC2, 3DES, as grid CAs and old browsers export) and PBES2/AES (OpenSSL
// 3's default) are read.
//
// RSA, ECDSA and Ed25519 keys load, so that the same credentials can serve
// for TLS client authentication; Sign only signs with RSA keys.
func LoadPKCS12(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	key, cert, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, nil, fmt.Errorf("cannot open the PKCS#12 file: wrong password: %w", err)
		}
		return nil, nil, fmt.Errorf("cannot read the PKCS#12 file: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("the PKCS#12 file holds a %T key, which cannot sign", key)
	}
	chain, err := leafFirst(signer, append([]*x509.Certificate{cert}, cas...))
	if err != nil {
		return nil, nil, err
	}
	return signer, chain, nil
}

// LoadPEM reads PEM certificates (the key's own and any intermediates, in
// any order) and an unencrypted PEM private key: PKCS#1 ("RSA PRIVATE
// KEY"), PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). cert and key
// may be the same bytes when one file holds both. A key protected by a
// passphrase is refused with ErrEncryptedKey: the passphrase would have to
// be asked for, and legacy PEM encryption is unsafe anyway.
//
// As with LoadPKCS12, RSA, ECDSA and Ed25519 keys load; Sign only signs
// with RSA keys.
func LoadPEM(cert, key []byte) (crypto.Signer, []*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := cert; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read a PEM certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no CERTIFICATE block in the PEM certificate data")
	}

	var signer crypto.Signer
	for rest := key; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		k, err := pemKey(b)
		if err != nil {
			return nil, nil, err
		}
		if k == nil {
			continue
		}
		if signer != nil {
			return nil, nil, errors.New("the PEM key data holds more than one private key")
		}
		signer = k
	}
	if signer == nil {
		return nil, nil, errors.New("no private key block in the PEM key data")
	}
	chain, err := leafFirst(signer, certs)
	if err != nil {
		return nil, nil, err
	}
	return signer, chain, nil
}

// pemKey parses a private key block; other blocks give nil.
func pemKey(b *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch b.Type {
	case "ENCRYPTED PRIVATE KEY":
		return nil, encryptedKey()
	case "RSA PRIVATE KEY", "EC PRIVATE KEY":
		if b.Headers["Proc-Type"] != "" || b.Headers["DEK-Info"] != "" {
			return nil, encryptedKey()
		}
		if b.Type == "RSA PRIVATE KEY" {
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		} else {
			k, err = x509.ParseECPrivateKey(b.Bytes)
		}
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the %s: %w", b.Type, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the PEM data holds a %T key, which cannot sign", k)
	}
	return signer, nil
}

func encryptedKey() error {
	return fmt.Errorf("%w: the key is protected by a passphrase; write an unencrypted copy readable only by you "+
		"(openssl pkey -in userkey.pem -out key.pem && chmod 600 key.pem) or use the PKCS#12 file", ErrEncryptedKey)
}

// leafFirst puts the certificate of key first, the others after it in
// their original order.
func leafFirst(key crypto.Signer, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key.Public())
	}
	for i, c := range certs {
		if pub.Equal(c.PublicKey) {
			chain := append([]*x509.Certificate{c}, certs[:i]...)
			return append(chain, certs[i+1:]...), nil
		}
	}
	return nil, fmt.Errorf("%w: none of the %d certificates holds the key's public half", ErrKeyMismatch, len(certs))
}
