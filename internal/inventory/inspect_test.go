package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// issueTo makes a CA in dir (once) and writes one certificate from it with
// cfssljson's names.
func issueTo(t *testing.T, dir string, r ca.Request) ca.Paths {
	t.Helper()
	authority, err := ca.Load(dir)
	if err != nil {
		if authority, err = ca.Init(dir, ca.InitOptions{CommonName: "inventory test CA", Lifetime: 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if r.Lifetime == 0 {
		r.Lifetime = time.Hour
	}
	is, err := authority.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := ca.WriteFiles(dir, r.Name, is)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func checkNamed(t *testing.T, e Entry, name string) pki.CheckResult {
	t.Helper()
	for _, c := range e.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s: check %q did not run: %+v", e.Name, name, e.Checks)
	return pki.CheckResult{}
}

func TestInspectFailsAnAgentCertWhoseCNIsNotTheAgentName(t *testing.T) {
	dir := t.TempDir()
	p := issueTo(t, dir, ca.Request{Name: "agent-1", Profile: pki.Agent})
	agentYML := writeFile(t, "agent.yml", "name: agent-7\ncert-file: "+p.Cert+"\nkey-file: "+p.Key+"\ntrusted-ca-file: "+p.CA+"\n")
	sources, err := FromAgentConfig(agentYML, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Inspect(sources, time.Now())[0]
	c := checkNamed(t, e, pki.CheckCommonName)
	if c.OK || c.Detail != `subject CN is "agent-1" but must be "agent-7": reissue it with CN agent-7` {
		t.Fatalf("CN check: %+v", c)
	}
}

// TestOneKeyModeRuleOneMessage: the inventory and the config say what
// pki.CheckKeyMode says about a key others can touch, including 0602,
// which is writable, not readable, by everyone.
func TestOneKeyModeRuleOneMessage(t *testing.T) {
	want := pki.CheckKeyMode(0o602)
	if want == nil || !strings.Contains(want.Error(), "mode 0602 gives every user on the machine access to the private key") {
		t.Fatalf("pki.CheckKeyMode(0602) = %v", want)
	}
	dir := t.TempDir()
	p := issueTo(t, dir, ca.Request{Name: "b", Profile: pki.Server})
	if err := os.Chmod(p.Key, 0o602); err != nil {
		t.Fatal(err)
	}
	if c := modeCheck(p.Key); c.OK || c.Detail != p.Key+": "+want.Error() {
		t.Errorf("inventory: %+v, want %q", c, p.Key+": "+want.Error())
	}
	_, err := config.Parse("tlsd.yml", []byte("certificates:\n  - {name: d, profile: server, key-mode: \"0602\"}\n"))
	if err == nil || !strings.Contains(err.Error(), "certificates[0] (d).key-mode: "+want.Error()) {
		t.Errorf("config: %v, want %q", err, want)
	}
}

func TestFromConfigListsTheLocalCAAndEveryOtherCABundle(t *testing.T) {
	c, err := config.Parse("tlsd.yml", []byte(`state-dir: /s
certificates:
  - {name: backend-1, profile: backend}
  - {name: agent-1, profile: agent}
  - name: api
    profile: server
    hosts: [api.example.com]
    ca-file: /acme/root.pem
    issuer: {type: acme, acme: {directory: "https://ca.example/dir"}}
  - name: followed
    profile: server
    ca-file: /tools/ca.pem
    issuer: {type: files}
`))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Source{}
	for _, s := range FromConfig(c) {
		byName[s.Name] = s
	}
	if len(byName) != 7 {
		t.Fatalf("sources %v, want 4 certificates, the local CA (shared by two) and two other bundles", byName)
	}
	local := byName["local CA"]
	if !local.IsCA || local.CertFile != "/s/ca.pem" || local.KeyFile != "/s/ca-key.pem" {
		t.Errorf("local CA row: %+v", local)
	}
	if b := byName["api ca-file"]; !b.IsCA || b.CertFile != "/acme/root.pem" || b.KeyFile != "" {
		t.Errorf("ACME bundle row: %+v", b)
	}
	if byName["backend-1"].Renew != "sensu-tlsd renew backend-1" || byName["followed"].Renew != "" {
		t.Errorf("renew commands: backend-1 %q, followed %q (another tool renews it)", byName["backend-1"].Renew, byName["followed"].Renew)
	}
}

func TestExpiredCertNamesTheFixThatApplies(t *testing.T) {
	dir := t.TempDir()
	p := issueTo(t, dir, ca.Request{Name: "backend-1", Profile: pki.Backend})
	later := time.Now().Add(200 * 24 * time.Hour)
	managed := Source{Name: "backend-1", Origin: "config", CertFile: p.Cert, Renew: "sensu-tlsd renew backend-1"}
	given := Source{Name: "backend-1.pem", Origin: "argument", CertFile: p.Cert}
	got := Inspect([]Source{managed, given}, later)
	if d := checkNamed(t, got[0], pki.CheckValidity).Detail; !strings.HasSuffix(d, ": renew it: sensu-tlsd renew backend-1") {
		t.Errorf("managed: %q", d)
	}
	if d := checkNamed(t, got[1], pki.CheckValidity).Detail; strings.Contains(d, "sensu-tlsd renew") || !strings.HasSuffix(d, ": have the CA that signed it issue a new one and replace the files") {
		t.Errorf("unmanaged file: %q", d)
	}
}

func TestUnreadableFileIsNamedOnceAndHasNoSecondsLeft(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("der.der", []byte{0x30, 0x82, 0x01}, 0o644); err != nil {
		t.Fatal(err)
	}
	sources, err := FromFiles([]string{"der.der"}, "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := Inspect(sources, time.Now())
	var table, js bytes.Buffer
	if err := WriteTable(&table, entries, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "✗ der.der: no PEM certificate found: the file looks like DER") || strings.Contains(table.String(), "der.der: der.der") {
		t.Errorf("table:\n%s", table.String())
	}
	if r := Evaluate(entries, time.Hour, time.Minute); r.Status != StatusCritical || !strings.HasPrefix(r.Line, "CRITICAL: der.der unusable: no PEM certificate found") {
		t.Errorf("check line: %s", r.Line)
	}
	if err := WriteJSON(&js, Report{Certificates: entries}); err != nil {
		t.Fatal(err)
	}
	var report struct {
		Certificates []map[string]any `json:"certificates"`
	}
	if err := json.Unmarshal(js.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	if _, ok := report.Certificates[0]["seconds_left"]; ok {
		t.Errorf("an unreadable file has seconds_left in JSON:\n%s", js.String())
	}
}

// TestCheckOutputIsPrometheusText parses WriteCheck's output the way
// sensu-go's agent does (agent/transformers/prometheus.go), with label
// values that need escaping.
func TestCheckOutputIsPrometheusText(t *testing.T) {
	entries := []Entry{
		entry(`a "quoted" name`, time.Hour, true),
		entry(`back\slash`, 2*time.Hour, true),
		{Source: Source{Name: "gone", CertFile: "/gone.pem"}, Error: "/gone.pem: file\ndoes not exist"},
	}
	for i := range entries[:2] {
		secs := int64(entries[i].Left.Seconds())
		entries[i].Seconds, entries[i].CertFile = &secs, "/tls/"+entries[i].Name
	}
	var out bytes.Buffer
	if err := WriteCheck(&out, Evaluate(entries, 30*time.Minute, time.Minute), entries); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "# UNKNOWN: gone unreadable: /gone.pem: file does not exist;") {
		t.Errorf("status line:\n%s", out.String())
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(&out)
	if err != nil {
		t.Fatalf("Sensu's parser rejects the check output: %v", err)
	}
	fam := families["sensu_tlsd_certificate_expiry_seconds"]
	if fam == nil || len(fam.Metric) != 2 {
		t.Fatalf("families %v, want one sample per readable certificate", families)
	}
	for i, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["name"] != entries[i].Name || labels["path"] != entries[i].CertFile || m.GetGauge().GetValue() != float64(*entries[i].Seconds) {
			t.Errorf("sample %d: %v = %v, want %s %s %d", i, labels, m.GetGauge().GetValue(), entries[i].Name, entries[i].CertFile, *entries[i].Seconds)
		}
	}
}

func TestEmptySANIsAWarningInTheTable(t *testing.T) {
	e := Entry{Source: Source{Name: "b"}, NotAfter: time.Now().Add(time.Hour), Left: time.Hour, SANs: []string{"", "backend-1"},
		Checks: []pki.CheckResult{{Name: pki.CheckSANs, OK: true, Warning: true, Detail: "empty"}}}
	var out bytes.Buffer
	if err := WriteTable(&out, []Entry{e}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"",backend-1`) || !strings.Contains(out.String(), "!SANs") || !strings.Contains(out.String(), "! b: SANs: empty") {
		t.Errorf("table:\n%s", out.String())
	}
}
