// Command loadclient drives the proxy benchmarks in bench/proxy.sh: TLS
// handshakes with or without session resumption, and many idle agent-like
// websocket connections. It also serves the plaintext websocket backend
// those idle connections end on.
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
	mode := flag.String("mode", "", "full, resume, idle or backend")
	addr := flag.String("addr", "127.0.0.1:8443", "address to connect to (or listen on, for backend)")
	caFile := flag.String("ca", "", "CA bundle that verifies the proxy")
	conc := flag.Int("c", 8, "concurrent workers (full, resume)")
	dur := flag.Duration("d", 5*time.Second, "how long to run (full, resume)")
	n := flag.Int("n", 1000, "idle connections to open (idle)")
	sources := flag.String("sources", "127.0.0.1", "comma-separated local addresses to spread connections over (idle)")
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
	default:
		log.Fatalf("-mode %q: use full, resume, idle or backend", *mode)
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
