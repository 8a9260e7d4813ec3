package proxy

import (
	"bytes"
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
