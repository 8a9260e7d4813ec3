package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tlsd.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownKeyNamesFileLineAndClosestKey(t *testing.T) {
	cases := []struct{ body, want string }{
		{"state-dir: /tmp/x\ncertificates:\n  - name: a\n    profile: server\n    cert_file: /x.pem\n", `:5: unknown key "certificates[0].cert_file": did you mean "cert-file"?`},
		{"statedir: /x\n", `:1: unknown key "statedir": did you mean "state-dir"?`},
		{"renewal:\n  befor: 10%\n", `:2: unknown key "renewal.befor": did you mean "before"?`},
		{"zzzzzzzz: 1\n", `:1: unknown key "zzzzzzzz": remove it`},
	}
	for _, c := range cases {
		p := writeConfig(t, c.body)
		_, err := config.Load(config.LoadOptions{File: p})
		if err == nil || !strings.Contains(err.Error(), p+c.want) {
			t.Errorf("config %q: got %v, want %q", c.body, err, p+c.want)
		}
	}
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	p := writeConfig(t, "state-dir: /from/file\nlog-level: warn\nrenewal:\n  before: 20%\n")
	t.Setenv("SENSU_TLSD_LOG_LEVEL", "error")
	t.Setenv("SENSU_TLSD_RENEWAL_BEFORE", "10%")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	if err := fs.Parse([]string{"--renewal-before=30d"}); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(config.LoadOptions{File: p, Flags: fs})
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/from/file" || c.LogLevel != "error" || c.Renewal.Before != "30d" || c.LogFormat != "text" {
		t.Fatalf("state-dir %q (file), log-level %q (env), renewal.before %q (flag), log-format %q (default)", c.StateDir, c.LogLevel, c.Renewal.Before, c.LogFormat)
	}
}

func TestConfigFileFromEnvAndMissingExplicitFile(t *testing.T) {
	p := writeConfig(t, "state-dir: /via/env\n")
	t.Setenv("SENSU_TLSD_CONFIG", p)
	c, err := config.Load(config.LoadOptions{})
	if err != nil || c.StateDir != "/via/env" || c.File != p {
		t.Fatalf("SENSU_TLSD_CONFIG: %+v %v", c, err)
	}
	_, err = config.Load(config.LoadOptions{File: "/nonexistent/tlsd.yml"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/tlsd.yml: config file does not exist") {
		t.Fatalf("missing explicit file: %v", err)
	}
}

func TestDefaultsFillCertificates(t *testing.T) {
	p := writeConfig(t, "state-dir: /s\ncertificates:\n  - name: backend-1\n    profile: backend\n    lifetime: 30d\n    key-mode: \"0640\"\n    group: sensu\n")
	c, err := config.Load(config.LoadOptions{File: p})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Certificate("backend-1")
	if b.CertFile != "/s/backend-1.pem" || b.KeyFile != "/s/backend-1-key.pem" || b.CAFile != "/s/ca.pem" {
		t.Errorf("paths %s %s %s", b.CertFile, b.KeyFile, b.CAFile)
	}
	if b.Lifetime != 30*24*time.Hour || b.KeyMode != 0o640 || b.CommonName != "backend-1" || b.Issuer.Type != "local-ca" || b.KeyType != "ecdsa-p256" {
		t.Errorf("defaults not applied: %+v", b)
	}
	if c.CA.Dir != "/s" {
		t.Errorf("ca.dir %q, want /s", c.CA.Dir)
	}
}

func TestValidateReportsEveryProblemWithItsKey(t *testing.T) {
	p := writeConfig(t, `certificates:
  - name: a
    profile: peer
    key-type: rsa-1024
    key-mode: "0644"
  - name: a
    profile: server
    issuer: {type: acme}
  - name: c
    profile: client
    issuer: {type: vault}
  - name: ../evil
    profile: server
    hosts: ["bad host!"]
renewal: {before: 150%}
`)
	_, err := config.Load(config.LoadOptions{File: p})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		p + ": invalid configuration",
		`certificates[0] (a).profile: unknown profile "peer"`,
		`certificates[0] (a).key-type: unknown key type "rsa-1024"`,
		`certificates[0] (a).key-mode: mode 0644 gives every user on the machine access to the private key: use 0600, or 0640 with a group`,
		`certificates[3] (../evil).name: certificate name "../evil" is not a plain file name`,
		`certificates[3] (../evil).hosts[0]: host "bad host!" is neither an IP address nor a DNS name`,
		`certificates[1] (a).name: "a" is used twice`,
		`certificates[1] (a).issuer.acme.directory: the ACME issuer needs a directory URL`,
		`certificates[2] (c).issuer.type: "vault": use one of local-ca, acme, exec, files`,
		`renewal.before: "150%"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestBadValuesNameTheSource(t *testing.T) {
	p := writeConfig(t, "renewal:\n  jitter: soon\n")
	if _, err := config.Load(config.LoadOptions{File: p}); err == nil || !strings.Contains(err.Error(), p+`:2: renewal.jitter: "soon" is not a duration`) {
		t.Errorf("bad duration in file: %v", err)
	}
	t.Setenv("SENSU_TLSD_CA_LIFETIME", "forever")
	if _, err := config.Load(config.LoadOptions{File: writeConfig(t, "")}); err == nil || !strings.Contains(err.Error(), "environment variable SENSU_TLSD_CA_LIFETIME (key ca.lifetime)") {
		t.Errorf("bad duration in env: %v", err)
	}
}

func TestListKeysFromEnvAsYAML(t *testing.T) {
	t.Setenv("SENSU_TLSD_CERTIFICATES", `[{name: agent-1, profile: agent}]`)
	c, err := config.Load(config.LoadOptions{File: writeConfig(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := c.Certificate("agent-1"); !ok || a.Profile != "agent" {
		t.Fatalf("certificates from env: %+v", c.Certificates)
	}
}

func TestDeliberateEmptyValuesAreKept(t *testing.T) {
	c, err := config.Load(config.LoadOptions{File: writeConfig(t, "metrics-address: \"\"\nrenewal:\n  jitter: 0s\n")})
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddress != "" || c.Renewal.Jitter != 0 {
		t.Fatalf("metrics-address %q, jitter %v: an explicit empty value was replaced by the default", c.MetricsAddress, c.Renewal.Jitter)
	}
	t.Setenv("SENSU_TLSD_METRICS_ADDRESS", "")
	c, err = config.Load(config.LoadOptions{File: writeConfig(t, "")})
	if err != nil || c.MetricsAddress != "127.0.0.1:9467" {
		t.Fatalf("an empty env var must not count as set (viper treats it as unset): %q %v", c.MetricsAddress, err)
	}
	c, err = config.Load(config.LoadOptions{File: writeConfig(t, "log-level: warn\n")})
	if err != nil || c.MetricsAddress != "127.0.0.1:9467" || c.Renewal.Jitter == 0 {
		t.Fatalf("defaults not applied when the keys are absent: %q %v %v", c.MetricsAddress, c.Renewal.Jitter, err)
	}
}

// TestEveryDecodeProblemIsReportedWithItsLine: unknown keys and bad values
// anywhere in the file are all reported, each on its own line with the
// file and line, not only the first.
func TestEveryDecodeProblemIsReportedWithItsLine(t *testing.T) {
	p := writeConfig(t, `statedir: /x
renewal:
  befor: 10%
  jitter: soon
certificates:
  - name: a
    cert_file: /x.pem
    lifetime: forever
    key-mode: rw
`)
	_, err := config.Load(config.LoadOptions{File: p})
	if err == nil {
		t.Fatal("a config with five problems loaded")
	}
	want := []string{
		p + `:1: unknown key "statedir": did you mean "state-dir"?`,
		p + `:3: unknown key "renewal.befor": did you mean "before"?`,
		p + `:4: renewal.jitter: "soon" is not a duration`,
		p + `:7: unknown key "certificates[0].cert_file": did you mean "cert-file"?`,
		p + `:8: certificates[0].lifetime: "forever" is not a duration`,
		p + `:9: certificates[0].key-mode: "rw" is not a file mode`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d messages, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("message %d = %q\nwant it to start %q", i, lines[i], w)
		}
	}
}

// TestIssuerShortForm: "issuer: files" is "issuer: {type: files}"; another
// block written as a single value is refused with the way to write it.
func TestIssuerShortForm(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte("certificates:\n  - name: a\n    profile: server\n    issuer: files\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Certificates[0].Issuer.Type; got != config.IssuerFiles {
		t.Fatalf("issuer: files gave issuer type %q, want %q", got, config.IssuerFiles)
	}
	_, err = config.Parse("tlsd.yml", []byte("certificates:\n  - name: a\n    issuer: {type: exec, exec: ./issue.sh}\n"))
	if want := `tlsd.yml:3: certificates[0].issuer.exec must be a mapping of keys: write exec: {command: ...} (its keys: command, timeout)`; err == nil || err.Error() != want {
		t.Fatalf("exec as a single value: %v\nwant %s", err, want)
	}
}
