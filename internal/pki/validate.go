package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
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
	Profile Profile   // "" skips the usage check
	Hosts   []string  // DNS names and IPs the leaf must cover
	Now     time.Time // zero means time.Now()
	// Trusted are the CAs the chain must verify to besides the set's own
	// bundle (a certificate's trusted-ca): a bundle that comes with the
	// candidate proves nothing about who issued it. TrustedFile names them
	// in messages. Nil means the bundle is the only trust.
	Trusted     []*x509.Certificate
	TrustedFile string
	// CA marks a trust bundle inspected on its own (`status ca.pem`): the
	// leaf check, which refuses CA certificates, is skipped.
	CA bool
	// CommonName is the subject CN the leaf must carry; "" skips the
	// check. Sensu binds an agent certificate's CN to a user.
	CommonName string
	// AgentNamespace, with CommonName, is the agent's Sensu namespace: a
	// sensu:// URI SAN the leaf carries must then be
	// AgentURI(AgentNamespace, CommonName), which the proxy's
	// agent-identity uri binds.
	AgentNamespace string
	// Renew is the command that renews the certificate, named in the fix
	// for an expired one; "" when sensu-tlsd does not manage it.
	Renew string
}

// minRSABits is the smallest RSA key accepted, as NIST and Sensu's Go TLS
// stack agree.
const minRSABits = 2048

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
	CheckLeaf       = "leaf"
	CheckServed     = "served chain"
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
	if !p.CA {
		add(CheckLeaf, checkLeaf(s, p), "")
		add(CheckServed, checkServedChain(s), "")
	}
	if len(s.CA) > 0 {
		add(CheckChain, checkChain(s, p, now), "")
	}
	if p.CommonName != "" {
		add(CheckCommonName, checkCommonName(leaf, p.CommonName, p.AgentNamespace), "")
	}
	if w := EmptySANWarning(leaf); len(p.Hosts) > 0 || w != "" || p.Profile.Serves() {
		add(CheckSANs, checkSANs(leaf, p.Profile, p.Hosts), "")
		if last := &out[len(out)-1]; last.OK && w != "" {
			last.Warning, last.Detail = true, w
		}
	}
	if p.Profile != "" {
		add(CheckUsages, checkUsages(leaf, p.Profile), "")
	}
	add(CheckValidity, checkValidity(leaf, now, p.Renew), "")
	add(CheckStrength, checkStrength(leaf.PublicKey), KeyDescription(leaf.PublicKey))
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
	if len(s.CA) == 0 {
		return &FileError{s.CAFile, errors.New("no CA bundle to verify the certificate against")}
	}
	return Admit(s, p)
}

// Admit is the gate for a certificate and key a process presents without
// installing them (the proxy's files): the checks of Validate, with the
// chain verified only when s has a CA bundle. It requires a key.
func Admit(s *Set, p Policy) error {
	if len(s.Chain) == 0 {
		return &FileError{s.CertFile, errors.New("no certificate")}
	}
	if s.Key == nil {
		return &FileError{s.KeyFile, errors.New("no private key to go with the certificate")}
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

// checkLeaf refuses what no service should present as its certificate: a
// CA certificate, or a certificate that is its own trust (a self-signed
// leaf copied as the CA bundle verifies to itself and to nothing else).
func checkLeaf(s *Set, p Policy) error {
	leaf := s.Leaf()
	if leaf.IsCA {
		return fmt.Errorf("%s holds a CA certificate (basic constraints CA:TRUE, CN %q), not a leaf: a service must present a CA:FALSE certificate issued by its CA", s.CertFile, leaf.Subject.CommonName)
	}
	for _, b := range []struct {
		file  string
		certs []*x509.Certificate
	}{{s.CAFile, s.CA}, {p.TrustedFile, p.Trusted}} {
		for _, c := range b.certs {
			if c.Equal(leaf) {
				return fmt.Errorf("the certificate is its own CA: %s holds the certificate itself, so it verifies to nothing but itself: it must hold the CA that signed it", b.file)
			}
		}
	}
	return nil
}

// checkChain verifies the chain to the set's bundle (what peers will use)
// and, when the policy names them, to the trusted CAs. It checks at a
// moment the leaf is valid: the leaf's own dates are the validity check's
// to report, once.
func checkChain(s *Set, p Policy, now time.Time) error {
	leaf := s.Leaf()
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if err := verifyTo(s, s.CA, nil, at); err != nil {
		return chainError(err, leaf, "the CA bundle "+s.CAFile, s.CA, at,
			"use the CA that signed it, or reissue it from this CA")
	}
	if len(p.Trusted) == 0 {
		return nil
	}
	if err := verifyTo(s, p.Trusted, s.CA, at); err != nil {
		return chainError(err, leaf, "the trusted CA "+p.TrustedFile, p.Trusted, at,
			"reissue it from the trusted CA, or (for a CA rollover) put the new CA into the trusted-ca file beside the old one")
	}
	return nil
}

// verifyTo verifies s's leaf to roots, with the rest of its chain and
// extra (a bundle's intermediates) as intermediates.
func verifyTo(s *Set, roots, extra []*x509.Certificate, at time.Time) error {
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range append(s.Chain[1:len(s.Chain):len(s.Chain)], extra...) {
		inter.AddCert(c)
	}
	_, err := s.Leaf().Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// chainError explains a failed verification of leaf to what, the CAs in
// cas, at the moment at. Every CA `ca init` makes is called "sensu-tlsd
// CA", so names alone do not tell two of them apart: key ids do (openssl
// x509 -text shows them).
func chainError(err error, leaf *x509.Certificate, what string, cas []*x509.Certificate, at time.Time, fix string) error {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) && unknown.Cert != nil {
		c := unknown.Cert
		if c.IsCA && c.CheckSignatureFrom(c) == nil {
			// The chain reached a root (a CA from the set's own bundle).
			return fmt.Errorf("chains to the CA %q (key id %s), which is not in %s (it holds %s): %s",
				c.Subject.CommonName, shortKeyID(c.SubjectKeyId), what, CANames(cas), fix)
		}
		return fmt.Errorf("issued by %q (authority key id %s), which is not in %s (it holds %s): %s",
			c.Issuer.CommonName, shortKeyID(c.AuthorityKeyId), what, CANames(cas), fix)
	}
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil {
		c := inv.Cert
		if at.Before(c.NotBefore) && at.Equal(leaf.NotAfter) {
			// The leaf had expired before this CA was made: no clock
			// makes them valid together.
			return fmt.Errorf("the certificate expired on %s, before the CA %q (key id %s) in %s became valid on %s: have the CA issue a new one and replace the files",
				leaf.NotAfter.UTC().Format(time.RFC3339), c.Subject.CommonName, shortKeyID(c.SubjectKeyId), what, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if at.Before(c.NotBefore) {
			return fmt.Errorf("the CA %q (key id %s) in %s is not valid until %s: check this machine's clock", c.Subject.CommonName, shortKeyID(c.SubjectKeyId), what, c.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("the CA %q (key id %s) in %s expired on %s: renew the CA and reissue the certificate", c.Subject.CommonName, shortKeyID(c.SubjectKeyId), what, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("does not verify against %s: %v", what, err)
}

// CANames lists CA certificates by CN and short subject key id, which
// tells apart CAs that share a name.
func CANames(cas []*x509.Certificate) string {
	names := make([]string, len(cas))
	for i, c := range cas {
		names[i] = fmt.Sprintf("%q key id %s", c.Subject.CommonName, shortKeyID(c.SubjectKeyId))
	}
	return strings.Join(names, ", ")
}

// shortKeyID is the first four bytes of a key identifier the way openssl
// prints it (7A:1C:03:9E), enough to tell CAs apart at a glance.
func shortKeyID(id []byte) string {
	if len(id) == 0 {
		return "none"
	}
	parts := make([]string, 0, 4)
	for _, b := range id[:min(len(id), 4)] {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}

// checkSANs reports the hosts the leaf does not cover, and a serving
// certificate without any SAN: Go (since 1.15) and browsers ignore the CN,
// so no client can verify it.
func checkSANs(leaf *x509.Certificate, p Profile, hosts []string) error {
	if p.Serves() && len(SANs(leaf)) == 0 {
		return fmt.Errorf("has no subject alternative names, and clients ignore the CN %q: reissue it with the hosts clients connect to (DNS names or IPs)", leaf.Subject.CommonName)
	}
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

// EmptySANWarning flags an empty DNS name among the SANs ("" when there is
// none). The Sensu guide's cfssl recipe writes one ("hosts":[""],
// ADDRESS=,backend-1); RFC 5280 forbids it. It is flagged, not failed:
// TLS still works.
func EmptySANWarning(leaf *x509.Certificate) string {
	for _, n := range leaf.DNSNames {
		if n == "" {
			return `an empty DNS name is among the SANs, which RFC 5280 forbids: reissue without it (with cfssl: drop the "" from "hosts" and the leading comma from -hostname)`
		}
	}
	return ""
}

func checkCommonName(leaf *x509.Certificate, want, namespace string) error {
	if leaf.Subject.CommonName != want {
		return fmt.Errorf("subject CN is %q but must be %q: reissue it with CN %s", leaf.Subject.CommonName, want, want)
	}
	if namespace == "" {
		return nil
	}
	bound := AgentURI(namespace, want)
	var others []string
	for _, u := range leaf.URIs {
		if u.Scheme != "sensu" {
			continue
		}
		if u.String() == bound {
			return nil
		}
		others = append(others, u.String())
	}
	if len(others) > 0 {
		return fmt.Errorf("URI SAN %s does not name agent %s, so a listener with agent-identity uri refuses it: reissue it with namespace %s", strings.Join(others, ", "), bound, namespace)
	}
	return nil
}

// namespaceRE is what Sensu accepts as a namespace name, and what a
// sensu://NAMESPACE/AGENT URI SAN carries as its host unescaped.
var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// ValidNamespace reports whether s can name an agent's Sensu namespace.
func ValidNamespace(s string) bool { return namespaceRE.MatchString(s) }

// AgentURI is the URI SAN that binds an agent certificate to its
// namespace and name (the proxy's agent-identity uri; the local CA adds it
// to agent certificates given a namespace).
func AgentURI(namespace, name string) string {
	return (&url.URL{Scheme: "sensu", Host: namespace, Path: "/" + name}).String()
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

func checkStrength(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is below the minimum of %d: reissue with key-type rsa-2048 or ecdsa-p256", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return fmt.Errorf("ECDSA curve %s is below P-256: reissue with key-type ecdsa-p256", k.Curve.Params().Name)
		}
	}
	return nil
}
