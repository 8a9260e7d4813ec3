package testca

import (
	"bytes"
	"crypto/x509"
	"slices"
	"testing"
	"time"
)

// Bad is one certificate every gate refuses: Reason and Fix are phrases
// of the refusal.
type Bad struct {
	Name string
	Issued
	Reason, Fix string
}

// Corpus is every class of bad certificate (each class of issue 13's "one
// gate"), each for hosts and issued by ca unless the class says otherwise:
// what a `mv` over a served certificate might bring.
func Corpus(t testing.TB, ca *CA, hosts []string) []Bad {
	t.Helper()
	now := time.Now()
	stranger := New(t)
	bad := func(name string, l Leaf, reason, fix string) Bad {
		l.CN = hosts[0]
		if l.Hosts == nil {
			l.Hosts = hosts
		}
		return Bad{Name: name, Issued: ca.Issue(t, l), Reason: reason, Fix: fix}
	}
	selfSignedCA := Bad{Name: "self-signed CA", Issued: SelfSigned(t, Leaf{CN: hosts[0], Hosts: hosts, IsCA: true}),
		Reason: "basic constraints CA:TRUE", Fix: "a service must present a CA:FALSE certificate issued by its CA"}
	noSAN := bad("no SAN", Leaf{Hosts: []string{}}, "has no subject alternative names", "reissue it with the hosts")
	bundled := bad("a bundle after the leaf", Leaf{}, "did not sign certificate 1", "put CA bundles in the ca-file")
	bundled.CertPEM = slices.Concat(bundled.CertPEM, stranger.PEM, ca.PEM)
	oversized := bad("oversized", Leaf{}, "file is larger than 1 MiB", "give the file that holds only that")
	oversized.CertPEM = slices.Concat(oversized.CertPEM, bytes.Repeat(ca.PEM, (1<<20)/len(ca.PEM)+1))
	return []Bad{
		selfSignedCA,
		bad("expired", Leaf{NotBefore: now.Add(-50 * time.Minute), NotAfter: now.Add(-30 * time.Minute)}, "expired on", "issue a new one"),
		bad("expired before its CA", Leaf{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, "expired on", "issue a new one"),
		bad("not yet valid", Leaf{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)}, "not valid yet", "check this machine's clock"),
		bad("codeSigning only", Leaf{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, "but the certificate has only codeSigning", "reissue it with profile"),
		noSAN,
		bad("RSA 1024", Leaf{RSABits: 1024}, "RSA key of 1024 bits is below the minimum of 2048", "reissue with key-type"),
		bundled,
		oversized,
	}
}
