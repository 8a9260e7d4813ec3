package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// strongSuite is what Mozilla's intermediate profile admits: TLS 1.3
// suites and ECDHE with an AEAD for TLS 1.2.
var strongSuite = regexp.MustCompile(`^(TLS_AES_(128|256)_GCM_SHA(256|384)|TLS_CHACHA20_POLY1305_SHA256|ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305))$`)

// TestProxySSLScanFindsNothingWeak scans a terminate listener with the real
// sslscan, once with an ECDSA and once with an RSA certificate.
func TestProxySSLScanFindsNothingWeak(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("sslscan"), "sslscan is not installed (apt-get install -y sslscan)")
	pki := proxyNewPKI(t)
	for _, keyType := range []string{"ec", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			cert, key := pki.issue(t, "backend-"+keyType, "localhost", keyType)
			p := proxyStart(t, "--mode", "terminate", "--target", testpeer.FreeAddr(t), "--cert", cert, "--key", key)
			out, err := exec.Command("sslscan", "--no-colour", p.addr).CombinedOutput()
			if err != nil {
				t.Fatalf("sslscan: %v\n%s", err, out)
			}
			scan := string(out)
			for _, proto := range []string{"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"} {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(proto) + `\s+disabled`).MatchString(scan) {
					t.Errorf("sslscan does not report %s disabled:\n%s", proto, scan)
				}
			}
			accepted := 0
			for _, line := range strings.Split(scan, "\n") {
				f := strings.Fields(line)
				if len(f) < 5 || (f[0] != "Accepted" && f[0] != "Preferred") {
					continue
				}
				accepted++
				if f[1] != "TLSv1.2" && f[1] != "TLSv1.3" {
					t.Errorf("protocol below TLS 1.2 accepted: %s", line)
				}
				if !strongSuite.MatchString(f[4]) {
					t.Errorf("weak suite accepted: %s", line)
				}
			}
			if accepted == 0 {
				t.Fatalf("sslscan listed no accepted suite; output not understood:\n%s", scan)
			}
		})
	}
}
