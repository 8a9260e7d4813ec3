package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// BenchmarkAcceptToRelay is one client connection through the proxy from
// accept to a relayed byte and back: sniff, admission, target dial and
// relay setup, with no TLS on the client side so the proxy's own cost
// shows. B/op and allocs/op count the whole process, server included.
func BenchmarkAcceptToRelay(b *testing.B) {
	ca := testca.New(b)
	tlsTarget := func() string { addr, _ := tlsEchoTarget(b, ca); return addr }
	for _, c := range []struct {
		name string
		mode func() Mode
	}{
		{"dual-plaintext", func() Mode { return &Dual{Target: echoServer(b), AllowPlaintext: true} }},
		{"originate", func() Mode {
			return &Originate{TLS: clientTLSConfig(Policy{}, ca.Pool(), nil), Targets: []string{tlsTarget(), tlsTarget()}, Spread: true}
		}},
	} {
		_, addr := startServer(b, Options{Name: c.name, Mode: c.mode()})
		hello := []byte("GET / HTTP/1.1\r\n\r\n")
		one := func() error {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.Write(hello); err != nil {
				return err
			}
			_, err = io.ReadFull(conn, make([]byte, len(hello)))
			return err
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := one(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := one(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAgentBookTurnover fills one listener's agent book and keeps it
// turning over, each new name evicting the oldest (a client inventing
// names, or bench/leak.sh), and reports the heap the full book holds.
func BenchmarkAgentBookTurnover(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var book agentBook
		for i := range 2 * maxAgents {
			book.record("proxy", AgentHello{Namespace: "default", Name: fmt.Sprintf("churn-%d", i)}, TransportTLS, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-heap")
		runtime.KeepAlive(&book)
	}
}

// BenchmarkAgentSession is one Sensu agent session through an mTLS
// terminate listener: a full TLS 1.3 handshake with a client certificate,
// the websocket upgrade, the target's 101, and one message each way. The
// cases differ only in what the listener checks, so their ratio is the
// cost of the binding (agent-identity) and of a deny list per session.
func BenchmarkAgentSession(b *testing.B) {
	ca := testca.New(b)
	target := newAgentTarget(b)
	pair := ca.Issue(b, testca.Leaf{CN: "backend", Hosts: []string{"localhost"}, URIs: nil}).Pair(b)
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "ca.pem"), ca.PEM)
	denyFile := filepath.Join(dir, "deny")
	var list strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&list, "serial %x\nagent retired-%d\n", 1<<40+i, i)
	}
	writeFile(b, denyFile, []byte(list.String()))
	client := ca.Issue(b, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: []string{AgentURI("default", "agent-1")}}).Pair(b)
	head := []byte(upgradeHead("agent-1", "default"))
	for _, c := range []struct {
		name     string
		headers  bool
		identity AgentIdentity
		deny     bool
	}{
		{"client-ca", false, IdentityNone, false},
		{"client-ca+agent-headers", true, IdentityNone, false},
		{"binding-cn", false, IdentityCN, false},
		{"binding-uri", false, IdentityURI, false},
		{"binding-cn+deny-2000", false, IdentityCN, true},
	} {
		pool, err := LoadCAPool(filepath.Join(dir, "ca.pem"))
		if err != nil {
			b.Fatal(err)
		}
		auth := &ClientAuth{CAs: pool, CertOptional: c.identity != IdentityNone}
		opt := Options{Name: c.name, Mode: &Terminate{TLS: serverTLSConfig(Policy{}, staticSource{&pair}, auth), Auth: auth, Target: target.addr},
			AgentHeaders: c.headers, Identity: c.identity, Log: slog.New(slog.DiscardHandler)}
		if c.deny {
			if opt.Deny, err = LoadDenyList(denyFile); err != nil {
				b.Fatal(err)
			}
		}
		_, addr := startServer(b, opt)
		conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{client}}
		one := func() error {
			conn, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.Write(head); err != nil {
				return err
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				return fmt.Errorf("upgrade answered %s", resp.Status)
			}
			if _, err := conn.Write([]byte("ping")); err != nil {
				return err
			}
			_, err = io.ReadFull(br, make([]byte, 4))
			return err
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := one(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBindingCheck is the binding's own work per session, without
// the network: parse the upgrade head, look the certificate's serial and
// the agent up in a deny list of 2000 entries, compare the identity.
func BenchmarkBindingCheck(b *testing.B) {
	ca := testca.New(b)
	leaf := ca.Issue(b, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: []string{AgentURI("default", "agent-1")}}).Pair(b).Leaf
	var list strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&list, "serial %x\nagent retired-%d\n", 1<<40+i, i)
	}
	set, err := parseDenyList("bench", []byte(list.String()))
	if err != nil {
		b.Fatal(err)
	}
	deny := &DenyList{}
	deny.set.Store(set)
	head := []byte(upgradeHead("agent-1", "default"))
	peer := Peer{Transport: TransportTLS, Chain: []*x509.Certificate{leaf}}
	for _, id := range []AgentIdentity{IdentityCN, IdentityURI} {
		opt := &Options{Identity: id, Deny: deny}
		b.Run(string(id), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h, err := ParseAgentHello(head)
				if err != nil {
					b.Fatal(err)
				}
				if err := opt.bind(peer, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
