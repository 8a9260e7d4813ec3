package proxy

// Protocol is what the first bytes of a connection look like.
type Protocol int

const (
	ProtocolUnknown Protocol = iota
	ProtocolTLS              // a TLS handshake record (ClientHello)
	ProtocolHTTP             // a plaintext HTTP request line
)

// sniffLen is how many bytes Sniff looks at: the longest HTTP method
// (OPTIONS, CONNECT) and its space. Fewer are fine.
const sniffLen = 8

// Sniff classifies the first bytes a client sent. A TLS connection starts
// with a handshake record (type 0x16, version 0x03xx); an HTTP request
// starts with an upper-case method token and a space. Anything else is unknown and is
// refused, so the sniffer never guesses.
func Sniff(b []byte) Protocol {
	if len(b) == 0 {
		return ProtocolUnknown
	}
	if b[0] == 0x16 {
		if len(b) >= 2 && b[1] != 0x03 {
			return ProtocolUnknown
		}
		return ProtocolTLS
	}
	for i, c := range b[:min(len(b), sniffLen)] {
		switch {
		case c == ' ' && i > 0:
			return ProtocolHTTP
		case c < 'A' || c > 'Z':
			return ProtocolUnknown
		}
	}
	return ProtocolHTTP
}
