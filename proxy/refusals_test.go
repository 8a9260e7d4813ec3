package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// TestRefusedClientCertificatesAreLogged: an mTLS listener logs a client
// it refuses with the reason (a certificate of another CA, one off the
// allow-list), once per interval however many retry.
func TestRefusedClientCertificatesAreLogged(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.PEM)
	logs := &logbuf.Buffer{}
	ls, err := NewListeners(prometheus.NewRegistry(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners: []config.Listener{{Name: "agents", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)},
			Certificate: "backend", ClientCA: caFile, AllowCN: []string{"agent-1"}}},
	}
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	addr := listenerAddr(ls, 0).String()
	attempt := func(client tls.Certificate) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{client}})
		if err != nil {
			return
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 4))
	}
	const line = `msg="proxy refused a client certificate (mTLS)" listener=agents`
	waitLines := func(want int) string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if got := strings.Count(logs.String(), line); got >= want || time.Now().After(deadline) {
				if got != want {
					t.Fatalf("%d refusal lines, want %d:\n%s", got, want, logs.String())
				}
				return logs.String()
			}
		}
	}
	for range 3 {
		attempt(other.Pair(t, "agent-1"))
	}
	if out := waitLines(1); !strings.Contains(out, "reason=bad-client-certificate") || !strings.Contains(out, "unknown authority") {
		t.Fatalf("the refusal does not say why:\n%s", out)
	}
	time.Sleep(100 * time.Millisecond)
	waitLines(1) // the two retries within the interval are not logged

	// A new interval: the next refusal is logged, with the count of those
	// that were not.
	ls.mu.Lock()
	r := &ls.running[0].server.certRefusals
	ls.mu.Unlock()
	r.mu.Lock()
	r.next = time.Now()
	r.mu.Unlock()
	attempt(ca.Pair(t, "agent-2"))
	if out := waitLines(2); !strings.Contains(out, `reason=client-not-allowed`) || !strings.Contains(out, `CN \"agent-2\"`) || !strings.Contains(out, "unlogged_since_last=2") {
		t.Fatalf("the second refusal does not name the reason, the client and the unlogged count:\n%s", out)
	}
}

// TestRefusalLogInterval: within the interval refusals are counted, not
// logged; the next line after it carries the count.
func TestRefusalLogInterval(t *testing.T) {
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	r := rateLog{every: refusalLogInterval}
	t0 := time.Now()
	for _, at := range []time.Duration{0, time.Second, refusalLogInterval - time.Millisecond, refusalLogInterval} {
		r.log(log, slog.LevelWarn, t0.Add(at), "proxy refused a client certificate (mTLS)", "listener", "agents", "reason", "client-not-allowed", "error", errors.New("x"))
	}
	out := logs.String()
	if n := strings.Count(out, "proxy refused"); n != 2 || !strings.Contains(out, "unlogged_since_last=0") || !strings.Contains(out, "unlogged_since_last=2") {
		t.Fatalf("want two lines, the second counting 2 unlogged:\n%s", out)
	}
}
