package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

func servedSerial(t *testing.T, addr string, ca *testca.CA) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestFileSourceFollowsRenamedFiles replaces the pair by rename, the way
// installers do, and expects new handshakes to get it within a second.
func TestFileSourceFollowsRenamedFiles(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	src, err := NewFileSource(cf, kf, Gate{Use: pki.Server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Watch(ctx)
	_, addr := startServer(t, Options{Mode: &Terminate{TLS: serverTLSConfig(Policy{}, src, nil), Target: echoServer(t)}})
	before := servedSerial(t, addr, ca)

	time.Sleep(50 * time.Millisecond) // let the watch start
	newDir := t.TempDir()
	ncf, nkf := writePairPEM(t, newDir, ca, true)
	if err := os.Rename(nkf, kf); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ncf, cf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for servedSerial(t, addr, ca) == before {
		if time.Now().After(deadline) {
			t.Fatal("new handshakes still get the old certificate a second after the files changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFileSourceKeepsOldPairWhenNewOneIsBroken(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	src, err := NewFileSource(cf, kf, Gate{Use: pki.Server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := src.Certificate()
	other, _ := localhostPEM(t, ca, false)
	os.WriteFile(cf, other, 0o644) // certificate of a different key
	if _, err := src.reload(); err == nil {
		t.Fatal("a certificate that does not match the key loaded")
	}
	if src.Certificate() != old {
		t.Fatal("a failed reload replaced the served pair")
	}
}

func TestFileSourceSubscriberLoadsChangedFiles(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	src, err := NewFileSource(cf, kf, Gate{Use: pki.Server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ncf, nkf := writePairPEM(t, t.TempDir(), ca, true)
	var bus event.Bus
	bus.Subscribe(src.Subscriber("backend"))
	if err := bus.Publish(context.Background(), event.Change{Name: "other", CertFile: "/nonexistent", KeyFile: "/nonexistent"}); err != nil {
		t.Fatalf("a change for another certificate reached this source: %v", err)
	}
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", CertFile: ncf, KeyFile: nkf}); err != nil {
		t.Fatal(err)
	}
	if _, ok := src.Certificate().PrivateKey.(interface{ Size() int }); !ok {
		t.Fatalf("source did not switch to the new RSA pair: %T", src.Certificate().PrivateKey)
	}
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", CertFile: filepath.Join(t.TempDir(), "missing.pem"), KeyFile: nkf}); err == nil {
		t.Fatal("a change naming missing files was accepted")
	}
}

// countingFile is a log file a test counts lines in.
type countingFile struct {
	path string
}

func (f countingFile) count(t *testing.T, s string) int {
	t.Helper()
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// TestFileWatchIgnoresOtherFilesAndUnchangedContent: with the log in the
// certificate's own directory (as when stderr goes there), a reload's log
// line must not trigger another reload; writes to other files and
// rewrites of the same bytes reload nothing.
func TestFileWatchIgnoresOtherFilesAndUnchangedContent(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	logPath := filepath.Join(dir, "proxy.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))
	src, err := NewFileSource(cf, kf, Gate{Use: pki.Server}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Watch(ctx)
	time.Sleep(100 * time.Millisecond) // let the watch start
	lf := countingFile{logPath}

	writeFile(t, filepath.Join(dir, "unrelated.txt"), []byte("x"))
	certPEM, _ := os.ReadFile(cf)
	writeFile(t, cf, certPEM) // same bytes again
	time.Sleep(3 * reloadDebounce)
	if n := lf.count(t, "certificate reloaded"); n != 0 {
		t.Fatalf("%d reloads after writes that changed no certificate byte", n)
	}

	ncf, nkf := writePairPEM(t, t.TempDir(), ca, true)
	if err := os.Rename(nkf, kf); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ncf, cf); err != nil {
		t.Fatal(err)
	}
	testpeer.WaitFor(t, 5*time.Second, "the rotated pair to load", func() bool { return lf.count(t, "certificate reloaded") >= 1 })
	time.Sleep(5 * reloadDebounce) // a loop would have reloaded again by now
	if n := lf.count(t, "certificate reloaded"); n != 1 {
		t.Fatalf("one rotation logged %d reloads: the log in the same directory feeds the watch", n)
	}

	pool, err := LoadCAPool(cf)
	if err != nil {
		t.Fatal(err)
	}
	before := pool.Pool()
	if changed, err := pool.reload(); err != nil || changed || pool.Pool() != before {
		t.Fatalf("reloading an unchanged CA bundle: changed %v, err %v, pool replaced %v", changed, err, pool.Pool() != before)
	}
}

// TestFileWatchFollowsSymlinkSwaps: a Kubernetes secret volume links
// cert.pem to ..data/cert.pem and swaps ..data to a new directory by
// rename; every swap must reach new handshakes.
func TestFileWatchFollowsSymlinkSwaps(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	generation := func(n int) {
		gen := filepath.Join(dir, fmt.Sprintf("..2026_%d", n))
		if err := os.Mkdir(gen, 0o755); err != nil {
			t.Fatal(err)
		}
		writePairPEM(t, gen, ca, n%2 == 1)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..2026_%d", n-1)))
		}
	}
	generation(0)
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	src, err := NewFileSource(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), Gate{Use: pki.Server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Watch(ctx)
	_, addr := startServer(t, Options{Mode: &Terminate{TLS: serverTLSConfig(Policy{}, src, nil), Target: echoServer(t)}})
	time.Sleep(100 * time.Millisecond) // let the watch start
	for n := 1; n <= 2; n++ {
		before := servedSerial(t, addr, ca)
		generation(n)
		deadline := time.Now().Add(2 * time.Second)
		for servedSerial(t, addr, ca) == before {
			if time.Now().After(deadline) {
				t.Fatalf("swap %d of ..data did not reach new handshakes", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestFileSourceGateRefusesTheCorpus runs every class of bad certificate
// through a FileSource: at start it is refused with the file, the reason
// and the fix; on a hot reload the previous pair keeps being served.
func TestFileSourceGateRefusesTheCorpus(t *testing.T) {
	ca := testca.New(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, ca.PEM)
	for _, bad := range testca.Corpus(t, ca, []string{"localhost"}) {
		t.Run(bad.Name, func(t *testing.T) {
			dir := t.TempDir()
			cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			bad.Write(t, cf, kf)
			_, err := NewFileSource(cf, kf, Gate{Use: pki.Server, CAFile: caFile}, nil)
			if err == nil || !strings.Contains(err.Error(), cf) || !strings.Contains(err.Error(), bad.Reason) || !strings.Contains(err.Error(), bad.Fix) {
				t.Fatalf("start: %v, want %s, %q and %q", err, cf, bad.Reason, bad.Fix)
			}
			ca.Issue(t, testca.Leaf{CN: "localhost", Hosts: []string{"localhost"}}).Write(t, cf, kf)
			src, err := NewFileSource(cf, kf, Gate{Use: pki.Server, CAFile: caFile}, nil)
			if err != nil {
				t.Fatal(err)
			}
			served := src.Certificate()
			bad.Write(t, cf, kf)
			if _, err := src.reload(); err == nil || !strings.Contains(err.Error(), bad.Reason) {
				t.Fatalf("reload: %v, want %q", err, bad.Reason)
			}
			if src.Certificate() != served {
				t.Fatal("a refused reload replaced the served pair")
			}
		})
	}
}

// TestOriginateClientCertificateNeedsClientAuth: the certificate originate
// presents to its targets is a client certificate.
func TestOriginateClientCertificateNeedsClientAuth(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, testca.Leaf{CN: "localhost", Hosts: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}).Write(t, cf, kf)
	_, err := NewFileSource(cf, kf, Gate{Use: pki.Client}, nil)
	if err == nil || !strings.Contains(err.Error(), "profile client needs clientAuth") {
		t.Fatalf("a serverAuth-only client certificate: %v", err)
	}
}

// A certificate whose CA file is known is served with that CA after the
// chain, so an agent node that pinned the CA can take it from the
// handshake; a chain that already ends with it does not get it twice,
// and without a CA file the chain is served as it is.
func TestFileSourceSendsTheCAAfterTheChain(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	set := ca.WriteSet(t, dir, "backend", "backend-1")
	leafPEM, _ := os.ReadFile(set.CertFile)
	chainFile := filepath.Join(dir, "chain.pem")
	testca.WriteFile(t, chainFile, append(leafPEM, ca.PEM...), 0o644)
	for _, c := range []struct {
		certFile, caFile string
		want             int
	}{
		{set.CertFile, set.CAFile, 2},
		{chainFile, set.CAFile, 2},
		{set.CertFile, "", 1},
	} {
		src, err := NewFileSource(c.certFile, set.KeyFile, Gate{Use: pki.Server, CAFile: c.caFile}, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := src.Certificate().Certificate
		if len(served) != c.want {
			t.Errorf("%s with CA file %q: %d certificates served, want %d", filepath.Base(c.certFile), c.caFile, len(served), c.want)
			continue
		}
		if c.want == 2 && !bytes.Equal(served[1], ca.Cert.Raw) {
			t.Errorf("%s: the second certificate served is not the CA", filepath.Base(c.certFile))
		}
	}
}
