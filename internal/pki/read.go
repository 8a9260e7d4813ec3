package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrEncryptedKey is returned for a passphrase-protected key: sensu-tlsd and
// Sensu both need the key in the clear to serve TLS unattended.
var ErrEncryptedKey = errors.New("the private key is encrypted; Sensu cannot use a passphrase-protected key: decrypt it (openssl pkey -in KEY -out KEY.plain) or let sensu-tlsd issue a new one")

// FileError names the file a read or parse problem belongs to.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// ReadCertificates reads a PEM file holding one or more certificates
// (leaf first for a chain, any order for a CA bundle).
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := ReadFileLimited(path, MaxPEMFileBytes, "a PEM certificate chain or CA bundle")
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, &FileError{path, err}
	}
	return certs, nil
}

// ReadPrivateKey reads a PEM private key in any of the encodings openssl,
// cfssl and step write: PKCS#1 RSA, PKCS#8, and SEC1 EC.
func ReadPrivateKey(path string) (crypto.Signer, error) {
	data, err := ReadFileLimited(path, MaxKeyFileBytes, "a PEM private key")
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, &FileError{path, err}
	}
	return key, nil
}

// ParseCertificatesPEM parses every CERTIFICATE block in data. Other block
// types are skipped so a combined cert+key file still yields its chain.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty: expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d is not a valid X.509 certificate: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if looksLikeDER(data) {
			return nil, errors.New("no PEM certificate found: the file looks like DER; convert it with: openssl x509 -inform der -in FILE -out FILE.pem")
		}
		return nil, errors.New("no PEM certificate found: expected a -----BEGIN CERTIFICATE----- block")
	}
	return certs, nil
}

// ParsePrivateKeyPEM parses the first private key block in data.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty: expected a PEM private key")
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY" || x509.IsEncryptedPEMBlock(block): //nolint:staticcheck // detection only
			return nil, ErrEncryptedKey
		case block.Type == "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("RSA PRIVATE KEY block is not a valid PKCS#1 key: %v", err)
			}
			return k, nil
		case block.Type == "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("EC PRIVATE KEY block is not a valid SEC1 key: %v", err)
			}
			return k, nil
		case block.Type == "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PRIVATE KEY block is not a valid PKCS#8 key: %v", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported PKCS#8 key type %T", k)
			}
			return s, nil
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("unsupported key block %q: use RSA or ECDSA in PKCS#1, PKCS#8 or SEC1", block.Type)
		}
	}
	if bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("no private key found: this file holds a certificate, not a key")
	}
	return nil, errors.New("no PEM private key found: expected -----BEGIN PRIVATE KEY----- (PKCS#8), RSA PRIVATE KEY (PKCS#1) or EC PRIVATE KEY (SEC1)")
}

// looksLikeDER reports whether data starts like a DER SEQUENCE.
func looksLikeDER(data []byte) bool { return len(data) > 2 && data[0] == 0x30 && data[1]&0x80 != 0 }

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// KeyDescription is a short human name for a key: "ECDSA P-256", "RSA 2048".
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// SerialHex formats a certificate serial the way `openssl x509 -serial`
// prints it (upper-case hex, whole bytes, colon-free) so operators can
// compare the two.
func SerialHex(c *x509.Certificate) string {
	n := c.SerialNumber
	sign := ""
	if n.Sign() < 0 {
		sign, n = "-", new(big.Int).Neg(n)
	}
	h := strings.ToUpper(n.Text(16))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return sign + h
}
