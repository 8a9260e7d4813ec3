package enrol

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

func csrPEM(t *testing.T, cn string, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestParseRequest(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body := func(name, ns, csr string) []byte {
		b, _ := json.Marshal(Request{Name: name, Namespace: ns, CSR: csr})
		return b
	}
	good := csrPEM(t, "agent-1", key)
	p, err := ParseRequest(body("agent-1", "default", good))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Fingerprint(key.Public())
	if p.Fingerprint != want {
		t.Errorf("fingerprint %s, want %s", p.Fingerprint, want)
	}
	small, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"CN is another name", body("agent-2", "default", good), `csr common name "agent-1" is not the agent name "agent-2"`},
		{"name with a slash", body("../x", "default", good), `name "../x" is not a Sensu agent name`},
		{"empty namespace", body("agent-1", "", good), `namespace "" is not a Sensu namespace`},
		{"not PEM", body("agent-1", "default", "hello"), "csr is not a PEM CERTIFICATE REQUEST"},
		{"two blocks", body("agent-1", "default", good+good), "more than one PEM block"},
		{"weak key", body("agent-1", "default", csrPEM(t, "agent-1", small)), "use P-256 or P-384"},
		{"unknown field", []byte(`{"name":"a","namespace":"b","csr":"","key":"x"}`), `unknown field "key"`},
		{"too big", make([]byte, MaxRequestBytes+1), "over the limit"},
	} {
		if _, err := ParseRequest(c.body); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}
