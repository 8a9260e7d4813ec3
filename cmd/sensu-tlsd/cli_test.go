package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// cliConfig writes a config declaring the guide's set with a CA the
// commands may create (ca.create), in its own directory.
func cliConfig(t *testing.T, extra string) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "tlsd.yml")
	writeTestFile(t, cfg, fmt.Sprintf(`state-dir: %[1]s/state
metrics-address: ""
ca:
  dir: %[1]s/ca
  create: true
defaults:
  dir: %[1]s/tls
certificates:
  - {name: backend-1, profile: backend, hosts: [backend-1, 127.0.0.1]}
  - {name: backend-2, profile: backend, hosts: [backend-2, 127.0.0.1]}
  - {name: client, profile: etcd-client}
  - {name: agent-1, profile: agent}
%s`, dir, extra))
	return dir, cfg
}

// TestCheckOutputParsesAsSensuDoes feeds the real binary's check output to
// the parser sensu-agent uses for output_metric_format: prometheus_text
// (sensu-go agent/transformers/prometheus.go) and finds every certificate.
func TestCheckOutputParsesAsSensuDoes(t *testing.T) {
	dir, cfg := cliConfig(t, "")
	mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	wantFiles := map[string]string{"local CA": filepath.Join(dir, "ca", "ca.pem"), "backend-1 ca-file": filepath.Join(dir, "tls", "ca.pem")}
	for _, n := range []string{"backend-1", "backend-2", "client", "agent-1"} {
		wantFiles[n] = filepath.Join(dir, "tls", n+".pem")
	}
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"all OK", nil, 0},
		{"critical", []string{"--warn", "100d", "--crit", "95d"}, 2},
	} {
		before := time.Now()
		r := run(t, "", nil, append([]string{"--config", cfg, "check"}, c.args...)...)
		after := time.Now()
		if r.code != c.code || !strings.HasPrefix(r.stdout, "# ") {
			t.Fatalf("%s: exit %d, want %d and a comment status line:\n%s%s", c.name, r.code, c.code, r.stdout, r.stderr)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(r.stdout))
		if err != nil {
			t.Fatalf("%s: sensu-agent's parser rejects the output: %v\n%s", c.name, err, r.stdout)
		}
		fam := families["sensu_tlsd_certificate_expiry_seconds"]
		if fam == nil {
			t.Fatalf("%s: no expiry samples in:\n%s", c.name, r.stdout)
		}
		samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fam)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range samples {
			name, path := string(s.Metric["name"]), string(s.Metric["path"])
			got[name] = true
			if wantFiles[name] != path {
				t.Errorf("%s: sample %s has path %q, want %q", c.name, name, path, wantFiles[name])
				continue
			}
			certs, err := pki.ReadCertificates(path)
			if err != nil {
				t.Fatal(err)
			}
			// The check ran somewhere between before and after, and
			// truncates to whole seconds; a slow machine widens the window,
			// never the tolerance.
			most, least := certs[0].NotAfter.Sub(before).Seconds(), certs[0].NotAfter.Sub(after).Seconds()-1
			if v := float64(s.Value); v > most || v < least {
				t.Errorf("%s: %s = %v seconds, but it expires in %.0f to %.0f seconds from when check ran", c.name, name, s.Value, least, most)
			}
		}
		for name := range wantFiles {
			if !got[name] {
				t.Errorf("%s: no sample for %s:\n%s", c.name, name, r.stdout)
			}
		}
	}
}

// TestConfigValidateRunsWhatRunRuns: validate fails on every error run
// would stop at, names each, and finds the file the way every command does.
func TestConfigValidateRunsWhatRunRuns(t *testing.T) {
	dir, cfg := cliConfig(t, `  - {name: backend-3, profile: backend, hosts: [backend-3], services: [sensu-backend, sensu-backnd]}
services:
  - {name: sensu-agent, preset: sensu-agent, action: signal, signal: HUP}
  - {name: sensu-backend, preset: sensu-backend, action: restrat}
listeners:
  - {name: api, mode: terminate, listen: "127.0.0.1:0", targets: ["127.0.0.1:1"], certificate: backend-1, client-ca: /nonexistent/ca.pem}
`)
	r := run(t, dir, nil, "config", "validate", cfg)
	if r.code == 0 {
		t.Fatalf("config validate accepted a config run refuses:\n%s", r.stdout)
	}
	for _, want := range []string{
		`services[0] (sensu-agent): action signal HUP refused for preset sensu-agent: sensu-agent dies on SIGHUP`,
		`services[1] (sensu-backend): key action: unknown "restrat"`,
		`certificate "backend-3" lists service "sensu-backnd", which is not defined under services`,
		`listeners[0] (api):`,
		`/nonexistent/ca.pem`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config validate does not report %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Errorf("config validate created the state directory; it must touch nothing")
	}
	// Errors in the config itself come first, each with its key.
	sharedDir, shared := cliConfig(t, "  - {name: shared, profile: server, cert-file: tls/backend-2.pem}\n")
	if r := run(t, sharedDir, nil, "config", "validate", shared); r.code == 0 ||
		!strings.Contains(r.stderr, "certificates[4] (shared).cert-file: tls/backend-2.pem is also the cert-file of certificates[1] (backend-2)") {
		t.Errorf("config validate of two certificates sharing a cert-file: exit %d\n%s", r.code, r.stderr)
	}
	// run stops on the same config before starting anything.
	if r := run(t, dir, nil, "run", "--config", cfg); r.code == 0 || !strings.Contains(r.stderr, "listeners[0] (api)") {
		t.Errorf("run started with a config validate rejects: exit %d\n%s", r.code, r.stderr)
	}

	_, good := cliConfig(t, "")
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{[]string{"SENSU_TLSD_CONFIG=" + good}, nil},
		{[]string{"SENSU_TLSD_CONFIG=" + cfg}, []string{good}}, // the argument wins
		{nil, []string{"--config", good}},
	} {
		r := mustRun(t, "", c.env, append([]string{"config", "validate"}, c.args...)...)
		if !strings.Contains(r.stdout, good+": OK (4 certificates, 0 services, 0 listeners)") {
			t.Errorf("validate %v %v: %s", c.env, c.args, r.stdout)
		}
	}
	if r := run(t, "", []string{"SENSU_TLSD_CONFIG=" + cfg}, "config", "validate"); r.code == 0 || !strings.Contains(r.stderr, "restrat") {
		t.Errorf("validate ignores SENSU_TLSD_CONFIG: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "", []string{"SENSU_TLSD_CONFIG=" + filepath.Join(dir, "nope.yml")}, "config", "validate"); r.code == 0 || !strings.Contains(r.stderr, "nope.yml: config file does not exist") {
		t.Errorf("validate of a missing SENSU_TLSD_CONFIG: exit %d\n%s", r.code, r.stderr)
	}
}

// TestIssueWritesOnlyInsideOut: names are file names, hosts are hosts,
// lifetimes are positive; nothing is written for a refused request.
func TestIssueWritesOnlyInsideOut(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	out := filepath.Join(work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, work, nil, "--state-dir", work, "ca", "init")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"issue", "../evil", "--profile", "backend", "--out", out}, `certificate name "../evil" is not a plain file name`},
		{[]string{"issue", "a/b", "--profile", "backend", "--out", out}, `certificate name "a/b" is not a plain file name`},
		{[]string{"issue", "x", "--profile", "backend", "--out", out, "--hosts", "x,bad host!"}, `host "bad host!" is neither an IP address nor a DNS name`},
		{[]string{"issue", "x", "--profile", "backend", "--out", out, "--lifetime", "0s"}, "--lifetime 0s: a certificate must be valid for some time"},
	} {
		r := run(t, work, nil, append([]string{"--state-dir", work}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, want an error with %q:\n%s", c.args, r.code, c.want, r.stderr)
		}
	}
	for _, p := range []string{filepath.Join(dir, "evil.pem"), filepath.Join(work, "evil.pem"), filepath.Join(out, "x.pem"), filepath.Join(out, "ca.pem")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a refused issue wrote %s", p)
		}
	}
	// --all goes through the config's name rule too.
	_, cfg := cliConfig(t, "  - {name: ../evil, profile: server, hosts: [evil]}\n")
	if r := run(t, "", nil, "--config", cfg, "issue", "--all"); r.code == 0 || !strings.Contains(r.stderr, `(../evil).name: certificate name "../evil" is not a plain file name`) {
		t.Errorf("issue --all with a name holding a slash: exit %d\n%s", r.code, r.stderr)
	}
}

// TestIssueAllCreatesTheCAItDeclaresAsRunDoes: no `ca init` first.
func TestIssueAllCreatesTheCAItDeclaresAsRunDoes(t *testing.T) {
	dir, cfg := cliConfig(t, "")
	r := mustRun(t, "", nil, "--config", cfg, "issue", "--all")
	caFile := filepath.Join(dir, "ca", "ca.pem")
	if fi, err := os.Stat(filepath.Join(dir, "ca", "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("issue --all did not create the CA ca.create declares (key: %v %v):\n%s%s", fi, err, r.stdout, r.stderr)
	}
	for _, n := range []string{"backend-1", "backend-2", "client", "agent-1"} {
		if !strings.Contains(r.stdout, "issued "+n+" ") {
			t.Errorf("issue --all did not report %s:\n%s", n, r.stdout)
		}
		cert := filepath.Join(dir, "tls", n+".pem")
		if out := opensslOut(t, "verify", "-CAfile", caFile, cert); !strings.Contains(out, ": OK") {
			t.Errorf("openssl verify %s: %s", n, out)
		}
	}
	// Installed the daemon's way: renew (and so run) takes them over.
	if r := mustRun(t, "", nil, "--config", cfg, "renew", "backend-1"); !strings.Contains(r.stdout, "backend-1: not due") {
		t.Errorf("renew after issue --all:\n%s", r.stdout)
	}

	for _, flag := range [][]string{{"--out", dir}, {"--profile", "server"}, {"--hosts", "a"}} {
		r := run(t, "", nil, append([]string{"--config", cfg, "issue", "--all"}, flag...)...)
		if r.code == 0 || !strings.Contains(r.stderr, flag[0]+" applies to one certificate NAME, not --all") {
			t.Errorf("issue --all %v: exit %d\n%s", flag, r.code, r.stderr)
		}
	}

	noCreate, noCfg := cliConfig(t, "")
	text, err := os.ReadFile(noCfg)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, noCfg, strings.Replace(string(text), "create: true", "create: false", 1))
	r = run(t, "", nil, "--config", noCfg, "issue", "--all")
	if r.code == 0 || !strings.Contains(r.stderr, "sensu-tlsd ca init --dir "+filepath.Join(noCreate, "ca")) {
		t.Errorf("issue --all without a CA and without ca.create: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStatusReadsSensuConfigsTheWaySensuUsesThem: an API-only certificate
// needs no clientAuth when etcd has its own, an agent certificate must
// carry the agent's name, and a backend.yml with misspelled keys is not
// "no certificates".
func TestStatusReadsSensuConfigsTheWaySensuUsesThem(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, nil, "--state-dir", dir, "ca", "init")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "api", "--profile", "server", "--hosts", "backend-1")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "etcd", "--profile", "etcd-peer", "--hosts", "backend-1")
	mustRun(t, dir, nil, "--state-dir", dir, "issue", "agent-1", "--profile", "agent")
	backend := filepath.Join(dir, "backend.yml")
	writeTestFile(t, backend, fmt.Sprintf(`api-url: https://backend-1:8080
cert-file: %[1]s/api.pem
key-file: %[1]s/api-key.pem
trusted-ca-file: %[1]s/ca.pem
etcd-cert-file: %[1]s/etcd.pem
etcd-key-file: %[1]s/etcd-key.pem
etcd-trusted-ca-file: %[1]s/ca.pem
etcd-advertise-client-urls: https://backend-1:2379
`, dir))
	agent := filepath.Join(dir, "agent.yml")
	writeTestFile(t, agent, fmt.Sprintf("name: agent-7\ncert-file: %[1]s/agent-1.pem\nkey-file: %[1]s/agent-1-key.pem\ntrusted-ca-file: %[1]s/ca.pem\n", dir))

	if r := mustRun(t, "", nil, "status", "--backend-config", backend); strings.Contains(r.stdout, "✗") {
		t.Errorf("a serverAuth-only API certificate beside its own etcd certificate fails:\n%s", r.stdout)
	}
	r := run(t, "", nil, "status", "--agent-config", agent)
	if r.code != 1 || !strings.Contains(r.stdout, `✗ agent.yml cert-file: CN: subject CN is "agent-1" but must be "agent-7"`) {
		t.Errorf("agent certificate with another agent's CN: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	typo := filepath.Join(dir, "typo.yml")
	writeTestFile(t, typo, fmt.Sprintf("cert_file: %[1]s/api.pem\nkey_file: %[1]s/api-key.pem\n", dir))
	r = run(t, "", nil, "status", "--backend-config", typo)
	if r.code == 0 || !strings.Contains(r.stderr, typo+": no TLS keys found") || !strings.Contains(r.stderr, "sensu-tlsd lint "+typo) {
		t.Errorf("backend.yml with only misspelled keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "", nil, "status", "--backend-config", filepath.Join(dir, "nope.yml"))
	if want := filepath.Join(dir, "nope.yml") + ": file does not exist"; r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "nope.yml") != 1 {
		t.Errorf("missing backend.yml: exit %d, want %q once:\n%s", r.code, want, r.stderr)
	}
}

func TestHelpShowsTheTourFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"issue", "--help"}, {"ca", "init", "--help"}} {
		r := mustRun(t, "", nil, args...)
		for _, flag := range []string{"--state-dir", "--ca-dir", "--config"} {
			if !strings.Contains(r.stdout, flag+" ") {
				t.Errorf("%v lacks %s:\n%s", args, flag, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "--renewal-before") {
			t.Errorf("%v shows every config key, burying the command's own flags", args)
		}
	}
}

// TestVersionReportsWhatWasBuilt: -X main.version wins; without it the
// binary reports what the toolchain recorded, as `go version -m` shows it.
func TestVersionReportsWhatWasBuilt(t *testing.T) {
	r := mustRun(t, "", nil, "version")
	out, err := exec.Command("go", "version", "-m", binPath).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	mod := regexp.MustCompile(`(?m)^\tmod\t\S+\t(\S+)`).FindSubmatch(out)
	if mod == nil {
		t.Fatalf("go version -m shows no main module:\n%s", out)
	}
	want := string(mod[1])
	if want == "(devel)" {
		want = "devel"
	}
	if rev := regexp.MustCompile(`(?m)^\tbuild\tvcs.revision=(\S+)`).FindSubmatch(out); rev != nil {
		want += " (commit " + string(rev[1])
	}
	if !strings.HasPrefix(r.stdout, "sensu-tlsd "+want) {
		t.Errorf("version printed %q, want it to start with %q", r.stdout, "sensu-tlsd "+want)
	}

	linked := filepath.Join(t.TempDir(), "sensu-tlsd")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", linked, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -X: %v\n%s", err, out)
	}
	if out, err := exec.Command(linked, "version").Output(); err != nil || string(out) != "sensu-tlsd v9.8.7\n" {
		t.Errorf("with -X main.version=v9.8.7: %q %v", out, err)
	}
}

func TestVersionStringFromBuildInfo(t *testing.T) {
	info := func(version string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: version}}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	for _, c := range []struct {
		linked string
		info   func() (*debug.BuildInfo, bool)
		want   string
	}{
		{"v1.2.3", info("v0.0.1"), "v1.2.3"},
		{"", info("v1.4.0"), "v1.4.0"},
		{"", info("(devel)", "vcs.revision", "af82c16378042b73630cc6817a335426994686a4", "vcs.modified", "true"), "devel (commit af82c16378042b73630cc6817a335426994686a4, modified)"},
		{"", info("v0.0.0-20260101000000-af82c1637804", "vcs.revision", "af82c16378042b73630cc6817a335426994686a4", "vcs.modified", "false"), "v0.0.0-20260101000000-af82c1637804 (commit af82c16378042b73630cc6817a335426994686a4)"},
		{"", func() (*debug.BuildInfo, bool) { return nil, false }, "unknown (built without module information)"},
	} {
		if got := versionString(c.linked, c.info); got != c.want {
			t.Errorf("versionString(%q) = %q, want %q", c.linked, got, c.want)
		}
	}
}
