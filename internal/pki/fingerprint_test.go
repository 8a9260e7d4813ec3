package pki_test

import (
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

func TestParseFingerprintSHA256(t *testing.T) {
	colons := "F9:1C:57:02:A0:E8:0C:C1:94:99:FA:B1:8D:A5:EE:0E:87:4B:B6:EF:76:ED:56:D1:05:A0:A6:CD:2C:D5:A1:45"
	for _, in := range []string{colons, strings.ToLower(colons), strings.ReplaceAll(colons, ":", ""),
		"sha256 Fingerprint=" + colons, "SHA256 Fingerprint=" + colons + "\n"} {
		fp, err := pki.ParseFingerprintSHA256(in)
		if err != nil || fp.String() != colons {
			t.Errorf("%q: %s, %v; want %s", in, fp, err, colons)
		}
	}
	for _, in := range []string{"", "abc", colons[:len(colons)-3], colons + ":00", "F9:1C" + strings.Repeat("0", 60), strings.Repeat("zz", 32)} {
		if _, err := pki.ParseFingerprintSHA256(in); err == nil || !strings.Contains(err.Error(), "hex") {
			t.Errorf("%q: %v, want an error saying how to write it", in, err)
		}
	}
}
