// Package pkitest is test support: a throwaway CA made with crypto/x509,
// and the corpus of bad certificates every entry point must refuse (each
// class of issue 13's "one gate"), generated on the fly.
package pkitest
