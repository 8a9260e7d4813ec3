package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// maxDenyFile bounds the deny list read into memory: 1 MiB holds tens of
// thousands of serials, far more than a fleet revokes.
const maxDenyFile = 1 << 20

// denySet is one parsed deny list.
type denySet struct {
	serials map[string]bool    // lower-case hex, no leading zeros
	agents  map[string]bool    // agent names denied in every namespace
	scoped  map[[2]string]bool // {namespace, name}
}

func (d *denySet) len() int { return len(d.serials) + len(d.agents) + len(d.scoped) }

// parseDenyList reads a deny list: one entry a line, `#` starts a comment.
//
//	serial 0a:1b:2c...      a certificate serial, hex (colons and case are ignored)
//	agent NAME              an agent, in every namespace
//	agent NAMESPACE/NAME    an agent in one namespace
//
// file names the source in errors.
func parseDenyList(file string, data []byte) (*denySet, error) {
	d := &denySet{serials: map[string]bool{}, agents: map[string]bool{}, scoped: map[[2]string]bool{}}
	for i, line := range bytes.Split(data, []byte("\n")) {
		text, _, _ := strings.Cut(string(line), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		bad := func(format string, a ...any) (*denySet, error) {
			return nil, fmt.Errorf("deny list %s:%d: %s; a line is `serial HEX` or `agent NAME` or `agent NAMESPACE/NAME`", file, i+1, fmt.Sprintf(format, a...))
		}
		kind, value, _ := strings.Cut(text, " ")
		value = strings.TrimSpace(value)
		switch kind {
		case "serial":
			s, ok := normalSerial(value)
			if !ok {
				return bad("serial %q is not hex (as openssl x509 -serial prints it)", truncate(value))
			}
			d.serials[s] = true
		case "agent":
			ns, name, scoped := strings.Cut(value, "/")
			switch {
			case !scoped && validAgentName(value):
				d.agents[value] = true
			case scoped && validAgentName(ns) && validAgentName(name):
				d.scoped[[2]string{ns, name}] = true
			default:
				return bad("agent %q is not a name or NAMESPACE/NAME of printable characters without spaces", truncate(value))
			}
		default:
			return bad("%q is neither serial nor agent", truncate(kind))
		}
	}
	return d, nil
}

// normalSerial is s as lower-case hex without colons or leading zeros.
func normalSerial(s string) (string, bool) {
	s = strings.ReplaceAll(s, ":", "")
	if s == "" || len(s) > 64 {
		return "", false
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() < 0 || strings.ContainsAny(s, "+-_") {
		return "", false
	}
	return n.Text(16), true
}

// denies says why a session is refused, or nil: its certificate's serial
// (leaf may be nil) or the agent it connected as (h may be nil) is listed.
func (d *denySet) denies(leaf *x509.Certificate, h *AgentHello) error {
	if leaf != nil && d.serials[leaf.SerialNumber.Text(16)] {
		return &deniedError{fmt.Sprintf("certificate serial %s (CN %q) is on the deny list", leaf.SerialNumber.Text(16), leaf.Subject.CommonName)}
	}
	if h != nil && (d.agents[h.Name] || d.scoped[[2]string{h.Namespace, h.Name}]) {
		return &deniedError{fmt.Sprintf("agent %s/%s is on the deny list", h.Namespace, h.Name)}
	}
	return nil
}

// ErrDenied is the refusal of a client on the listener's deny list.
var ErrDenied = errors.New("client is on the deny list")

type deniedError struct{ reason string }

func (e *deniedError) Error() string { return e.reason }
func (e *deniedError) Unwrap() error { return ErrDenied }

// DenyList is a listener's deny-file: the certificates and agents refused
// even though their certificate verifies, read again when the file changes
// or the daemon reloads. A file that does not parse never replaces the
// list in use.
type DenyList struct {
	path string
	mu   sync.Mutex // serialises reloads
	sum  [sha256.Size]byte
	set  atomic.Pointer[denySet]
}

// LoadDenyList reads the deny list at path.
func LoadDenyList(path string) (*DenyList, error) {
	d := &DenyList{path: path}
	if _, err := d.reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// Path is the list's file.
func (d *DenyList) Path() string { return d.path }

// Len is the number of entries in use.
func (d *DenyList) Len() int { return d.set.Load().len() }

// reload reads the file and reports whether its bytes changed.
func (d *DenyList) reload() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := pki.ReadFileLimited(d.path, maxDenyFile, "a deny list (lines `serial HEX` or `agent NAME`)")
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if d.set.Load() != nil && sum == d.sum {
		return false, nil
	}
	set, err := parseDenyList(d.path, data)
	if err != nil {
		return false, err
	}
	d.sum = sum
	d.set.Store(set)
	return true, nil
}

// denies checks a session against the list in use; a nil list denies nothing.
func (d *DenyList) denies(leaf *x509.Certificate, h *AgentHello) error {
	if d == nil {
		return nil
	}
	return d.set.Load().denies(leaf, h)
}
