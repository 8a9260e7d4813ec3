package proxy

import "testing"

func TestParseAgentHello(t *testing.T) {
	for _, tc := range []struct {
		head string
		want AgentHello
		ok   bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSensu-AgentName: web-1\r\nSensu-Namespace: prod\r\n\r\n", AgentHello{"web-1", "prod"}, true},
		{"GET / HTTP/1.1\r\nsensu-agentname:  db \r\n\r\n", AgentHello{"db", "default"}, true},
		{"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", AgentHello{}, false},
		{"garbage\r\n\r\n", AgentHello{}, false},
		{"GET / HTTP/1.1\r\nSensu-AgentName: bad\x01name\r\n\r\n", AgentHello{}, false},
	} {
		got, err := ParseAgentHello([]byte(tc.head))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAgentHello(%q) = %+v, %v; want %+v ok=%v", tc.head, got, err, tc.want, tc.ok)
		}
	}
}

func TestSniff(t *testing.T) {
	for in, want := range map[string]Protocol{
		"\x16\x03\x01": ProtocolTLS,
		"GET":          ProtocolHTTP,
		"GET /":        ProtocolHTTP,
		" GET":         ProtocolUnknown,
		"G":            ProtocolHTTP,
		"\x16\x01":     ProtocolUnknown,
		"ge":           ProtocolUnknown,
		"SSH-2.0":      ProtocolUnknown,
	} {
		if got := Sniff([]byte(in)); got != want {
			t.Errorf("Sniff(%q) = %v, want %v", in, got, want)
		}
	}
}
