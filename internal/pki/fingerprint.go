package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// Fingerprint is the SHA-256 of a certificate's DER.
type Fingerprint [sha256.Size]byte

// FingerprintOf is cert's SHA-256 fingerprint.
func FingerprintOf(cert *x509.Certificate) Fingerprint { return sha256.Sum256(cert.Raw) }

// String prints the fingerprint as `openssl x509 -fingerprint -sha256`
// does: upper-case hex pairs joined by colons.
func (f Fingerprint) String() string {
	var b strings.Builder
	for i, c := range f {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// ParseFingerprintSHA256 reads a SHA-256 fingerprint written as 64 hex
// digits, in either case, with or without colons between the pairs
// (openssl's "sha256 Fingerprint=" prefix is accepted too).
func ParseFingerprintSHA256(s string) (Fingerprint, error) {
	var f Fingerprint
	t := strings.TrimSpace(s)
	if _, rest, ok := strings.Cut(t, "="); ok && strings.Contains(strings.ToLower(t[:len(t)-len(rest)]), "fingerprint") {
		t = rest
	}
	plain := strings.ReplaceAll(t, ":", "")
	if strings.Contains(t, ":") && len(t) != 3*sha256.Size-1 {
		return f, fmt.Errorf("%q: write the 32 bytes as hex pairs joined by single colons (AB:CD:...) or as 64 hex digits", s)
	}
	b, err := hex.DecodeString(plain)
	if err != nil || len(b) != sha256.Size {
		return f, fmt.Errorf("%q is not a SHA-256 fingerprint: want 64 hex digits, colons allowed (openssl x509 -noout -fingerprint -sha256 -in ca.pem prints it)", s)
	}
	copy(f[:], b)
	return f, nil
}
