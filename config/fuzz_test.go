package config_test

import (
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// FuzzParse: any bytes give a config or an error, never a panic, and a
// config that parses always validates (Parse never returns half a config).
func FuzzParse(f *testing.F) {
	f.Add([]byte("state-dir: /x\ncertificates:\n  - name: a\n    profile: backend\n    hosts: [a, 127.0.0.1]\n"))
	f.Add([]byte("renewal: {before: 33%, jitter: 1d}\n"))
	f.Add([]byte("certificates: &a [*a]\n"))
	f.Add([]byte("defaults:\n  key-mode: 0640\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yml", data)
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", verr)
		}
	})
}

// FuzzParseRenewBefore feeds renew-before values from configs: no panic,
// and an accepted value is a ratio in (0,1) or a positive duration, never
// both.
func FuzzParseRenewBefore(f *testing.F) {
	for _, s := range []string{"33%", "720h", "30d", "", "0%", "100%", "1e3%", "-5m", "NaN%", "NaNd", "1e300d", "5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ratio, before, err := config.ParseRenewBefore(s)
		if err != nil {
			return
		}
		if (ratio > 0 && ratio < 1) == (before > 0) || ratio != 0 && before != 0 {
			t.Fatalf("ParseRenewBefore(%q) accepted ratio %v, before %v", s, ratio, before)
		}
	})
}
