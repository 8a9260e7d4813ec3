package proxy

import "crypto/x509"

// Transport is how a client reached a listener.
type Transport string

const (
	TransportTLS       Transport = "tls"
	TransportPlaintext Transport = "plaintext"
)

// Peer is how an accepted client came in: its transport and, over mTLS,
// the certificate chain it presented (leaf first), kept so a listener
// updated in place can check its open sessions against the new client-ca
// and allow-lists.
type Peer struct {
	Transport Transport
	Chain     []*x509.Certificate
}
