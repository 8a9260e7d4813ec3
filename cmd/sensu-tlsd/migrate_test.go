package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
)

// migrateSetup writes a sensu-tlsd config naming Sensu configs copied from
// the chef samples, creates the local CA and issues the certificates.
func migrateSetup(t *testing.T, backendSample, agentSample string) (dir, cfg, backend, agent string) {
	t.Helper()
	dir = t.TempDir()
	backend, agent = filepath.Join(dir, "backend.yml"), filepath.Join(dir, "agent.yml")
	for src, dst := range map[string]string{backendSample: backend, agentSample: agent} {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", "sensu", "testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(dir, "tlsd.yml")
	conf := fmt.Sprintf(`state-dir: %[1]s/state
certificates:
  - {name: backend, profile: backend, hosts: [localhost, 127.0.0.1, sensu.example.com, 10.0.0.1]}
  - {name: peer, profile: etcd-peer, hosts: [localhost, 127.0.0.1, 10.0.0.1]}
sensu:
  backend-config: %[2]s
  agent-config: %[3]s
  backend-certificate: backend
  etcd-peer-certificate: peer
`, dir, backend, agent)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "--config", cfg, "ca", "init")
	mustRun(t, dir, nil, "--config", cfg, "issue", "--all")
	return dir, cfg, backend, agent
}

func TestMigrateCommandWalksEveryPhaseAndBack(t *testing.T) {
	dir, cfg, backend, agent := migrateSetup(t, "backend-chef.yml", "agent-chef.yml")
	origBackend, _ := os.ReadFile(backend)
	origAgent, _ := os.ReadFile(agent)
	m := func(args ...string) result {
		if args[0] != "plan" && args[0] != "status" {
			args = append(args, "--print-only")
		}
		return mustRun(t, dir, nil, append([]string{"--config", cfg, "migrate"}, append(args, "--user", "root")...)...)
	}

	plan := m("plan")
	for _, want := range []string{
		"at phase 0 (plaintext)",
		"== phase 1 (bridge)", "== phase 2 (agents)", "== phase 3 (native)", "== phase 4 (enforce)",
		`needs certificate "backend" (profile backend)`, "[ok]",
		"+api-listen-address: 127.0.0.1:18080",
		`-backend-url: ["ws://sensu.example.com:8081"]`, `+backend-url: ["wss://sensu.example.com:8081"]`,
		`-api-url: "http://sensu.example.com:8080"`, `+api-url: "https://sensu.example.com:8080"`,
		"+etcd-client-cert-auth: true",
		"== phase 4 (enforce): skipped here: no effect on the open-source build",
		"then 1. restart sensu-backend: sensu-backend moves to its loopback ports and frees the public ones",
		"then 2. reload sensu-tlsd: the proxy serves 127.0.0.1:8080, 127.0.0.1:8081 from the bridge's listeners",
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan.stdout)
		}
	}
	if b, _ := os.ReadFile(backend); string(b) != string(origBackend) {
		t.Fatal("plan changed backend.yml")
	}

	if r := run(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "3"); r.code == 0 || !strings.Contains(r.stderr, "apply phase 1 (bridge) first") {
		t.Errorf("skipping phases: exit %d %s", r.code, r.stderr)
	}
	// No daemon counts agents here: phase 3, which ends ws://, takes --force.
	if r := run(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "4", "--print-only"); r.code == 0 ||
		!strings.Contains(r.stderr, "phase 4 (enforce) does not apply to this node: no effect on the open-source build") {
		t.Errorf("phase 4 on the open-source build: exit %d %s", r.code, r.stderr)
	}
	for p := 1; p <= 3; p++ {
		r := m("apply", "--phase", fmt.Sprint(p), "--force")
		if !strings.Contains(r.stdout, fmt.Sprintf("-> phase %d", p)) || !strings.Contains(r.stdout, "to do (--print-only), in this order: 1. ") {
			t.Errorf("apply %d printed:\n%s", p, r.stdout)
		}
		again := m("apply", "--phase", fmt.Sprint(p))
		if !strings.Contains(again.stdout, "no file changed") {
			t.Errorf("re-applying phase %d changed files:\n%s", p, again.stdout)
		}
		st := m("status")
		if !strings.Contains(st.stdout, fmt.Sprintf("phase: %d", p)) || !strings.Contains(st.stdout, "drift: none") {
			t.Errorf("status after %d:\n%s", p, st.stdout)
		}
		// What each phase writes lints without errors.
		if r := run(t, dir, nil, "lint", "--user", "root", backend, agent); r.code > 1 {
			t.Errorf("phase %d files lint with errors:\n%s", p, r.stdout)
		}
	}
	if st := m("status"); !strings.Contains(st.stdout, "the cutover is complete") {
		t.Errorf("final status:\n%s", st.stdout)
	}
	b, _ := os.ReadFile(backend)
	for _, want := range []string{"cert-file: " + filepath.Join(dir, "state", "backend.pem"), "etcd-peer-cert-file: " + filepath.Join(dir, "state", "peer.pem"), `api-url: "https://sensu.example.com:8080"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("backend.yml at phase 3 lacks %q:\n%s", want, b)
		}
	}
	for p := 3; p >= 1; p-- {
		m("rollback")
	}
	if b, _ := os.ReadFile(backend); string(b) != string(origBackend) {
		t.Errorf("rollback did not restore backend.yml:\n%s", b)
	}
	if a, _ := os.ReadFile(agent); string(a) != string(origAgent) {
		t.Errorf("rollback did not restore agent.yml:\n%s", a)
	}
	if r := run(t, dir, nil, "--config", cfg, "migrate", "rollback"); r.code == 0 || !strings.Contains(r.stderr, "nothing to roll back") {
		t.Errorf("rollback at phase 0: exit %d %s", r.code, r.stderr)
	}
}

func TestMigrateStatusReportsDrift(t *testing.T) {
	dir, cfg, backend, _ := migrateSetup(t, "backend-ansible.yml", "agent-ansible.yml")
	mustRun(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "1", "--user", "root", "--print-only")
	b, _ := os.ReadFile(backend)
	edited := strings.Replace(string(b), "agent-port: 18081", "agent-port: 8081", 1)
	if edited == string(b) {
		t.Fatalf("bridge did not move agent-port:\n%s", b)
	}
	if err := os.WriteFile(backend, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	st := mustRun(t, dir, nil, "--config", cfg, "migrate", "status", "--user", "root")
	if !strings.Contains(st.stdout, "drift: "+backend+" no longer match phase 1") {
		t.Errorf("status:\n%s", st.stdout)
	}
	mustRun(t, dir, nil, "--config", cfg, "migrate", "apply", "--phase", "1", "--user", "root", "--print-only")
	if b, _ := os.ReadFile(backend); !strings.Contains(string(b), "agent-port: 18081") {
		t.Errorf("re-apply did not repair the drift:\n%s", b)
	}
}

// An agent node has phase 2 only: plan, apply and status print no step of
// the backend, and a backend phase is refused, not required.
func TestMigrateAgentNodeWalksOnlyItsPhase(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent.yml")
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "sensu", "testdata", "agent-packaged.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testca.New(t).WriteSet(t, dir, "any", "any").CAFile
	cfg := filepath.Join(dir, "tlsd.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("state-dir: %s/state\nsensu:\n  agent-config: %s\n  agent-ca-file: %s\n", dir, agent, ca)), 0o644); err != nil {
		t.Fatal(err)
	}
	m := func(args ...string) result {
		return run(t, dir, nil, append([]string{"--config", cfg, "migrate"}, append(args, "--user", "root")...)...)
	}
	plan := m("plan")
	if plan.code != 0 || strings.Contains(plan.stdout, "sensu-backend") || !strings.Contains(plan.stdout, "== phase 1 (bridge): skipped here: no backend on this node") ||
		!strings.Contains(plan.stdout, "then 1. restart sensu-agent") {
		t.Errorf("plan on an agent node: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	r := m("apply", "--phase", "2", "--print-only")
	if r.code != 0 || strings.Contains(r.stdout, "sensu-backend") || !strings.Contains(r.stdout, "phase 0 (plaintext) -> phase 2 (agents)") ||
		!strings.Contains(r.stdout, "in this order: 1. restart sensu-agent") {
		t.Errorf("apply --phase 2 on an agent node: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if st := m("status"); !strings.Contains(st.stdout, "phases on this node: 2 (agents)") || !strings.Contains(st.stdout, "the cutover is complete") {
		t.Errorf("status:\n%s", st.stdout)
	}
	if r := m("apply", "--phase", "3", "--print-only"); r.code == 0 || !strings.Contains(r.stderr, "phase 3 (native) does not apply to this node: no backend on this node") {
		t.Errorf("phase 3 on an agent node: exit %d %s", r.code, r.stderr)
	}
	if r := m("rollback", "--print-only"); r.code != 0 || !strings.Contains(r.stdout, "phase 2 (agents) -> phase 0 (plaintext)") {
		t.Errorf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
