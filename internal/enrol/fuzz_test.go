package enrol

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent-1"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(Request{Name: "agent-1", Namespace: "default", CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	f.Add(good)
	f.Add([]byte(`{"name":"a","namespace":"default","csr":""}`))
	f.Add([]byte(`{"name":"../x","namespace":"default","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"name":"a"}{"name":"b"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseRequest(body)
		if err != nil {
			if p != nil {
				t.Fatal("an error with a request")
			}
			return
		}
		// Whatever passes is a name Sensu accepts, bound to the key the
		// CSR's own signature proves.
		if !sensuName.MatchString(p.Name) || !sensuName.MatchString(p.Namespace) {
			t.Fatalf("accepted name %q namespace %q", p.Name, p.Namespace)
		}
		if fp, err := Fingerprint(p.Key); err != nil || fp != p.Fingerprint {
			t.Fatalf("fingerprint %q does not match the key (%v)", p.Fingerprint, err)
		}
	})
}
