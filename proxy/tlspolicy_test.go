package proxy

import (
	"crypto/tls"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

func TestPolicyTLS13OnlyRefusesTLS12(t *testing.T) {
	ca := testca.New(t)
	pair := ca.Pair(t, "proxy", "localhost")
	_, addr := startServer(t, Options{Mode: &Terminate{TLS: serverTLSConfig(Policy{TLS13Only: true}, staticSource{&pair}, nil), Target: echoServer(t)}})
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Fatal("TLS 1.2 client accepted by a TLS 1.3-only listener")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	c.Close()
}

func TestPolicyDefaultRefusesTLS11AndNegotiatesALPN(t *testing.T) {
	ca := testca.New(t)
	pair := ca.Pair(t, "proxy", "localhost")
	_, addr := startServer(t, Options{Mode: &Terminate{TLS: serverTLSConfig(Policy{ALPN: []string{"http/1.1"}}, staticSource{&pair}, nil), Target: echoServer(t)}})
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 client accepted")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Fatalf("ALPN negotiated %q, want http/1.1 (h2 is not offered to a byte relay)", got)
	}
}

func TestAllowListPermits(t *testing.T) {
	ca := testca.New(t)
	cert := ca.Issue(t, testca.Leaf{CN: "agent-1", Hosts: []string{"agent-1.example"}, URIs: []string{"spiffe://sensu/agent-1"}}).Pair(t).Leaf
	for _, tc := range []struct {
		allow AllowList
		want  bool
	}{
		{AllowList{}, true},
		{AllowList{CN: []string{"agent-1"}}, true},
		{AllowList{DNS: []string{"agent-1.example"}}, true},
		{AllowList{URI: []string{"spiffe://sensu/agent-1"}}, true},
		{AllowList{CN: []string{"agent-2"}, DNS: []string{"x"}, URI: []string{"spiffe://sensu/agent-2"}}, false},
	} {
		if got := tc.allow.Permits(cert); got != tc.want {
			t.Errorf("%+v.Permits = %v, want %v", tc.allow, got, tc.want)
		}
	}
}
