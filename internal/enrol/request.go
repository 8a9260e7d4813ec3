package enrol

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
)

// MaxRequestBytes bounds a request body: a CSR for an RSA-4096 key is
// under 2 KiB, so anything near this is not an enrolment request.
const MaxRequestBytes = 64 << 10

// Request is what an agent node sends to /v1/enrol and /v1/renew.
type Request struct {
	Name      string `json:"name"`      // the agent's name (agent.yml name)
	Namespace string `json:"namespace"` // the agent's namespace (agent.yml namespace)
	CSR       string `json:"csr"`       // PEM CERTIFICATE REQUEST, CN = Name
}

// Response is the server's answer, whatever the status code.
type Response struct {
	Status      string `json:"status"` // signed, pending, denied, refused
	Message     string `json:"message,omitempty"`
	Certificate string `json:"certificate,omitempty"` // PEM leaf (signed)
	CA          string `json:"ca,omitempty"`          // PEM CA bundle (signed)
}

// Statuses of a Response.
const (
	StatusSigned  = "signed"
	StatusPending = "pending"
	StatusDenied  = "denied"
	StatusRefused = "refused" // bad request, credentials or certificate
)

// Parsed is a request that passed every check: its CSR's signature
// verifies, its CN is the agent name, its key is strong enough.
type Parsed struct {
	Request
	Key         crypto.PublicKey
	Fingerprint string // Fingerprint(Key)
}

// sensuName is Sensu's rule for entity and namespace names.
var sensuName = regexp.MustCompile(`^[\w.\-]+$`)

// ParseRequest decodes and checks a request body. Only the CSR's public
// key and CN are used: whatever else it asks for (SANs, extensions) is
// ignored, since the server decides what an agent certificate holds.
func ParseRequest(body []byte) (*Parsed, error) {
	if len(body) > MaxRequestBytes {
		return nil, fmt.Errorf("request body of %d bytes is over the limit of %d", len(body), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("request body is not the JSON object {name, namespace, csr}: %v", err)
	}
	if dec.More() {
		return nil, errors.New("request body holds more than one JSON value")
	}
	if len(r.Name) > 253 || !sensuName.MatchString(r.Name) {
		return nil, fmt.Errorf("name %q is not a Sensu agent name (letters, digits, _ . -; at most 253)", r.Name)
	}
	if len(r.Namespace) > 253 || !sensuName.MatchString(r.Namespace) {
		return nil, fmt.Errorf("namespace %q is not a Sensu namespace (letters, digits, _ . -; at most 253)", r.Namespace)
	}
	block, rest := pem.Decode([]byte(r.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr is not a PEM CERTIFICATE REQUEST")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("csr holds more than one PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature does not verify: %v", err)
	}
	if csr.Subject.CommonName != r.Name {
		return nil, fmt.Errorf("csr common name %q is not the agent name %q", csr.Subject.CommonName, r.Name)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	fp, err := Fingerprint(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Parsed{Request: r, Key: csr.PublicKey, Fingerprint: fp}, nil
}

// checkKey accepts the key types sensu-tlsd generates.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if bits := k.Curve.Params().BitSize; bits != 256 && bits != 384 {
			return fmt.Errorf("csr key is ECDSA %s: use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("csr key is RSA of %d bits: use 2048 to 4096", bits)
		}
	default:
		return fmt.Errorf("csr key is a %T: use ECDSA or RSA", pub)
	}
	return nil
}

// Fingerprint is the hex SHA-256 of a public key's SubjectPublicKeyInfo:
// what binds an agent name to its key.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
