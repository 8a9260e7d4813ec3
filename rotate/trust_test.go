package rotate

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// needOpenSSL fails (SENSU_TLSD_REQUIRE_PEERS=1) or skips loudly without openssl.
func needOpenSSL(t *testing.T) {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl not on PATH (Debian package openssl)")
}

// opensslIssuer is an exec issuer script that signs with the CA in the
// directory given as $1 and copies that CA as the bundle, as operators'
// scripts do. With $1 = "self" it writes a self-signed CA:TRUE certificate
// and copies it as its own CA.
func opensslIssuer(t *testing.T) string {
	t.Helper()
	needOpenSSL(t)
	script := filepath.Join(t.TempDir(), "issue.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
set -e
san=$(echo "$SENSU_TLSD_HOSTS" | sed 's/\([^,]*\)/DNS:\1/g; s/DNS:\([0-9.]*\)\(,\|$\)/IP:\1\2/g')
if [ "$1" = self ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=$SENSU_TLSD_COMMON_NAME" -addext "subjectAltName=$san" \
    -keyout "$SENSU_TLSD_KEY_FILE" -out "$SENSU_TLSD_CERT_FILE" 2>/dev/null
  cp "$SENSU_TLSD_CERT_FILE" "$SENSU_TLSD_CA_FILE"
  exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=$SENSU_TLSD_COMMON_NAME" -addext "subjectAltName=$san" \
  -addext "extendedKeyUsage=serverAuth,clientAuth" -addext "keyUsage=digitalSignature" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" \
  -keyout "$SENSU_TLSD_KEY_FILE" -out "$SENSU_TLSD_CERT_FILE" 2>/dev/null
cp "$1/ca.pem" "$SENSU_TLSD_CA_FILE"
`), 0o755)
	return script
}

// renewWith plans cfg and renews its first certificate once, as
// `sensu-tlsd renew --force` does, logging to log.
func renewWith(t *testing.T, cfg *config.Config, log *logbuf.Buffer) (Plan, error) {
	t.Helper()
	p := mustPlans(t, cfg)[0]
	m := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(log, nil)))
	_, err := m.RenewOnce(context.Background(), p, RenewOptions{Force: true})
	return p, err
}

// execConfig is the test config in root with an exec issuer running command.
func execConfig(root string, command ...string) *config.Config {
	cfg := testConfigAt(root, time.Hour, "")
	cfg.Certificates[0].Issuer = config.Issuer{Type: config.IssuerExec, Exec: config.ExecIssuer{Command: command}}
	return cfg
}

func newCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := ca.Init(dir, testCAOptions); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSelfSignedLeafFromExecIsNeverInstalled: a script that writes a
// self-signed CA:TRUE certificate and copies it as the CA bundle hands in
// a set that verifies to itself; it must be refused and nothing installed.
func TestSelfSignedLeafFromExecIsNeverInstalled(t *testing.T) {
	cfg := execConfig(t.TempDir(), opensslIssuer(t), "self")
	var log logbuf.Buffer
	p, err := renewWith(t, cfg, &log)
	if err == nil || !strings.Contains(err.Error(), "CA:TRUE") || !strings.Contains(err.Error(), "candidate rejected") {
		t.Fatalf("self-signed CA:TRUE leaf from an exec issuer: %v", err)
	}
	if _, err := os.Lstat(p.Paths.Cert); err == nil {
		t.Fatal("the rejected set was installed")
	}
}

// TestTrustedCAMismatchIsRejectedAndRolloverAccepted: with trusted-ca set,
// a candidate from another CA is refused although it chains to the bundle
// it brings; a trusted-ca holding the old and the new CA accepts either.
func TestTrustedCAMismatchIsRejectedAndRolloverAccepted(t *testing.T) {
	issuing, trusted := newCA(t), newCA(t)
	cfg := execConfig(t.TempDir(), opensslIssuer(t), issuing)
	cfg.Certificates[0].TrustedCA = filepath.Join(trusted, ca.CertFileName)
	var log logbuf.Buffer
	p, err := renewWith(t, cfg, &log)
	if err == nil || !strings.Contains(err.Error(), "not in the trusted CA "+cfg.Certificates[0].TrustedCA) {
		t.Fatalf("candidate from a CA other than trusted-ca: %v", err)
	}
	if _, err := os.Lstat(p.Paths.Cert); err == nil {
		t.Fatal("the rejected set was installed")
	}

	both := filepath.Join(t.TempDir(), "trusted.pem")
	a, _ := os.ReadFile(filepath.Join(trusted, ca.CertFileName))
	b, _ := os.ReadFile(filepath.Join(issuing, ca.CertFileName))
	os.WriteFile(both, append(a, b...), 0o644)
	cfg.Certificates[0].TrustedCA = both
	if p, err = renewWith(t, cfg, &log); err != nil {
		t.Fatalf("trusted-ca with both CAs (a rollover): %v", err)
	}
	readValid(t, p)
}

// TestUnpinnedCABundleChangeIsLogged: without trusted-ca, a new bundle
// is accepted when the candidate chains to it, and the change says so,
// naming both CAs.
func TestUnpinnedCABundleChangeIsLogged(t *testing.T) {
	first, second := newCA(t), newCA(t)
	script, root := opensslIssuer(t), t.TempDir()
	var log logbuf.Buffer
	if _, err := renewWith(t, execConfig(root, script, first), &log); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "CA bundle changed") {
		t.Fatalf("a first issue logged a CA change:\n%s", log.String())
	}
	if _, err := renewWith(t, execConfig(root, script, second), &log); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "CA bundle changed") {
			line = l
		}
	}
	for _, want := range []string{"no trusted-ca pins it", "level=WARN", keyIDOf(t, first), keyIDOf(t, second)} {
		if !strings.Contains(line, want) {
			t.Errorf("CA change log line %q lacks %q", line, want)
		}
	}
}

// keyIDOf is the short key id the messages print for the CA in dir.
func keyIDOf(t *testing.T, dir string) string {
	t.Helper()
	authority, err := ca.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(pki.CANames([]*x509.Certificate{authority.Cert}), `"test CA" key id `)
}

// TestLocalCARolloverWithSharedBundleSettles: the local CA is rolled over
// (new CA first in ca.pem, the old one after it) while two certificates
// share one ca.pem. Renewing one brings the two-CA bundle; the other, still
// from the old CA, verifies to it, so the shared file is followed once and
// never flipped back and forth.
func TestLocalCARolloverWithSharedBundleSettles(t *testing.T) {
	root := t.TempDir()
	cfg := testConfigAt(root, time.Hour, "")
	second := cfg.Certificates[0]
	second.Name = "backend-2"
	second.CertFile, second.KeyFile = filepath.Join(root, "etc", "backend-2.pem"), filepath.Join(root, "etc", "backend-2-key.pem")
	cfg.Certificates = append(cfg.Certificates, second)
	rec := newRecorder()
	daemon, plans := startManager(t, cfg, rec)
	rec.next(t, 10*time.Second)
	rec.next(t, 10*time.Second)

	caDir := plans[0].CADir
	oldCA, _ := os.ReadFile(filepath.Join(caDir, ca.CertFileName))
	fresh := newCA(t)
	newCert, _ := os.ReadFile(filepath.Join(fresh, ca.CertFileName))
	newKey, _ := os.ReadFile(filepath.Join(fresh, ca.KeyFileName))
	os.WriteFile(filepath.Join(caDir, ca.KeyFileName), newKey, 0o600)
	os.WriteFile(filepath.Join(caDir, ca.CertFileName), append(newCert, oldCA...), 0o644)

	m := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := m.RenewOnce(context.Background(), plans[0], RenewOptions{Force: true}); err != nil {
		t.Fatalf("renewing from the new CA: %v", err)
	}
	// Both announce the new bundle (backend-1 as a renewal or, when its
	// runner sees the files first, as a replacement it follows); then the
	// shared file stays put.
	seen := map[string]bool{}
	for len(seen) < 2 {
		seen[rec.next(t, 5*time.Second).Name] = true
	}
	clockOf(daemon).skip(3 * externalGrace) // a grace the rollover started is over
	for quiet := time.After(500 * time.Millisecond); ; {
		select {
		case c := <-rec.ch:
			if c.Reason == event.ReasonRollback {
				t.Fatalf("rollback during the CA rollover: %+v", c)
			}
			continue
		case <-quiet:
		}
		break
	}
	for _, p := range plans {
		readValid(t, p)
	}
	if b, _ := os.ReadFile(plans[1].Paths.CA); !bytes.Equal(b, append(newCert, oldCA...)) {
		t.Fatal("the shared ca.pem does not hold both CAs")
	}
	st, _ := certstate.ReadAll(cfg.StateDir)
	for _, name := range []string{"backend-1", "backend-2"} {
		if e := st[name].LastError; e != "" {
			t.Fatalf("%s failed during the rollover: %s", name, e)
		}
	}
}
