package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// KeyTypes are the key types sensu-tlsd generates; the first is the default.
var KeyTypes = []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"}

// CheckKeyType returns an error naming the valid choices when keyType is
// not one sensu-tlsd can generate. "" means the default.
func CheckKeyType(keyType string) error {
	if keyType == "" {
		return nil
	}
	for _, k := range KeyTypes {
		if k == keyType {
			return nil
		}
	}
	return fmt.Errorf("unknown key type %q: use one of %s", keyType, strings.Join(KeyTypes, ", "))
}

// GenerateKey makes a new private key of keyType ("" = ecdsa-p256).
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "", "ecdsa-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, CheckKeyType(keyType)
}

// EncodePrivateKeyPEM encodes key as PKCS#8, which Go, openssl and Sensu
// all read.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodeCertificatesPEM encodes certs as consecutive CERTIFICATE blocks.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
