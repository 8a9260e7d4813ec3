// Package pki reads and checks what Sensu's TLS runs on: PEM certificate
// chains and private keys as openssl, cfssl and step write them, the
// certificate profiles of the Sensu security guide, and the checks every
// candidate passes before sensu-tlsd installs it. Every error names the file
// and says what to do, because an operator reads it at 3 a.m.
package pki
