package inventory

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90*24*time.Hour + 5*time.Hour: "90d 5h",
		5*time.Hour + 12*time.Minute:  "5h 12m",
		3*time.Minute + 4*time.Second: "3m 4s",
		42 * time.Second:              "42s",
		-49 * time.Hour:               "expired 2d 1h ago",
		math.MinInt64:                 "expired 106751d 23h ago", // time.Time{}.Sub(now) saturates here
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func entry(name string, left time.Duration, ok bool) Entry {
	e := Entry{Source: Source{Name: name}, NotAfter: time.Now().Add(left), Left: left}
	e.Checks = []pki.CheckResult{{Name: "chain", OK: ok, Detail: "x"}}
	return e
}

// failing marks e's renewal as failing three times in a row.
func failing(e Entry) Entry {
	e.Renewal = &certstate.State{Failures: 3, LastError: "exec: exit status 2"}
	return e
}

func keyUnreadable(e Entry) Entry {
	e.Error = "enc-key.pem: the private key is encrypted"
	return e
}

func twoFailures(e Entry) Entry {
	e.Checks = []pki.CheckResult{{Name: "key matches", Detail: "wrong key"}, {Name: "chain", Detail: "x"}}
	return e
}

func warned(e Entry) Entry {
	e.Checks = append(e.Checks, pki.CheckResult{Name: "SANs", OK: true, Warning: true, Detail: "empty SAN"})
	return e
}

func TestEvaluatePicksTheWorstStatus(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		entries []Entry
		status  int
		prefix  string
	}{
		{[]Entry{entry("a", 60*day, true)}, StatusOK, "OK: 1 of 1"},
		{[]Entry{entry("a", 60*day, true), entry("b", 20*day, true)}, StatusWarning, "WARNING: b expires in 20d"},
		{[]Entry{entry("a", 3*day, true), entry("b", 20*day, true)}, StatusCritical, "CRITICAL: a expires in 3d 0h; b expires"},
		{[]Entry{entry("a", 60*day, false)}, StatusCritical, "CRITICAL: a fails chain"},
		{[]Entry{entry("a", -day, true)}, StatusCritical, "CRITICAL: a expired 1d 0h ago"},
		{[]Entry{{Source: Source{Name: "gone"}, Error: "no such file"}, entry("a", 3*day, true)}, StatusUnknown, "UNKNOWN: gone unreadable: no such file; a expires"},
		// A readable certificate whose key cannot be read is unknown too,
		// named once even though the error starts with the name.
		{[]Entry{keyUnreadable(entry("enc.pem", 60*day, true))}, StatusUnknown, "UNKNOWN: enc.pem unreadable: enc-key.pem: the private key is encrypted; 0 of 1"},
		{[]Entry{{Source: Source{Name: "junk"}, Error: "junk.pem: no PEM certificate found", Broken: true}, entry("a", 3*day, true)}, StatusCritical, "CRITICAL: junk unusable: junk.pem: no PEM certificate found; a expires"},
		{[]Entry{entry("a", 60*day, false)}, StatusCritical, "CRITICAL: a fails chain: x; 0 of 1"},
		{[]Entry{twoFailures(entry("a", 60*day, true))}, StatusCritical, "CRITICAL: a fails key matches: wrong key (also fails chain); 0 of 1"},
		{[]Entry{warned(entry("a", 60*day, true))}, StatusWarning, "WARNING: a SANs: empty SAN; 0 of 1"},
		{nil, StatusUnknown, "UNKNOWN: no certificates"},
		{[]Entry{failing(entry("a", 60*day, true))}, StatusWarning, "WARNING: a renewal failing (3 in a row: exec: exit status 2)"},
		{[]Entry{failing(entry("a", 3*day, true))}, StatusCritical, "CRITICAL: a expires in 3d 0h"},
	}
	for _, c := range cases {
		r := Evaluate(c.entries, 30*day, 7*day)
		if r.Status != c.status || !strings.HasPrefix(r.Line, c.prefix) {
			t.Errorf("got %d %q, want %d %q...", r.Status, r.Line, c.status, c.prefix)
		}
	}
}

func TestFromBackendConfigFindsEveryTripleAndItsHosts(t *testing.T) {
	p := writeFile(t, "backend.yml", `# comment
api-url: https://sensu.example.com:8080
cert-file: /etc/sensu/tls/backend.pem
key-file: /etc/sensu/tls/backend-key.pem
trusted-ca-file: /etc/sensu/tls/ca.pem
etcd-advertise-client-urls: "https://10.0.0.1:2379 https://10.0.0.2:2379"
etcd-cert-file: /etc/sensu/tls/etcd.pem
etcd-key-file: /etc/sensu/tls/etcd-key.pem
etcd-peer-cert-file: /etc/sensu/tls/peer.pem
etcd-initial-advertise-peer-urls: ["https://[::]:2380", "https://backend-1:2380"]
`)
	got, err := FromBackendConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d sources, want 3: %+v", len(got), got)
	}
	want := [][]string{{"sensu.example.com"}, {"10.0.0.1", "10.0.0.2"}, {"backend-1"}}
	for i, s := range got {
		if !reflect.DeepEqual(s.Hosts, want[i]) {
			t.Errorf("%s: hosts %v, want %v", s.Name, s.Hosts, want[i])
		}
	}
	// The API certificate is not the etcd one here, so it only serves.
	if got[0].Profile != pki.Server || got[1].Profile != pki.EtcdPeer || got[1].CAFile != "" {
		t.Errorf("profiles/CA: %+v", got)
	}
}

func TestBackendCertNeedsClientAuthOnlyWhenItIsAlsoTheEtcdCert(t *testing.T) {
	for _, c := range []struct {
		yml        string
		api, agent pki.Profile
	}{
		{"cert-file: /t/api.pem\netcd-cert-file: /t/etcd.pem\nagent-auth-cert-file: /t/api.pem\n", pki.Server, pki.Server},
		{"cert-file: /t/b.pem\netcd-cert-file: /t/b.pem\nagent-auth-cert-file: /t/b.pem\n", pki.Backend, pki.Backend},
		{"cert-file: /t/b.pem\netcd-peer-cert-file: /t/./b.pem\nagent-auth-cert-file: /t/other.pem\n", pki.Backend, pki.Server},
	} {
		got, err := FromBackendConfig(writeFile(t, "backend.yml", c.yml), nil)
		if err != nil {
			t.Fatal(err)
		}
		profiles := map[string]pki.Profile{}
		for _, s := range got {
			profiles[s.Name] = s.Profile
		}
		if profiles["backend.yml cert-file"] != c.api || profiles["backend.yml agent-auth-cert-file"] != c.agent {
			t.Errorf("%q: cert-file %s, agent-auth-cert-file %s; want %s, %s", c.yml,
				profiles["backend.yml cert-file"], profiles["backend.yml agent-auth-cert-file"], c.api, c.agent)
		}
	}
}

func TestAgentCertMustCarryTheAgentNameAsCN(t *testing.T) {
	got, err := FromAgentConfig(writeFile(t, "agent.yml", "name: agent-7\ncert-file: /t/a.pem\nkey-file: /t/a-key.pem\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CommonName != "agent-7" || got[0].Profile != pki.Agent {
		t.Fatalf("sources %+v, want one agent source with CN agent-7", got)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	got, err = FromAgentConfig(writeFile(t, "agent.yml", "cert-file: /t/a.pem\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].CommonName != host {
		t.Errorf("without name the agent runs as the hostname %q; CN wanted %q", host, got[0].CommonName)
	}
}

func TestSensuConfigWithoutTLSKeysPointsToLint(t *testing.T) {
	p := writeFile(t, "backend.yml", "cert_file: /t/b.pem\nkey_file: /t/b-key.pem\n")
	_, err := FromBackendConfig(p, nil)
	if err == nil || !strings.Contains(err.Error(), p+": no TLS keys found") || !strings.Contains(err.Error(), "sensu-tlsd lint "+p) {
		t.Fatalf("got %v, want no TLS keys found and the lint command", err)
	}
	missing := filepath.Join(t.TempDir(), "nope.yml")
	_, err = FromAgentConfig(missing, nil)
	if err == nil || err.Error() != missing+": file does not exist: check the path given to --agent-config" {
		t.Fatalf("missing file: %v", err)
	}
}

// writeFile writes content to name in a new temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromFilesRejectsKeyWithManyCerts(t *testing.T) {
	if _, err := FromFiles([]string{"a.pem", "b.pem"}, "k.pem", "", "", nil); err == nil {
		t.Fatal("--key with two certificates accepted")
	}
}

// TestFromBackendConfigReadsAsSensuDoes: a key set twice counts once, at
// its last value (a YAML map would refuse the file), and the environment
// files the unit loads override backend.yml.
func TestFromBackendConfigReadsAsSensuDoes(t *testing.T) {
	yml := writeFile(t, "backend.yml", "cert-file: /t/old.pem\nkey-file: /t/b-key.pem\ncert-file: /t/b.pem\ntrusted-ca-file: /t/ca.pem\n")
	env := writeFile(t, "sensu-backend", "SENSU_BACKEND_TRUSTED_CA_FILE=/t/env-ca.pem\n")
	got, err := FromBackendConfig(yml, []string{env, filepath.Join(t.TempDir(), "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CertFile != "/t/b.pem" || got[0].KeyFile != "/t/b-key.pem" || got[0].CAFile != "/t/env-ca.pem" {
		t.Fatalf("sources %+v, want cert-file /t/b.pem with the CA from the environment file", got)
	}
}
