package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// TestListenersStartBeforeIssuanceAndFollowTheBus: a listener whose
// certificate does not exist yet fails handshakes, then serves the pair
// the first Change announces.
func TestListenersStartBeforeIssuanceAndFollowTheBus(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: filepath.Join(dir, "backend.pem"), KeyFile: filepath.Join(dir, "backend-key.pem")}},
		Listeners:    []config.Listener{{Name: "sensu-agent", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	var bus event.Bus
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus.Subscribe(ls)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	addr := listenerAddr(ls, 0).String()
	clientConf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	if c, err := tls.Dial("tcp", addr, clientConf); err == nil {
		c.Close()
		t.Fatal("handshake succeeded before the certificate was issued")
	}
	certPEM, keyPEM := localhostPEM(t, ca, false)
	writeFile(t, cfg.Certificates[0].CertFile, certPEM)
	writeFile(t, cfg.Certificates[0].KeyFile, keyPEM)
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", Reason: event.ReasonInitial,
		CertFile: cfg.Certificates[0].CertFile, KeyFile: cfg.Certificates[0].KeyFile}); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, clientConf)
	if err != nil {
		t.Fatalf("handshake after the initial Change: %v", err)
	}
	c.Close()
}

func TestListenersBadListenerStartsNothing(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	first := testpeer.FreeAddr(t)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners: []config.Listener{
			{Name: "good", Mode: "terminate", Listen: first, Targets: []string{"127.0.0.1:1"}, Certificate: "backend"},
			{Name: "bad", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{"127.0.0.1:1"}, Certificate: "missing"},
		},
	}
	ls := newTestListeners(t)
	cfg.File = "/etc/sensu/tlsd.yml"
	err := apply(ls, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), `/etc/sensu/tlsd.yml: listeners[1] (bad): certificate "missing" is not in certificates`) {
		t.Fatalf("Prepare = %v, want an error naming the file, the listener and the missing certificate", err)
	}
	ln, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatalf("the valid listener %s stayed bound after the config was rejected: %v", first, err)
	}
	ln.Close()
}

// TestListenersReloadKeepsUpdatesOrReplaces: an unchanged config keeps
// the running server, a broken one keeps it too, a changed setting
// updates it in place (same server, same socket, an open session
// survives), and a changed mode replaces it on the same port.
func TestListenersReloadKeepsUpdatesOrReplaces(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	addr := testpeer.FreeAddr(t)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	ls := newTestListeners(t)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	server := func() *Server { ls.mu.Lock(); defer ls.mu.Unlock(); return ls.running[0].server }
	first := server()
	if err := apply(ls, cfg); err != nil || server() != first {
		t.Fatalf("an unchanged config replaced the listener (err %v)", err)
	}
	broken := *cfg
	broken.Listeners = []config.Listener{{Name: "api", Mode: "reverse", Listen: addr, Targets: []string{"127.0.0.1:1"}}}
	if err := apply(ls, &broken); err == nil || server() != first {
		t.Fatalf("a broken config: %v; listener replaced: %v", err, server() != first)
	}

	session, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	changed := *cfg
	changed.Listeners = []config.Listener{cfg.Listeners[0]}
	changed.Listeners[0].IdleTimeout = time.Minute
	changed.Listeners[0].MaxConns = 7
	if err := apply(ls, &changed); err != nil || server() != first {
		t.Fatalf("a changed setting replaced the listener instead of updating it (err %v)", err)
	}
	if o := first.options(); o.IdleTimeout != time.Minute || o.MaxConns != 7 {
		t.Fatalf("the update did not reach the server: idle %v, max-conns %d", o.IdleTimeout, o.MaxConns)
	}
	session.Write([]byte("ping"))
	session.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(session, make([]byte, 4)); err != nil {
		t.Fatalf("a session open across the in-place update broke: %v", err)
	}

	dual := changed
	dual.Listeners = []config.Listener{changed.Listeners[0]}
	dual.Listeners[0].Mode = "dual"
	if err := apply(ls, &dual); err != nil || server() == first {
		t.Fatalf("a changed mode did not replace the listener: %v", err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("the replacement listener does not serve on %s: %v", addr, err)
	}
	c.Close()
	session.Write([]byte("pong"))
	if _, err := io.ReadFull(session, make([]byte, 4)); err != nil {
		t.Fatalf("a session of the replaced listener was cut instead of drained: %v", err)
	}
}

// TestListenersUpdateClosesPlaintextKeepsTLS: turning allow-plaintext off
// on a dual listener closes its plaintext sessions, keeps its TLS ones and
// refuses new plaintext clients, without rebinding.
func TestListenersUpdateClosesPlaintextKeepsTLS(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners: []config.Listener{{Name: "agents", Mode: "dual", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)},
			Certificate: "backend", AllowPlain: true}},
	}
	ls := newTestListeners(t)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	addr := listenerAddr(ls, 0).String()
	echo := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, len(msg)))
		return err
	}
	secure, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, c := range []net.Conn{secure, plain} {
		if err := echo(c, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	enforce := *cfg
	enforce.Listeners = []config.Listener{cfg.Listeners[0]}
	enforce.Listeners[0].AllowPlain = false
	if err := apply(ls, &enforce); err != nil {
		t.Fatal(err)
	}
	if listenerAddr(ls, 0).String() != addr {
		t.Fatalf("the listener moved from %s to %s", addr, listenerAddr(ls, 0))
	}
	if err := echo(secure, "GET /again HTTP/1.1\r\n"); err != nil {
		t.Fatalf("the TLS session did not survive turning plaintext off: %v", err)
	}
	if err := echo(plain, "GET /again HTTP/1.1\r\n"); err == nil {
		t.Fatal("the plaintext session survived turning plaintext off")
	}
	refused, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	refused.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(refused)
	if !strings.HasPrefix(string(got), "HTTP/1.1 400") {
		t.Fatalf("a new plaintext client got %q, want the 400 refusal", got)
	}
}

// TestListenersReloadOnBusyPortRestoresPrevious: when the new listeners
// cannot bind (the port was taken meanwhile), the previous ones come back
// on their port instead of leaving the daemon without a proxy.
func TestListenersReloadOnBusyPortRestoresPrevious(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	addr := testpeer.FreeAddr(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	ls := newTestListeners(t)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	moved := *cfg
	moved.Listeners = []config.Listener{cfg.Listeners[0]}
	moved.Listeners[0].Listen = busy.Addr().String()
	moved.File = "/etc/sensu/tlsd.yml"
	err = apply(ls, &moved)
	want := fmt.Sprintf("/etc/sensu/tlsd.yml: listeners[0] (api): cannot listen on %[1]s: bind: address already in use (the previous listeners are back); "+
		"fix: stop what listens on %[1]s (ss -ltnp shows it), or give listeners[0].listen another address", busy.Addr())
	if err == nil || err.Error() != want {
		t.Fatalf("Commit on a busy port = %v\nwant %s", err, want)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("the previous listener does not serve on %s again: %v", addr, err)
	}
	c.Close()
	prepared, err := ls.Prepare(&moved)
	if err != nil {
		t.Errorf("Prepare binds nothing, so a busy port is no error there: %v", err)
	} else {
		prepared.Abort()
	}
}

// TestListenersUpdateRechecksClientCertificates: narrowing the allow-list,
// moving client-ca to another CA or turning mTLS on closes the sessions
// whose client certificate the new settings refuse, and keeps the rest.
func TestListenersUpdateRechecksClientCertificates(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	dir := t.TempDir()
	cf, kf := writePairPEM(t, dir, ca, false)
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	writeFile(t, caFile, ca.PEM)
	writeFile(t, otherFile, other.PEM)
	addr, target := testpeer.FreeAddr(t), echoServer(t)
	listener := func(clientCA string, allowCN ...string) *config.Config {
		return &config.Config{
			Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
			Listeners: []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{target},
				Certificate: "backend", ClientCA: clientCA, AllowCN: allowCN}},
		}
	}
	ls := newTestListeners(t)
	var first *Server
	apply := func(cfg *config.Config) {
		t.Helper()
		if err := apply(ls, cfg); err != nil {
			t.Fatal(err)
		}
		if s := ls.running[0].server; first == nil {
			first = s
		} else if s != first {
			t.Fatal("the listener was replaced, not updated in place")
		}
	}
	session := func(cn string) net.Conn {
		t.Helper()
		conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
		if cn != "" {
			conf.Certificates = []tls.Certificate{ca.Pair(t, cn)}
		}
		c, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := echoMsg(c, "hello"); err != nil {
			t.Fatalf("session %q: %v", cn, err)
		}
		return c
	}
	check := func(step string, alive, closed []net.Conn) {
		t.Helper()
		for _, c := range alive {
			if err := echoMsg(c, step); err != nil {
				t.Errorf("%s: a session that still passes was closed: %v", step, err)
			}
		}
		for _, c := range closed {
			if err := echoMsg(c, step); err == nil {
				t.Errorf("%s: a session the new settings refuse survived", step)
			}
		}
	}

	apply(listener(""))
	anonymous := session("")
	apply(listener(caFile, "a", "c"))
	check("mTLS on", nil, []net.Conn{anonymous})
	a, c := session("a"), session("c")
	apply(listener(caFile, "a", "c", "d"))
	check("allow-cn widened", []net.Conn{a, c}, nil)
	apply(listener(caFile, "a"))
	check("allow-cn narrowed", []net.Conn{a}, []net.Conn{c})
	apply(listener(otherFile, "a"))
	check("client-ca moved to another CA", nil, []net.Conn{a})
}

// echoMsg sends msg and reads it back within 5 seconds.
func echoMsg(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, len(msg)))
	return err
}

// TestListenersCommitAfterShutdownBindsNothing: a reload that arrives
// during or after Shutdown starts no listener nothing would close, whether
// it was prepared before Shutdown or after.
func TestListenersCommitAfterShutdownBindsNothing(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	addr := testpeer.FreeAddr(t)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: addr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	ls, err := NewListeners(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := ls.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := before.Commit(context.Background()); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Commit after Shutdown = %v, want a refusal", err)
	}
	if err := apply(ls, cfg); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Prepare after Shutdown = %v, want a refusal", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("a listener accepts on %s after Shutdown", addr)
	}
}

// apply prepares and commits cfg, as the daemon does at start and on a
// reload every part accepts.
func apply(ls *Listeners, cfg *config.Config) error {
	p, err := ls.Prepare(cfg)
	if err != nil {
		return err
	}
	return p.Commit(context.Background())
}

// TestListenersPrepareChangesNothingUntilCommit: Prepare binds nothing
// and leaves the running listener serving; Abort keeps it; Commit of what
// Prepare built moves the listener, and the closing of the old one is
// logged with its name and address.
func TestListenersPrepareChangesNothingUntilCommit(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	oldAddr, newAddr := testpeer.FreeAddr(t), testpeer.FreeAddr(t)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: oldAddr, Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	logs := &logbuf.Buffer{}
	ls, err := NewListeners(prometheus.NewRegistry(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	serves := func(addr string) bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	moved := *cfg
	moved.Listeners = []config.Listener{cfg.Listeners[0]}
	moved.Listeners[0].Listen = newAddr
	for _, step := range []string{"prepared", "aborted"} {
		p, err := ls.Prepare(&moved)
		if err != nil {
			t.Fatal(err)
		}
		if step == "aborted" {
			p.Abort()
		}
		if !serves(oldAddr) || serves(newAddr) {
			t.Fatalf("%s: the running listener changed before Commit (old serves %v, new serves %v)", step, serves(oldAddr), serves(newAddr))
		}
	}
	p, err := ls.Prepare(&moved)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if serves(oldAddr) || !serves(newAddr) {
		t.Fatalf("after Commit: old serves %v, new serves %v; want the listener moved", serves(oldAddr), serves(newAddr))
	}
	if want := `msg="proxy listener closed: it is not in the new configuration at this address and mode; open sessions drain" listener=api mode=terminate address=` + oldAddr; !strings.Contains(logs.String(), want) {
		t.Fatalf("the closing of the old listener was not logged as %q:\n%s", want, logs.String())
	}
}

// TestListenersCommitPassesOnChangesSincePrepare: a certificate Change
// delivered between Prepare and Commit reaches the running listener; the
// one Commit swaps in, built from files read before it, gets it too.
func TestListenersCommitPassesOnChangesSincePrepare(t *testing.T) {
	ca := testca.New(t)
	cf, kf := writePairPEM(t, t.TempDir(), ca, false)
	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "backend", CertFile: cf, KeyFile: kf}},
		Listeners:    []config.Listener{{Name: "api", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{echoServer(t)}, Certificate: "backend"}},
	}
	var bus event.Bus
	ls := newTestListeners(t)
	bus.Subscribe(ls)
	if err := apply(ls, cfg); err != nil {
		t.Fatal(err)
	}
	addr := listenerAddr(ls, 0).String()
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	first := served()
	changed := *cfg
	changed.Listeners = []config.Listener{cfg.Listeners[0]}
	changed.Listeners[0].IdleTimeout = time.Minute // updated in place, with the Files Prepare built
	p, err := ls.Prepare(&changed)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := localhostPEM(t, ca, false)
	writeFile(t, cf, certPEM)
	writeFile(t, kf, keyPEM)
	if err := bus.Publish(context.Background(), event.Change{Name: "backend", Reason: event.ReasonRenewal, CertFile: cf, KeyFile: kf}); err != nil {
		t.Fatal(err)
	}
	renewed := served()
	if bytes.Equal(renewed, first) {
		t.Fatal("the running listener did not take the renewal")
	}
	if err := p.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := served(); !bytes.Equal(got, renewed) {
		t.Fatal("after Commit the listener serves the certificate from before the renewal announced while the reload was prepared")
	}
}
