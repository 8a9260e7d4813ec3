package proxy

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzSniff(f *testing.F) {
	for _, s := range []string{"\x16\x03\x01\x02\x00", "GET / HTTP/1.1\r\n", "\x00", "", "\x16\x02", "get"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Sniff(b)
		switch {
		case len(b) == 0 && p != ProtocolUnknown:
			t.Fatalf("empty input sniffed as %v", p)
		case p == ProtocolTLS && b[0] != 0x16:
			t.Fatalf("%q sniffed as TLS without a handshake record type", b)
		case p == ProtocolHTTP && (b[0] < 'A' || b[0] > 'Z'):
			t.Fatalf("%q sniffed as HTTP without an upper-case method", b)
		}
	})
}

func FuzzParseAgentHello(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: b:8081\r\nUpgrade: websocket\r\nSensu-AgentName: a1\r\nSensu-Namespace: prod\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nsensu-agentname:x\r\n\r\n"))
	f.Add([]byte("POST /api HTTP/1.0\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		h, err := ParseAgentHello(head)
		if err != nil {
			return
		}
		if h.Name == "" || h.Namespace == "" || !printable(h.Name) || !printable(h.Namespace) {
			t.Fatalf("accepted %q with agent %+v", head, h)
		}
		if !bytes.Contains(bytes.ToLower(head), []byte("sensu-agentname")) {
			t.Fatalf("found an agent in %q without a Sensu-AgentName header", head)
		}
	})
}

func FuzzReadRequestHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\nbody"))
	f.Add([]byte("partial"))
	f.Fuzz(func(t *testing.T, in []byte) {
		read, headLen, _ := readRequestHead(bytes.NewReader(in))
		if !bytes.HasPrefix(in, read) {
			t.Fatalf("read %q is not a prefix of the input %q: bytes would be lost or changed on replay", read, in)
		}
		if headLen > 0 && !bytes.HasSuffix(read[:headLen], []byte("\r\n\r\n")) {
			t.Fatalf("head %q does not end at the blank line", read[:headLen])
		}
		if len(read) > maxRequestHead {
			t.Fatalf("read %d bytes, over the %d limit", len(read), maxRequestHead)
		}
	})
}

func FuzzParseDenyList(f *testing.F) {
	f.Add([]byte("serial 0a:1B\nagent web-1 # retired\nagent prod/db-1\n"))
	f.Add([]byte("# only a comment\n\n"))
	f.Add([]byte("serial \nagent a/b/c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseDenyList("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "deny list fuzz:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
			return
		}
		for s := range d.serials {
			if again, ok := normalSerial(s); !ok || again != s {
				t.Fatalf("serial %q is not in its normal form (%q)", s, again)
			}
		}
		for name := range d.agents {
			if !validAgentName(name) {
				t.Fatalf("denied agent %q is not a valid name", name)
			}
		}
		for k := range d.scoped {
			if !validAgentName(k[0]) || !validAgentName(k[1]) {
				t.Fatalf("denied agent %q is not a valid namespace/name", k)
			}
		}
	})
}

func FuzzParseAgentURI(f *testing.F) {
	for _, s := range []string{"sensu://default/agent-1", "sensu://prod/a/b", "sensu://p%41/a", "sensu://u@p/a?q#f", "spiffe://x/y", "senSu://0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, name, err := parseAgentURI(s)
		if err != nil {
			return
		}
		if !validAgentName(ns) || !validAgentName(name) {
			t.Fatalf("%q gave namespace %q and agent %q", s, ns, name)
		}
		// What is accepted is what AgentURI writes: one spelling per agent.
		// The scheme alone may differ in case: RFC 3986 makes it
		// case-insensitive, and url.Parse (which x509 uses for URI SANs)
		// lowers it before anyone sees it.
		want := strings.ToLower(s[:len("sensu:")]) + s[len("sensu:"):]
		if again := AgentURI(ns, name); again != want {
			t.Fatalf("%q parsed to %s/%s, which is written %q", s, ns, name, again)
		}
	})
}
