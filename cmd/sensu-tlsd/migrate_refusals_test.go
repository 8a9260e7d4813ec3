package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sensuconfMigrate runs `sensu-tlsd --config cfg migrate ARGS --user root`;
// apply and rollback only print the restarts (no systemd here).
func sensuconfMigrate(t *testing.T, dir, cfg string, args ...string) result {
	t.Helper()
	args = append(args, "--user", "root")
	if slices.Contains(args, "apply") || slices.Contains(args, "rollback") {
		args = append(args, "--print-only")
	}
	return run(t, dir, nil, append([]string{"--config", cfg, "migrate"}, args...)...)
}

// The bridge's --refuse-plaintext is remembered: status sees no drift and a
// plain re-apply of phase 1, as status advises, keeps the listeners TLS-only.
func TestSensuconfRefusePlaintextSurvivesReapply(t *testing.T) {
	dir, cfg, _, _ := migrateSetup(t, "backend-chef.yml", "agent-chef.yml")
	dropIn := filepath.Join(dir, "state", "listeners.d", "migrate-bridge.yml")

	// From phase 0 no bridge has counted the agents, so refusing
	// plaintext at once takes --force, and plan says so.
	plan := sensuconfMigrate(t, dir, cfg, "plan", "--refuse-plaintext")
	if plan.code != 1 || !strings.Contains(plan.stdout, "+    allow-plaintext: false") || strings.Contains(plan.stdout, "allow-plaintext: true") ||
		!strings.Contains(plan.stdout, "REFUSED: phase 1 (bridge) ends ws:// on this backend, and no bridge has counted the agents yet") {
		t.Fatalf("plan --refuse-plaintext: exit %d\n%s%s", plan.code, plan.stdout, plan.stderr)
	}
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1", "--refuse-plaintext"); r.code == 0 || !strings.Contains(r.stderr, "--force cuts off every agent still on ws://") {
		t.Fatalf("apply without --force: exit %d %s", r.code, r.stderr)
	}
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1", "--refuse-plaintext", "--force"); r.code != 0 || !strings.Contains(r.stdout, "--force: cutting off every agent still on ws://") {
		t.Fatalf("apply --force: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	tlsOnly := func() bool {
		b, err := os.ReadFile(dropIn)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), "allow-plaintext: false") && !strings.Contains(string(b), "allow-plaintext: true")
	}
	if !tlsOnly() {
		t.Fatal("the bridge applied with --refuse-plaintext allows plaintext")
	}
	if st := sensuconfMigrate(t, dir, cfg, "status"); !strings.Contains(st.stdout, "drift: none") {
		t.Errorf("status after a TLS-only bridge:\n%s", st.stdout)
	}
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1"); r.code != 0 || !strings.Contains(r.stdout, "no file changed") || !tlsOnly() {
		t.Errorf("re-applying phase 1 without the flag: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "2", "--refuse-plaintext"); r.code == 0 || !strings.Contains(r.stderr, "--refuse-plaintext is a choice of phase 1 (bridge)") {
		t.Errorf("--refuse-plaintext on phase 2: exit %d %s", r.code, r.stderr)
	}
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1", "--refuse-plaintext=false"); r.code != 0 || tlsOnly() {
		t.Errorf("--refuse-plaintext=false: exit %d %s", r.code, r.stderr)
	}
}

// --state-dir (a key of every command) moves the migration state and the
// drop-in, like state-dir in the config; SENSU_TLSD_STATE_DIR does too.
func TestSensuconfMigrateHonoursStateDirFlag(t *testing.T) {
	dir, cfg, _, _ := migrateSetup(t, "backend-ansible.yml", "agent-ansible.yml")
	other := filepath.Join(dir, "other-state")
	// The state dir holds the CA and the certificates too.
	mustRun(t, dir, nil, "--config", cfg, "--state-dir", other, "ca", "init")
	mustRun(t, dir, nil, "--config", cfg, "--state-dir", other, "issue", "--all")
	if r := sensuconfMigrate(t, dir, cfg, "--state-dir", other, "apply", "--phase", "1"); r.code != 0 {
		t.Fatalf("apply --state-dir: exit %d %s", r.code, r.stderr)
	}
	for _, p := range []string{filepath.Join(other, "migrate", "state.json"), filepath.Join(other, "listeners.d", "migrate-bridge.yml")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("--state-dir: %v", err)
		}
	}
	if st := sensuconfMigrate(t, dir, cfg, "--state-dir", other, "status"); !strings.Contains(st.stdout, "phase: 1 (bridge)") {
		t.Errorf("status --state-dir:\n%s", st.stdout)
	}
	if st := run(t, dir, []string{"SENSU_TLSD_STATE_DIR=" + other}, "--config", cfg, "migrate", "status", "--user", "root"); !strings.Contains(st.stdout, "phase: 1 (bridge)") {
		t.Errorf("status with SENSU_TLSD_STATE_DIR:\n%s", st.stdout)
	}
	if st := sensuconfMigrate(t, dir, cfg, "status"); !strings.Contains(st.stdout, "phase: 0 (plaintext)") {
		t.Errorf("status with the config's state-dir:\n%s", st.stdout)
	}
}

// plan shows only what apply can do.
func TestSensuconfPlanRefusesWhatApplyCannotDo(t *testing.T) {
	dir, cfg, backend, _ := migrateSetup(t, "backend-packaged.yml", "agent-packaged.yml")
	conf, _ := os.ReadFile(cfg)
	noCert := filepath.Join(dir, "no-cert.yml")
	if err := os.WriteFile(noCert, []byte(strings.Replace(string(conf), "  backend-certificate: backend\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sensuconfMigrate(t, dir, noCert, "plan")
	if r.code == 0 || !strings.Contains(r.stderr, "no certificate named: set sensu.backend-certificate in "+noCert) || strings.Contains(r.stdout, "+    certificate:") {
		t.Errorf("plan with no backend certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A backend.yml whose api-url host the certificate does not cover:
	// apply refuses phase 3, so plan says so and exits 1.
	b, _ := os.ReadFile(backend)
	if err := os.WriteFile(backend, append(b, "api-url: http://uncovered.example.org:8080\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = sensuconfMigrate(t, dir, cfg, "plan")
	if r.code != 1 || !strings.Contains(r.stdout, `REFUSED: apply would not write this phase: refusing to rewrite `+backend) ||
		!strings.Contains(r.stdout, `does not cover host "uncovered.example.org"`) || !strings.Contains(r.stderr, "apply would refuse phase 3 (native)") {
		t.Errorf("plan of a phase apply refuses: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// rollback does not overwrite edits made after the phase, unless forced.
func TestSensuconfRollbackRefusesEditedFiles(t *testing.T) {
	dir, cfg, backend, _ := migrateSetup(t, "backend-puppet.yml", "agent-puppet.yml")
	orig, _ := os.ReadFile(backend)
	if r := sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	b, _ := os.ReadFile(backend)
	edited := string(b) + "log-level: debug\n"
	if err := os.WriteFile(backend, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sensuconfMigrate(t, dir, cfg, "rollback")
	if r.code == 0 || !strings.Contains(r.stderr, backend+" changed after phase 1 (bridge) wrote it") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("rollback over an edit: exit %d %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(backend); string(b) != edited {
		t.Error("the refused rollback changed backend.yml")
	}
	if r := sensuconfMigrate(t, dir, cfg, "rollback", "--force"); r.code != 0 || !strings.Contains(r.stdout, "had been edited since phase 1") {
		t.Fatalf("rollback --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(backend); string(b) != string(orig) {
		t.Error("rollback --force did not restore backend.yml")
	}
	if b, _ := os.ReadFile(backend + ".sensu-tlsd.bak"); string(b) != edited {
		t.Errorf("the edited backend.yml was not kept: %q", b)
	}
}

// Agent mTLS on the open-source build is sensu-tlsd's agent binding: the
// plan's phase 4 asks for the agent certificate sensu-tlsd presents for
// the agent (no longer refusing the config for want of the commercial build).
func TestSensuconfAgentMTLSOnTheOpenSourceBuildPlansTheBinding(t *testing.T) {
	dir, cfg, _, _ := migrateSetup(t, "backend-chef.yml", "agent-chef.yml")
	conf, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(conf, "  agent-mtls: true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sensuconfMigrate(t, dir, cfg, "plan")
	out := r.stdout + r.stderr
	if r.code != 1 || !strings.Contains(out, "for sensu-tlsd to present on 127.0.0.1:8091 for sensu-agent") || !strings.Contains(out, "set sensu.agent-certificate") {
		t.Errorf("plan with agent-mtls on the open-source build: exit %d\n%s", r.code, out)
	}
}

// A file Sensu reads despite a key set twice gets a lint finding naming the
// line Sensu uses, and apply refuses it naming the lines and the fix, not
// yaml's raw "already defined".
func TestSensuconfDuplicateKeysLintAndApply(t *testing.T) {
	dir, cfg, backend, _ := migrateSetup(t, "backend-chef.yml", "agent-chef.yml")
	b, _ := os.ReadFile(backend)
	if err := os.WriteFile(backend, append(b, "cache-dir: /var/cache/a\ncache-dir: /var/cache/b\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(b), "\n")
	r := run(t, dir, nil, "lint", "--user", "root", backend)
	if want := backend + ":" + strconv.Itoa(lines+1) + ": error: cache-dir: duplicate key: cache-dir is set again on line " + strconv.Itoa(lines+2) + ", and Sensu uses line " + strconv.Itoa(lines+2); r.code != 2 || !strings.Contains(r.stdout, want) {
		t.Errorf("lint: exit %d, want %q in\n%s", r.code, want, r.stdout)
	}
	r = sensuconfMigrate(t, dir, cfg, "apply", "--phase", "1")
	if r.code == 0 || strings.Contains(r.stderr, "already defined") || !strings.Contains(r.stderr, backend+": line "+strconv.Itoa(lines+1)+": cache-dir is set 2 times") || !strings.Contains(r.stderr, "delete line "+strconv.Itoa(lines+1)) {
		t.Errorf("apply on a duplicate key: exit %d %s", r.code, r.stderr)
	}
}
