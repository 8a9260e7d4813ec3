package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Set is one certificate set as Sensu uses it: a leaf (with any
// intermediates), its private key and the CA bundle peers verify it with.
type Set struct {
	Chain []*x509.Certificate // leaf first
	Key   crypto.Signer
	CA    []*x509.Certificate

	CertFile, KeyFile, CAFile string // where it was read from, for messages
}

// Leaf is the set's end-entity certificate.
func (s *Set) Leaf() *x509.Certificate { return s.Chain[0] }

// LoadSet reads a certificate, its key and a CA bundle. caFile may be ""
// when the chain's trust is checked elsewhere.
func LoadSet(certFile, keyFile, caFile string) (*Set, error) {
	chain, err := ReadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	key, err := ReadPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	s := &Set{Chain: chain, Key: key, CertFile: certFile, KeyFile: keyFile, CAFile: caFile}
	if caFile != "" {
		if s.CA, err = ReadCertificates(caFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Policy is what a set must satisfy.
type Policy struct {
	Profile    Profile   // "" skips the usage check
	Hosts      []string  // DNS names and IPs the leaf must cover
	Now        time.Time // zero means time.Now()
	MinRSABits int       // zero means 2048
	// CommonName is the subject CN the leaf must carry; "" skips the
	// check. Sensu binds an agent certificate's CN to a user.
	CommonName string
	// Renew is the command that renews the certificate, named in the fix
	// for an expired one; "" when sensu-tlsd does not manage it.
	Renew string
}

// CheckResult is the outcome of one check, for tables and JSON. A
// Warning passed (the certificate works) but has a flaw worth fixing.
type CheckResult struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Warning bool   `json:"warning,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Check names, in the order Checks runs them.
const (
	CheckKeyMatch   = "key matches"
	CheckChain      = "chain"
	CheckCommonName = "CN"
	CheckSANs       = "SANs"
	CheckUsages     = "usages"
	CheckValidity   = "validity"
	CheckStrength   = "key strength"
)

// Checks runs every check on s and reports each one. Checks that cannot run
// because an input is missing (no key, no CA) are not reported.
func Checks(s *Set, p Policy) []CheckResult {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	leaf := s.Leaf()
	var out []CheckResult
	add := func(name string, err error, okDetail string) {
		r := CheckResult{Name: name, OK: err == nil, Detail: okDetail}
		if err != nil {
			r.Detail = err.Error()
		}
		out = append(out, r)
	}
	if s.Key != nil {
		add(CheckKeyMatch, checkKeyMatch(s), "")
	}
	if len(s.CA) > 0 {
		add(CheckChain, checkChain(s, now), "")
	}
	if p.CommonName != "" {
		add(CheckCommonName, checkCommonName(leaf, p.CommonName), "")
	}
	if w := emptySANWarning(leaf); len(p.Hosts) > 0 || w != "" {
		add(CheckSANs, checkSANs(leaf, p.Hosts), "")
		if last := &out[len(out)-1]; last.OK && w != "" {
			last.Warning, last.Detail = true, w
		}
	}
	if p.Profile != "" {
		add(CheckUsages, checkUsages(leaf, p.Profile), "")
	}
	add(CheckValidity, checkValidity(leaf, now, p.Renew), "")
	add(CheckStrength, checkStrength(leaf.PublicKey, p.MinRSABits), KeyDescription(leaf.PublicKey))
	return out
}

// ValidationError lists every check a candidate failed.
type ValidationError struct {
	File   string
	Failed []CheckResult
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = f.Name + ": " + f.Detail
	}
	return fmt.Sprintf("%s: certificate rejected: %s", e.File, strings.Join(parts, "; "))
}

// Validate runs every check and fails unless all pass. A set is only ever
// installed after Validate returns nil; it also requires a key and a CA.
func Validate(s *Set, p Policy) error {
	if len(s.Chain) == 0 {
		return &FileError{s.CertFile, errors.New("no certificate")}
	}
	if s.Key == nil {
		return &FileError{s.KeyFile, errors.New("no private key to go with the certificate")}
	}
	if len(s.CA) == 0 {
		return &FileError{s.CAFile, errors.New("no CA bundle to verify the certificate against")}
	}
	var failed []CheckResult
	for _, r := range Checks(s, p) {
		if !r.OK {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return &ValidationError{File: s.CertFile, Failed: failed}
	}
	return nil
}

func checkKeyMatch(s *Set) error {
	if KeyMatches(s.Leaf(), s.Key) {
		return nil
	}
	return fmt.Errorf("the private key in %s does not belong to the certificate in %s (%s key vs %s certificate): install the key that was issued with this certificate",
		s.KeyFile, s.CertFile, KeyDescription(s.Key.Public()), KeyDescription(s.Leaf().PublicKey))
}

func checkChain(s *Set, now time.Time) error {
	roots := x509.NewCertPool()
	for _, c := range s.CA {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range s.Chain[1:] {
		inter.AddCert(c)
	}
	_, err := s.Leaf().Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return fmt.Errorf("issued by %q, which is not in the CA bundle %s (CA: %s): use the CA that signed it, or reissue it from this CA",
			s.Leaf().Issuer.CommonName, s.CAFile, caNames(s.CA))
	}
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		return fmt.Errorf("the chain to %s is outside its validity period: %v", s.CAFile, err)
	}
	return fmt.Errorf("does not verify against %s: %v", s.CAFile, err)
}

func caNames(cas []*x509.Certificate) string {
	names := make([]string, len(cas))
	for i, c := range cas {
		names[i] = fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

// checkSANs reports the hosts the leaf does not cover.
func checkSANs(leaf *x509.Certificate, hosts []string) error {
	var missing []string
	for _, h := range hosts {
		if !Covers(leaf, h) {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("does not cover %s (SANs: %s): reissue with these hosts", strings.Join(missing, ", "), strings.Join(SANs(leaf), ", "))
}

// emptySANWarning flags an empty DNS name among the SANs. The Sensu
// guide's cfssl recipe writes one ("hosts":[""], ADDRESS=,backend-1);
// RFC 5280 forbids it. It is flagged, not failed: TLS still works.
func emptySANWarning(leaf *x509.Certificate) string {
	for _, n := range leaf.DNSNames {
		if n == "" {
			return `an empty DNS name is among the SANs, which RFC 5280 forbids: reissue without it (with cfssl: drop the "" from "hosts" and the leading comma from -hostname)`
		}
	}
	return ""
}

func checkCommonName(leaf *x509.Certificate, want string) error {
	if leaf.Subject.CommonName == want {
		return nil
	}
	return fmt.Errorf("subject CN is %q but must be %q: reissue it with CN %s", leaf.Subject.CommonName, want, want)
}

// Covers reports whether leaf is valid for host, a DNS name or an IP.
func Covers(leaf *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, a := range leaf.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	return leaf.VerifyHostname(host) == nil
}

// SANs lists a certificate's DNS, IP and URI subject alternative names.
func SANs(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

func checkUsages(leaf *x509.Certificate, p Profile) error {
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("key usage lacks digitalSignature, which every TLS handshake needs: reissue it")
	}
	if len(leaf.ExtKeyUsage) == 0 {
		return nil // no EKU extension means any usage
	}
	have := map[x509.ExtKeyUsage]bool{}
	for _, u := range leaf.ExtKeyUsage {
		have[u] = true
	}
	if have[x509.ExtKeyUsageAny] {
		return nil
	}
	var missing []string
	for _, u := range p.ExtKeyUsages() {
		if !have[u] {
			missing = append(missing, ekuName(u))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("profile %s needs %s but the certificate has only %s: reissue it with profile %s",
		p, strings.Join(missing, ", "), strings.Join(ExtKeyUsageNames(leaf), ", "), p)
}

func checkValidity(leaf *x509.Certificate, now time.Time, renew string) error {
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("not valid yet: valid from %s (check this machine's clock)", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		fix := "have the CA that signed it issue a new one and replace the files"
		if renew != "" {
			fix = "renew it: " + renew
		}
		return fmt.Errorf("expired on %s: %s", leaf.NotAfter.UTC().Format(time.RFC3339), fix)
	}
	return nil
}

func checkStrength(pub crypto.PublicKey, minRSA int) error {
	if minRSA == 0 {
		minRSA = 2048
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSA {
			return fmt.Errorf("RSA key of %d bits is below the minimum of %d: reissue with key-type rsa-2048 or ecdsa-p256", k.N.BitLen(), minRSA)
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return fmt.Errorf("ECDSA curve %s is below P-256: reissue with key-type ecdsa-p256", k.Curve.Params().Name)
		}
	}
	return nil
}
