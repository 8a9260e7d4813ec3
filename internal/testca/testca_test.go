package testca

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestIssuedLeavesChainToTheCA(t *testing.T) {
	ca := New(t)
	set := ca.WriteSet(t, t.TempDir(), "backend", "backend-1")
	if _, err := set.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"}); err != nil {
		t.Errorf("a WriteSet leaf does not verify for localhost under its CA: %v", err)
	}
	if st, err := os.Stat(set.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key %s: %v, %v, want mode 0600", filepath.Base(set.KeyFile), st, err)
	}
	rsa := ca.Issue(t, Leaf{CN: "a", URIs: []string{"spiffe://sensu/a"}, RSABits: 2048}).Pair(t)
	if rsa.Leaf.PublicKeyAlgorithm != x509.RSA || len(rsa.Leaf.URIs) != 1 {
		t.Errorf("RSA leaf with a URI: got %v with URIs %v", rsa.Leaf.PublicKeyAlgorithm, rsa.Leaf.URIs)
	}
	self := SelfSigned(t, Leaf{CN: "self", NoExtKeyUsage: true})
	if err := self.Cert.CheckSignature(self.Cert.SignatureAlgorithm, self.Cert.RawTBSCertificate, self.Cert.Signature); err != nil || len(self.Cert.ExtKeyUsage) != 0 {
		t.Errorf("self-signed: signature %v, extended key usages %v", err, self.Cert.ExtKeyUsage)
	}
}
