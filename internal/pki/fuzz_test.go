package pki_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// FuzzParsePEM feeds arbitrary bytes to both readers and the gate's
// checks: they must return a value or an error, never panic.
func FuzzParsePEM(f *testing.F) {
	c, err := ca.Init(f.TempDir(), ca.InitOptions{CommonName: "seed CA", Lifetime: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	is, err := c.Issue(ca.Request{Name: "seed", Profile: pki.Server, Lifetime: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(is.CertPEM)
	f.Add(is.KeyPEM)
	f.Add(append(append([]byte{}, is.CertPEM...), is.KeyPEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pki.ParseCertificatesPEM(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		if err == nil {
			// The gate runs on whatever chain a file holds: it must
			// answer, never panic.
			pki.Checks(&pki.Set{Chain: certs, CA: certs}, pki.Policy{Profile: pki.Server})
		}
		key, err := pki.ParsePrivateKeyPEM(data)
		if err == nil && key == nil {
			t.Fatal("no error and no key")
		}
	})
}

// FuzzParseFingerprintSHA256 feeds operator-written pins: anything parsed
// prints back to the same fingerprint.
func FuzzParseFingerprintSHA256(f *testing.F) {
	f.Add("sha256 Fingerprint=AB:CD:" + strings.Repeat("00:", 29) + "EF")
	f.Add(strings.Repeat("ab", 32))
	f.Add("::")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := pki.ParseFingerprintSHA256(s)
		if err != nil {
			return
		}
		again, err := pki.ParseFingerprintSHA256(fp.String())
		if err != nil || again != fp {
			t.Fatalf("%q parsed to %s, which reads back as %s (%v)", s, fp, again, err)
		}
	})
}
