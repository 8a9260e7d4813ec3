package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxRequestHead bounds how much of a client's first request is buffered
// to learn who the agent is; Sensu agents send well under 1 kB.
const maxRequestHead = 8 << 10

// AgentHello is what a Sensu agent says about itself in its WebSocket
// upgrade request.
type AgentHello struct {
	Name      string // Sensu-AgentName
	Namespace string // Sensu-Namespace
}

var (
	errNotAgent            = errors.New("request is not a Sensu agent websocket upgrade")
	errRepeatedAgentHeader = errors.New("request repeats Sensu-AgentName or Sensu-Namespace")
)

// ParseAgentHello parses an HTTP/1.x request head (request line and
// headers, up to and including the blank line) and returns the agent's
// name and namespace. It fails when the head is malformed or carries no
// Sensu-AgentName, which is normal for API clients on the same port.
func ParseAgentHello(head []byte) (AgentHello, error) {
	lines := strings.Split(strings.TrimRight(string(head), "\r\n"), "\n")
	reqLine := strings.TrimSuffix(lines[0], "\r")
	parts := strings.Split(reqLine, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return AgentHello{}, fmt.Errorf("malformed request line %q", truncate(reqLine))
	}
	var h AgentHello
	var names, namespaces int
	for _, line := range lines[1:] {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return AgentHello{}, fmt.Errorf("malformed header line %q", truncate(line))
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(key, "Sensu-AgentName"):
			h.Name = value
			names++
		case strings.EqualFold(key, "Sensu-Namespace"):
			h.Namespace = value
			namespaces++
		}
	}
	// The backend reads the first of repeated headers and this parser the
	// last; a head with two could name one agent here and another there.
	if names > 1 || namespaces > 1 {
		return AgentHello{}, errRepeatedAgentHeader
	}
	if h.Name == "" || !printable(h.Name) || !printable(h.Namespace) {
		return AgentHello{}, errNotAgent
	}
	if h.Namespace == "" {
		h.Namespace = "default"
	}
	return h, nil
}

// readRequestHead reads from r until the end of the first HTTP request
// head or maxRequestHead bytes. It returns everything read (the caller
// replays it to the target untouched) and the length of the head, or -1
// when no complete head arrived within the limit.
func readRequestHead(r io.Reader) (read []byte, headLen int, err error) {
	buf := make([]byte, 0, 1024)
	for len(buf) < maxRequestHead {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxRequestHead)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf, i + 4, nil
		}
		if err != nil {
			return buf, -1, err
		}
	}
	return buf, -1, nil
}

func printable(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
