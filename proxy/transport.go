package proxy

// Transport is how a client reached a listener.
type Transport string

const (
	TransportTLS       Transport = "tls"
	TransportPlaintext Transport = "plaintext"
)
