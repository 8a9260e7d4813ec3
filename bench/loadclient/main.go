// Command loadclient drives the proxy benchmarks in bench/proxy.sh: TLS
// handshakes with or without session resumption, and many idle agent-like
// websocket connections; and bench/leak.sh: a churn of short connections
// ending every way a connection can. It also serves the plaintext
// websocket backend those connections end on.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "", "full, resume, idle, churn or backend")
	addr := flag.String("addr", "127.0.0.1:8443", "address to connect to (or listen on, for backend)")
	caFile := flag.String("ca", "", "CA bundle that verifies the proxy")
	conc := flag.Int("c", 8, "concurrent workers (full, resume)")
	dur := flag.Duration("d", 5*time.Second, "how long to run (full, resume)")
	n := flag.Int("n", 1000, "connections to open (idle, churn)")
	sources := flag.String("sources", "127.0.0.1", "comma-separated local addresses to spread connections over (idle, churn)")
	name := flag.String("name", "agent", "agent name prefix (idle)")
	tls12 := flag.Bool("tls12", false, "cap at TLS 1.2 (full, resume), where a resumed session skips the key exchange")
	flag.Parse()
	switch *mode {
	case "backend":
		backend(*addr)
	case "full", "resume":
		maxVersion := uint16(tls.VersionTLS13)
		if *tls12 {
			maxVersion = tls.VersionTLS12
		}
		handshakes(*addr, loadCA(*caFile), *mode == "resume", maxVersion, *conc, *dur)
	case "idle":
		idle(*addr, loadCA(*caFile), *n, strings.Split(*sources, ","), *name)
	case "churn":
		churn(*addr, loadCA(*caFile), *n, *conc, strings.Split(*sources, ","))
	default:
		log.Fatalf("-mode %q: use full, resume, idle, churn or backend", *mode)
	}
}

func loadCA(path string) *x509.CertPool {
	pem, err := os.ReadFile(path)
	if err != nil {
		log.Fatalf("-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		log.Fatalf("-ca %s: no certificate", path)
	}
	return pool
}

// sameCurve keeps the key exchange the same for every proxy: the Debian
// OpenSSL 3.0 peers do not offer the post-quantum hybrid Go prefers
// (P-256 is listed too: stunnel4 accepts only it for TLS 1.2).
var sameCurve = []tls.CurveID{tls.X25519, tls.CurveP256}

const request = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"

// handshakes opens connection after connection: handshake, one request
// with Connection: close, read to EOF. Without resume every connection
// gets a fresh config and no session cache, so each is a full handshake.
func handshakes(addr string, ca *x509.CertPool, resume bool, maxVersion uint16, workers int, d time.Duration) {
	var ok, failed, resumed atomic.Int64
	var serials sync.Map
	var lastErr atomic.Value
	shared := tls.NewLRUClientSessionCache(workers * 4)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				cfg := &tls.Config{RootCAs: ca, ServerName: "localhost", CurvePreferences: sameCurve, MaxVersion: maxVersion}
				if resume {
					cfg.ClientSessionCache = shared
				}
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				st := c.ConnectionState()
				if st.DidResume {
					resumed.Add(1)
				} else {
					serials.Store(st.PeerCertificates[0].SerialNumber.Text(16), true)
				}
				_, err = io.WriteString(c, request)
				if err == nil {
					_, err = io.Copy(io.Discard, c)
				}
				c.Close()
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	nserial := 0
	serials.Range(func(any, any) bool { nserial++; return true })
	fmt.Printf("connections=%d failed=%d resumed=%d serials=%d seconds=%.1f", ok.Load(), failed.Load(), resumed.Load(), nserial, d.Seconds())
	if e := lastErr.Load(); e != nil {
		fmt.Printf(" last_error=%q", e)
	}
	fmt.Println()
}

// idle opens n TLS connections, each sending a Sensu agent's websocket
// upgrade request and reading the 101, then holds them until SIGTERM.
// It prints "ready" once all are up.
func idle(addr string, ca *x509.CertPool, n int, sources []string, name string) {
	cfg := &tls.Config{RootCAs: ca, ServerName: "localhost", CurvePreferences: sameCurve}
	conns := make([]net.Conn, 0, n)
	var failed int
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(sources[i%len(sources)])}}
		c, err := tls.DialWithDialer(&d, "tcp", addr, cfg)
		if err == nil {
			err = upgrade(c, fmt.Sprintf("%s-%d", name, i))
		}
		if err != nil {
			failed++
			if failed < 5 {
				log.Printf("connection %d: %v", i, err)
			}
			continue
		}
		conns = append(conns, c)
	}
	fmt.Printf("ready open=%d failed=%d\n", len(conns), failed)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, c := range conns {
		c.Close()
	}
}

// churn opens n short connections over workers, in turn: an agent
// session closed cleanly (close_notify and FIN), plaintext sent to the TLS
// port (a failed handshake), an agent session reset (RST) after its
// upgrade, and a reset in the middle of the ClientHello. Sessions resume
// (TLS 1.2 tickets) so the handshakes stay cheap; the point is the ends.
func churn(addr string, ca *x509.CertPool, n, workers int, sources []string) {
	cache := tls.NewLRUClientSessionCache(workers * 4)
	var next, failed atomic.Int64
	var kinds [4]atomic.Int64
	var lastErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(sources[w%len(sources)])}}
			cfg := &tls.Config{RootCAs: ca, ServerName: "localhost", CurvePreferences: sameCurve,
				MaxVersion: tls.VersionTLS12, ClientSessionCache: cache}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				kind := i % 4
				if err := churnOne(&d, addr, cfg, kind, i); err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				kinds[kind].Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("connections=%d clean=%d not_tls=%d reset=%d reset_in_handshake=%d failed=%d seconds=%.1f",
		kinds[0].Load()+kinds[1].Load()+kinds[2].Load()+kinds[3].Load(), kinds[0].Load(), kinds[1].Load(), kinds[2].Load(), kinds[3].Load(),
		failed.Load(), time.Since(start).Seconds())
	if e := lastErr.Load(); e != nil {
		fmt.Printf(" last_error=%q", e)
	}
	fmt.Println()
}

func churnOne(d *net.Dialer, addr string, cfg *tls.Config, kind, i int64) error {
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	tcp := raw.(*net.TCPConn)
	defer tcp.Close()
	tcp.SetDeadline(time.Now().Add(10 * time.Second))
	switch kind {
	case 1: // not TLS: the proxy fails the handshake and closes
		if _, err := io.WriteString(tcp, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, tcp)
		return err
	case 3: // reset halfway through a ClientHello
		if _, err := tcp.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00}); err != nil {
			return err
		}
		return tcp.SetLinger(0)
	}
	c := tls.Client(tcp, cfg)
	if err := c.Handshake(); err != nil {
		return err
	}
	if err := upgrade(c, fmt.Sprintf("churn-%d", i)); err != nil {
		return err
	}
	if kind == 2 { // reset after the upgrade: no close_notify, no FIN
		return tcp.SetLinger(0)
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, c)
	return err
}

func upgrade(c net.Conn, agent string) error {
	req := "GET / HTTP/1.1\r\nHost: bench:8081\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sensu-AgentName: " + agent + "\r\nSensu-Namespace: default\r\nSensu-User: agent\r\n" +
		"Sensu-Subscriptions: linux\r\nAuthorization: Basic YWdlbnQ6UEBzc3cwcmQh\r\nAccept: application/octet-stream\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 101") {
		return fmt.Errorf("upgrade answered %q", line)
	}
	return nil
}

// backend accepts plaintext connections, answers a websocket upgrade with
// 101 and then discards whatever arrives, like an idle agent session.
func backend(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("backend listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Print(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			r := bufio.NewReaderSize(c, 1024)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if line == "\r\n" {
					break
				}
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(io.Discard, r)
		}()
	}
}
