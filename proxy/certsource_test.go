package proxy

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/rotate"
)

func servedSerial(t *testing.T, addr string, ca *testCA) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestFileSourceFollowsRenamedFiles replaces the pair by rename, the way
// installers do, and expects new handshakes to get it within a second.
func TestFileSourceFollowsRenamedFiles(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	src, err := NewFileSource(cf, kf, nil)
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
	ca := newTestCA(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	src, err := NewFileSource(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := src.Certificate()
	other, _ := ca.issueBoth(t, false)
	os.WriteFile(cf, other, 0o644) // certificate of a different key
	if err := src.Reload(); err == nil {
		t.Fatal("a certificate that does not match the key loaded")
	}
	if src.Certificate() != old {
		t.Fatal("a failed reload replaced the served pair")
	}
}

func TestFileSourceSubscriberLoadsChangedFiles(t *testing.T) {
	ca := newTestCA(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	src, err := NewFileSource(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ncf, nkf := writePairPEM(t, t.TempDir(), ca, true)
	var bus rotate.Bus
	bus.Subscribe(src.Subscriber("backend"))
	if err := bus.Publish(context.Background(), rotate.Change{Name: "other", CertFile: "/nonexistent", KeyFile: "/nonexistent"}); err != nil {
		t.Fatalf("a change for another certificate reached this source: %v", err)
	}
	if err := bus.Publish(context.Background(), rotate.Change{Name: "backend", CertFile: ncf, KeyFile: nkf}); err != nil {
		t.Fatal(err)
	}
	if _, ok := src.Certificate().PrivateKey.(interface{ Size() int }); !ok {
		t.Fatalf("source did not switch to the new RSA pair: %T", src.Certificate().PrivateKey)
	}
	if err := bus.Publish(context.Background(), rotate.Change{Name: "backend", CertFile: filepath.Join(t.TempDir(), "missing.pem"), KeyFile: nkf}); err == nil {
		t.Fatal("a change naming missing files was accepted")
	}
}
