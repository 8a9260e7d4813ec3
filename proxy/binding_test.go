package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// agentTarget stands in for the backend's agent port at the byte level:
// it answers an upgrade request with Sensu-AgentName 101 and then echoes,
// and anything else 401, keeping the connection open for another request
// as net/http would. It records every request line and agent it saw.
type agentTarget struct {
	addr string
	mu   sync.Mutex
	seen []string // "METHOD PATH agent"
}

func newAgentTarget(t testing.TB) *agentTarget { return newAgentTargetTLS(t, nil) }

// newAgentTargetTLS is newAgentTarget serving TLS with conf (nil: plaintext).
func newAgentTargetTLS(t testing.TB, conf *tls.Config) *agentTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	t.Cleanup(func() { ln.Close() })
	at := &agentTarget{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go at.serve(c)
		}
	}()
	return at
}

func (at *agentTarget) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		name := req.Header.Get("Sensu-AgentName")
		at.mu.Lock()
		at.seen = append(at.seen, req.Method+" "+req.URL.Path+" "+name)
		at.mu.Unlock()
		if name == "" || req.Header.Get("Upgrade") != "websocket" {
			io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 16\r\n\r\nbad credentials\n")
			continue
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br)
		return
	}
}

func (at *agentTarget) requests() []string {
	at.mu.Lock()
	defer at.mu.Unlock()
	return append([]string(nil), at.seen...)
}

// upgradeHead is the request a Sensu agent opens its session with.
func upgradeHead(name, namespace string, extra ...string) string {
	h := "GET / HTTP/1.1\r\nHost: backend:8081\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sensu-AgentName: " + name + "\r\nSensu-Namespace: " + namespace + "\r\nSensu-User: agent\r\n" +
		"Authorization: Basic YWdlbnQ6UEBzc3cwcmQh\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// bindingServer is a terminate listener with client-ca, identity id and
// deny (nil: none), forwarding to target.
func bindingServer(t *testing.T, ca *testca.CA, id AgentIdentity, deny *DenyList, target string, log *slog.Logger) (*Server, string) {
	t.Helper()
	pair := ca.Issue(t, testca.Leaf{CN: "backend", Hosts: []string{"localhost"}, URIs: nil}).Pair(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	pool, err := LoadCAPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	auth := &ClientAuth{CAs: pool, CertOptional: id != IdentityNone}
	return startServer(t, Options{Name: "agents", Mode: &Terminate{TLS: serverTLSConfig(Policy{}, staticSource{&pair}, auth), Auth: auth, Target: target},
		Identity: id, Deny: deny, Log: log})
}

// agentConn is one client session through the proxy.
type agentConn struct {
	*tls.Conn
	br *bufio.Reader
}

// dialAgent sends an upgrade as name/namespace with client certificate
// cert (nil: none) and returns the connection and the status answered.
func dialAgent(t *testing.T, addr string, ca *testca.CA, cert *tls.Certificate, head string) (*agentConn, *http.Response) {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	ac := &agentConn{Conn: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(ac.br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the upgrade: %v", err)
	}
	return ac, resp
}

// echo checks the session relays both ways.
func (a *agentConn) echo(msg string) error {
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(a, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(a.br, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestBindingCNAdmitsTheNamedAgentAndRefusesOthersBeforeTheTarget(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	logs := &syncWriter{w: new(bytes.Buffer)}
	log := slog.New(slog.NewTextHandler(logs, nil))
	_, addr := bindingServer(t, ca, IdentityCN, nil, target.addr, log)
	agent1 := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)

	a, resp := dialAgent(t, addr, ca, &agent1, upgradeHead("agent-1", "default"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("agent-1 with its own certificate: %s", resp.Status)
	}
	if err := a.echo("hello"); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, head string
		cert       *tls.Certificate
		want       string
	}{
		{"another name", upgradeHead("agent-2", "default"), &agent1, `certificate CN "agent-1" may not connect as agent "agent-2"`},
		{"no certificate", upgradeHead("agent-1", "default"), nil, "no client certificate"},
		{"two names", upgradeHead("agent-1", "default", "Sensu-AgentName: agent-2"), &agent1, "not a Sensu agent websocket upgrade"},
		{"no agent", "GET /health HTTP/1.1\r\nHost: b\r\n\r\n", &agent1, "not a Sensu agent websocket upgrade"},
	} {
		_, resp := dialAgent(t, addr, ca, c.cert, c.head)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: %s, want 403", c.name, resp.Status)
		}
		if b := body(t, resp); !strings.Contains(b, c.want) {
			t.Fatalf("%s: 403 body %q does not say %q", c.name, b, c.want)
		}
	}
	if got := target.requests(); len(got) != 1 || got[0] != "GET / agent-1" {
		t.Fatalf("the target saw %q; want only agent-1's upgrade", got)
	}
	// Rate-limited: the first refusal is logged with both identities, the
	// three right after it are held back.
	out := logs.String()
	if n := strings.Count(out, `msg="agent refused"`); n != 1 {
		t.Fatalf("%d refusal lines within the rate limit, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `certificate="CN=agent-1"`) || !strings.Contains(out, "claimed_agent=default/agent-2") {
		t.Fatalf("refusal line lacks the certificate or the claimed agent:\n%s", out)
	}
}

func TestBindingURIBindsTheNamespace(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	_, addr := bindingServer(t, ca, IdentityURI, nil, target.addr, nil)
	cert := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: []string{"sensu://prod/agent-1"}}).Pair(t)
	if _, resp := dialAgent(t, addr, ca, &cert, upgradeHead("agent-1", "prod")); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("agent-1 in prod: %s", resp.Status)
	}
	_, resp := dialAgent(t, addr, ca, &cert, upgradeHead("agent-1", "default"))
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "sensu://prod/agent-1 may not connect as agent sensu://default/agent-1") {
		t.Fatalf("agent-1 claiming namespace default: %s %q", resp.Status, b)
	}
	noURI := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)
	_, resp = dialAgent(t, addr, ca, &noURI, upgradeHead("agent-1", "prod"))
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "no sensu://NAMESPACE/AGENT URI SAN") {
		t.Fatalf("a certificate without a URI SAN: %s %q", resp.Status, b)
	}
}

// TestBindingAllowsNoSecondRequestAfterARefusedUpgrade: the backend keeps
// a connection open after a 401, so a client could follow its bound
// request with one naming another agent. The proxy ends the connection
// instead of passing that on.
func TestBindingAllowsNoSecondRequestAfterARefusedUpgrade(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	_, addr := bindingServer(t, ca, IdentityCN, nil, target.addr, nil)
	cert := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)
	notUpgrade := "GET / HTTP/1.1\r\nHost: b\r\nSensu-AgentName: agent-1\r\nSensu-Namespace: default\r\n\r\n"
	smuggled := upgradeHead("agent-2", "default")
	a, resp := dialAgent(t, addr, ca, &cert, notUpgrade+smuggled)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the target's refusal did not come back: %s", resp.Status)
	}
	body(t, resp)
	if _, err := http.ReadResponse(a.br, nil); err == nil {
		t.Fatal("a second answer came back on the same connection")
	}
	if got := target.requests(); len(got) != 1 || got[0] != "GET / agent-1" {
		t.Fatalf("the target saw %q; want agent-1's request alone", got)
	}
}

func TestDenyListRefusesAndCutsOffOnReloadKeepingOthers(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	dir := t.TempDir()
	denyFile := filepath.Join(dir, "deny")
	writeFile(t, denyFile, []byte("# revoked\nagent prod/old-agent\n"))
	deny, err := LoadDenyList(denyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, addr := bindingServer(t, ca, IdentityCN, deny, target.addr, nil)
	a1, a2 := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t), ca.Issue(t, testca.Leaf{CN: "agent-2", Hosts: nil, URIs: nil}).Pair(t)
	s1, resp := dialAgent(t, addr, ca, &a1, upgradeHead("agent-1", "default"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(resp.Status)
	}
	s2, resp := dialAgent(t, addr, ca, &a2, upgradeHead("agent-2", "default"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(resp.Status)
	}
	// The file watch picks the new serial up on its own.
	writeFile(t, denyFile, []byte("agent prod/old-agent\nserial "+strings.ToUpper(a1.Leaf.SerialNumber.Text(16))+"\n"))
	deadline := time.Now().Add(5 * time.Second)
	for s1.echo("x") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the denied serial's session is still open 5s after the deny list changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s2.echo("still here"); err != nil {
		t.Fatalf("the session of an agent not denied was closed: %v", err)
	}
	_, resp = dialAgent(t, addr, ca, &a1, upgradeHead("agent-1", "default"))
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "is on the deny list") {
		t.Fatalf("the denied certificate reconnecting: %s %q", resp.Status, b)
	}
	// A list that does not parse keeps the one in use.
	writeFile(t, denyFile, []byte("revoke everything\n"))
	if _, err := s.ReloadDeny(); err == nil || !strings.Contains(err.Error(), denyFile+":1") {
		t.Fatalf("a broken deny list: %v", err)
	}
	if _, resp := dialAgent(t, addr, ca, &a1, upgradeHead("agent-1", "default")); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a broken deny list replaced the one in use: %s", resp.Status)
	}
	if err := s2.echo("after the broken list"); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateTurningOnBindingClosesSessionsItRefuses: a reload that turns
// binding on keeps the agent whose certificate names it and closes the
// one connected under another name.
func TestUpdateTurningOnBindingClosesSessionsItRefuses(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	s, addr := bindingServer(t, ca, IdentityNone, nil, target.addr, nil)
	cert := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)
	right, resp := dialAgent(t, addr, ca, &cert, upgradeHead("agent-1", "default"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(resp.Status)
	}
	// Without binding the head is not read, so the proxy cannot know the
	// name: AgentHeaders off means the binding closes it too.
	opt := *s.options()
	opt.Identity = IdentityCN
	if closed := s.Update(opt); closed != 1 {
		t.Fatalf("Update closed %d sessions, want the 1 whose agent it never read", closed)
	}
	if right.echo("x") == nil {
		t.Fatal("an unbound session survived the binding")
	}
	right, _ = dialAgent(t, addr, ca, &cert, upgradeHead("agent-1", "default"))
	wrong, resp := dialAgent(t, addr, ca, &cert, upgradeHead("agent-2", "default"))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("agent-2 on agent-1's certificate after the update: %s", resp.Status)
	}
	wrong.Close()
	if closed := s.Update(opt); closed != 0 {
		t.Fatalf("an unchanged update closed %d sessions", closed)
	}
	if err := right.echo("bound"); err != nil {
		t.Fatal(err)
	}
}

// TestBindingInFrontOfATLSTarget: with target-tls the listener reads the
// agents' requests and carries them to a backend that serves TLS itself
// on its loopback agent port (the open-source build's phase 4).
func TestBindingInFrontOfATLSTarget(t *testing.T) {
	ca := testca.New(t)
	backendPair := ca.Issue(t, testca.Leaf{CN: "backend", Hosts: []string{"127.0.0.1"}, URIs: nil}).Pair(t)
	target := newAgentTargetTLS(t, &tls.Config{Certificates: []tls.Certificate{backendPair}})
	dir := t.TempDir()
	cert, key := writePairPEM(t, dir, ca, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.PEM)
	spec := Spec{Name: "agents", Mode: "terminate", Listen: "127.0.0.1:0", Targets: []string{target.addr}, CertFile: cert, KeyFile: key,
		ClientCAFile: caFile, AgentIdentity: "cn", TargetTLS: true, CAFile: caFile}
	opt, files, err := buildOptions(spec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if files.TargetCA == nil || files.TargetCA.Path() != caFile {
		t.Fatalf("the target CA is not followed: %+v", files)
	}
	_, addr := startServer(t, opt)
	agent := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)
	a, resp := dialAgent(t, addr, ca, &agent, upgradeHead("agent-1", "default"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("through a TLS target: %s", resp.Status)
	}
	if err := a.echo("over TLS twice"); err != nil {
		t.Fatal(err)
	}
	if _, resp := dialAgent(t, addr, ca, &agent, upgradeHead("agent-2", "default")); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("agent-2 on agent-1's certificate: %s", resp.Status)
	}
	spec.Mode, spec.AgentIdentity, spec.ClientCAFile, spec.CertFile, spec.KeyFile = "originate", "", "", "", ""
	if _, _, err := buildOptions(spec, nil, nil); err == nil || !strings.Contains(err.Error(), "Remove target-tls") {
		t.Fatalf("target-tls on originate: %v", err)
	}
}

func TestParseDenyList(t *testing.T) {
	d, err := parseDenyList("deny", []byte("serial 0A:1b\n  agent web-1  # retired\nagent prod/db-1\n\n# comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.serials["a1b"] || !d.agents["web-1"] || !d.scoped[[2]string{"prod", "db-1"}] || d.len() != 3 {
		t.Fatalf("parsed %+v", d)
	}
	for in, want := range map[string]string{
		"serial xyz":      "deny:1: serial \"xyz\" is not hex",
		"ok\n":            "deny:1: \"ok\" is neither serial nor agent",
		"\nagent a b":     "deny:2: agent \"a b\"",
		"agent a/b/c":     "agent \"a/b/c\"",
		"serial -1":       "not hex",
		"agent \x01name":  "agent \"\\x01name\"",
		"serial 0x12":     "not hex",
		"agent /nameonly": "agent \"/nameonly\"",
	} {
		if _, err := parseDenyList("deny", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	writeFile(t, big, bytes.Repeat([]byte("# padding\n"), maxDenyFile/10+1))
	if _, err := LoadDenyList(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an oversized deny list: %v", err)
	}
	if _, err := LoadDenyList(filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing deny list: %v", err)
	}
}

func TestParseAgentURI(t *testing.T) {
	ns, name, err := parseAgentURI(AgentURI("prod", "web-1"))
	if err != nil || ns != "prod" || name != "web-1" {
		t.Fatalf("round trip: %q %q %v", ns, name, err)
	}
	for _, in := range []string{"spiffe://prod/web-1", "sensu://prod/", "sensu://prod/a/b", "sensu://prod:1/a", "sensu://u@prod/a",
		"sensu://prod/a?x", "sensu://prod/a#f", "sensu://prod/a%2Fb", "sensu:///a", "sensu:prod/a"} {
		if _, _, err := parseAgentURI(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestBuildAgentIdentityNeedsClientCAAndNoPlaintext(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cert, key := writePairPEM(t, dir, ca, false)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.PEM)
	base := Spec{Name: "a", Mode: "dual", Listen: "127.0.0.1:0", Targets: []string{"127.0.0.1:1"}, CertFile: cert, KeyFile: key}
	for _, c := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.AgentIdentity = "cn" }, "needs client-ca"},
		{func(s *Spec) { s.AgentIdentity = "name"; s.ClientCAFile = caFile }, `agent-identity "name" is unknown`},
		{func(s *Spec) { s.AgentIdentity = "cn"; s.ClientCAFile = caFile; s.AllowPlaintext = true }, "remove allow-plaintext"},
		{func(s *Spec) { s.DenyFile = filepath.Join(dir, "none") }, "deny-file refuses certificate serials"},
		{func(s *Spec) { s.ClientCAFile = caFile; s.DenyFile = filepath.Join(dir, "none") }, "does not exist"},
		{func(s *Spec) { s.Mode = "originate"; s.AgentIdentity = "cn" }, "mode originate takes plaintext clients"},
	} {
		spec := base
		c.edit(&spec)
		if _, _, err := Build(spec, nil, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", spec, err, c.want)
		}
	}
	spec := base
	spec.AgentIdentity, spec.ClientCAFile = "uri", caFile
	if _, _, err := Build(spec, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// syncWriter serialises writes of concurrent log lines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(*bytes.Buffer).String()
}

// TestDenyListWithoutBindingAnswersTheRequest: a listener that reads no
// request head still refuses a denied serial, answering once the request
// came, so an HTTP client reads the 403 as the answer to it.
func TestDenyListWithoutBindingAnswersTheRequest(t *testing.T) {
	ca := testca.New(t)
	target := newAgentTarget(t)
	cert := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t)
	denyFile := filepath.Join(t.TempDir(), "deny")
	writeFile(t, denyFile, []byte("serial "+cert.Leaf.SerialNumber.Text(16)+"\n"))
	deny, err := LoadDenyList(denyFile)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := bindingServer(t, ca, IdentityNone, deny, target.addr, nil)
	_, resp := dialAgent(t, addr, ca, &cert, upgradeHead("agent-1", "default"))
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "is on the deny list") {
		t.Fatalf("a denied serial on a listener without binding: %s %q", resp.Status, b)
	}
	if got := target.requests(); len(got) != 0 {
		t.Fatalf("the target saw %q", got)
	}
}

func TestRefusalsAreToldApartByTheirErrors(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: nil, URIs: nil}).Pair(t).Leaf
	set, err := parseDenyList("deny", []byte("agent agent-9\n"))
	if err != nil {
		t.Fatal(err)
	}
	deny := &DenyList{}
	deny.set.Store(set)
	opt := &Options{Identity: IdentityCN, Deny: deny}
	peer := Peer{Transport: TransportTLS, Chain: []*x509.Certificate{leaf}}
	if err := opt.bind(peer, &AgentHello{Name: "agent-2", Namespace: "default"}); !errors.Is(err, ErrAgentIdentity) || errors.Is(err, ErrDenied) {
		t.Errorf("another name: %v", err)
	}
	if err := opt.bind(peer, &AgentHello{Name: "agent-9", Namespace: "prod"}); !errors.Is(err, ErrDenied) {
		t.Errorf("a denied agent: %v", err)
	}
	if err := opt.bind(Peer{Transport: TransportTLS}, &AgentHello{Name: "agent-1", Namespace: "default"}); !errors.Is(err, ErrAgentIdentity) {
		t.Errorf("no certificate: %v", err)
	}
	if err := opt.bind(peer, &AgentHello{Name: "agent-1", Namespace: "default"}); err != nil {
		t.Errorf("the bound agent: %v", err)
	}
}

// parseAgentURI reads s as a URI SAN, as a handshake's certificate gives it.
func parseAgentURI(s string) (namespace, name string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", err
	}
	return agentFromURI(u)
}
