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
