package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// publishTogether publishes changes concurrently, as a daemon does for
// certificates renewed in the same run, and returns each result.
func publishTogether(d *Dispatcher, changes ...event.Change) []error {
	errs := make([]error, len(changes))
	var wg sync.WaitGroup
	for i, c := range changes {
		wg.Go(func() { errs[i] = d.CertificateChanged(context.Background(), c) })
	}
	wg.Wait()
	return errs
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// exclusive is a command that fails (exit 9) when another run holds lock,
// and logs each run's certificate names to log.
func exclusive(lock, log string) []string {
	return []string{"sh", "-c", `mkdir "$0" || exit 9; echo "$SENSU_TLSD_CERTIFICATES" | tr ' ' + >> "$1"; sleep 0.3; rmdir "$0"`, lock, log}
}

func TestChangesArrivingTogetherCauseOneAction(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	reg := prometheus.NewRegistry()
	d, err := FromConfig(&config.Config{
		Certificates: []config.Certificate{
			{Name: "backend", Services: []string{"svc"}},
			{Name: "etcd-peer", Services: []string{"svc"}},
			{Name: "ca", Services: []string{"svc"}},
		},
		Services:       []config.Service{{Name: "svc", Action: "command", Command: exclusive(filepath.Join(dir, "lock"), log)}},
		ServiceActions: config.ActionPolicy{Coalesce: 300 * time.Millisecond},
	}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range publishTogether(d, changeOf("backend", "0A"), changeOf("etcd-peer", "0B"), changeOf("ca", "0C")) {
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	runs := lines(t, log)
	if len(runs) != 1 || len(strings.Split(runs[0], "+")) != 3 {
		t.Fatalf("runs %q, want one run for all three certificates", runs)
	}
	if got := testutil.ToFloat64(d.metrics.actions.WithLabelValues("svc", "change", "ok")); got != 1 {
		t.Fatalf("ok actions counted %v, want 1", got)
	}
}

func TestOneServiceNeverHasTwoActionsInFlight(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	d, err := FromConfig(&config.Config{
		Certificates:   []config.Certificate{{Name: "a", Services: []string{"svc"}}, {Name: "b", Services: []string{"svc"}}, {Name: "c", Services: []string{"svc"}}},
		Services:       []config.Service{{Name: "svc", Action: "command", Command: exclusive(filepath.Join(dir, "lock"), log)}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- d.CertificateChanged(context.Background(), changeOf("a", "0A")) }()
	// b and c arrive while a's action runs: they wait and then share one
	// action instead of overlapping a's (which the lock would reject).
	time.Sleep(100 * time.Millisecond)
	for i, err := range publishTogether(d, changeOf("b", "0B"), changeOf("c", "0C")) {
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	runs := lines(t, log)
	if len(runs) != 2 || runs[0] != "a" || (runs[1] != "b+c" && runs[1] != "c+b") {
		t.Fatalf("runs %q, want [a b+c]", runs)
	}
}

func TestParallelLimitIsHonoured(t *testing.T) {
	dir := t.TempDir()
	lock, log := filepath.Join(dir, "lock"), filepath.Join(dir, "runs")
	var services []config.Service
	for _, n := range []string{"s1", "s2", "s3"} {
		// All three share one lock: with parallel 1 they must not overlap.
		services = append(services, config.Service{Name: n, Action: "command", Command: exclusive(lock, log)})
	}
	d, err := FromConfig(&config.Config{
		Certificates:   []config.Certificate{{Name: "shared", Services: []string{"s1", "s2", "s3"}}},
		Services:       services,
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, Parallel: 1},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CertificateChanged(context.Background(), changeOf("shared", "0A")); err != nil {
		t.Fatal(err)
	}
	if runs := lines(t, log); len(runs) != 3 {
		t.Fatalf("runs %q, want three", runs)
	}
}

// TestParallelLimitLetsTwoOverlapNeverThree runs three services of one
// certificate with parallel 2: each run records how many were running when
// it started. The first two overlap; the third waits for a free slot.
func TestParallelLimitLetsTwoOverlapNeverThree(t *testing.T) {
	dir := t.TempDir()
	running, counts := filepath.Join(dir, "running"), filepath.Join(dir, "counts")
	if err := os.Mkdir(running, 0o755); err != nil {
		t.Fatal(err)
	}
	// Each run marks itself running, writes how many are, holds its slot
	// for a second (long enough for a loaded machine to start the second
	// run meanwhile) and leaves.
	script := `touch "$0/$SENSU_TLSD_SERVICE"; ls "$0" | wc -l >> "$1"; sleep 1; rm "$0/$SENSU_TLSD_SERVICE"`
	var services []config.Service
	for _, n := range []string{"s1", "s2", "s3"} {
		services = append(services, config.Service{Name: n, Action: "command", Command: []string{"sh", "-c", script, running, counts}})
	}
	d, err := FromConfig(&config.Config{
		Certificates:   []config.Certificate{{Name: "shared", Services: []string{"s1", "s2", "s3"}}},
		Services:       services,
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, Parallel: 2},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CertificateChanged(context.Background(), changeOf("shared", "0A")); err != nil {
		t.Fatal(err)
	}
	got := lines(t, counts)
	peak := 0
	for _, c := range got {
		n, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("counts %q", got)
		}
		peak = max(peak, n)
	}
	if len(got) != 3 || peak != 2 {
		t.Fatalf("running counts at each start %q: want three runs, at most two at once and two at some point", got)
	}
}

// TestBackendGateWithoutBackendYML: with backend.yml unreadable the
// sensu-backend preset still waits for the new serial on the default
// listeners, so a restart nobody verified is not reported healthy.
func TestBackendGateWithoutBackendYML(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "backend.yml")
	var out strings.Builder
	d, err := FromConfig(&config.Config{
		Sensu:        config.Sensu{BackendConfig: missing},
		Certificates: []config.Certificate{{Name: "backend", Services: []string{"sensu-backend"}}},
		Services: []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend, Action: "command", Command: []string{"true"},
			Health: config.Health{Timeout: 300 * time.Millisecond, Interval: 50 * time.Millisecond}}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}, slog.New(slog.NewTextHandler(&out, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// No listener presents this random serial on 127.0.0.1:8080/8081.
	err = d.CertificateChanged(context.Background(), changeOf("backend", testca.New(t).Cert.SerialNumber.Text(16), "/etc/sensu/tls/backend.pem"))
	if err == nil || !strings.Contains(err.Error(), "not healthy within 300ms") || !strings.Contains(err.Error(), "TLS 127.0.0.1:8081") {
		t.Fatalf("got %v, want the default listeners' checks to fail", err)
	}
	if !strings.Contains(out.String(), "fix: make "+missing+" readable by sensu-tlsd") {
		t.Fatalf("log does not name the fix:\n%s", out.String())
	}
}

// TestServiceLockKeepsProcessesApart: two dispatchers over one state
// directory, as the daemon and `sensu-tlsd services act` are, never act
// on one service at once; the second waits for the first.
func TestServiceLockKeepsProcessesApart(t *testing.T) {
	dir := t.TempDir()
	lock, log := filepath.Join(dir, "lock"), filepath.Join(dir, "runs")
	cfg := &config.Config{
		StateDir:       dir,
		Certificates:   []config.Certificate{{Name: "a", Services: []string{"svc"}}},
		Services:       []config.Service{{Name: "svc", Action: "command", Command: exclusive(lock, log)}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}
	daemon, err := FromConfig(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cliLog strings.Builder
	cli, err := FromConfig(cfg, slog.New(slog.NewTextHandler(&cliLog, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- daemon.CertificateChanged(context.Background(), changeOf("a", "0A")) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(lock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon's action never started")
		}
	}
	// The exclusive command exits 9 if the two runs overlap.
	if err := cli.Act(context.Background(), "svc", Batch{changeOf("b", "0B")}); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if runs := lines(t, log); strings.Join(runs, " ") != "a b" {
		t.Fatalf("runs %q, want a then b", runs)
	}
	if want := filepath.Join(dir, "services", "svc.lock"); !strings.Contains(cliLog.String(), `msg="waiting for another sensu-tlsd process acting on this service" service=svc lock=`+want) {
		t.Fatalf("the second process did not say it waits:\n%s", cliLog.String())
	}
}

func TestUnknownServiceInCertificateIsAnError(t *testing.T) {
	_, err := FromConfig(&config.Config{
		Certificates: []config.Certificate{{Name: "backend", Services: []string{"sensu-backnd"}}},
		Services:     []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend}},
	}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `certificate "backend" lists service "sensu-backnd"`) {
		t.Fatalf("got %v", err)
	}
	_, err = FromConfig(&config.Config{Services: []config.Service{{Name: "x", Action: "restrat"}}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `services[0] (x): key action: unknown "restrat"`) {
		t.Fatalf("got %v", err)
	}
}

// TestFailedHealthThenRollback drives the stand-in backend through a
// command action that restarts it: a certificate the backend cannot start
// with fails the health gate, and the rollback change that follows brings
// it back on the old serial. It is the Change sequence the daemon
// publishes; nothing retries the bad certificate.
func TestFailedHealthThenRollback(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	good := ca.WriteSet(t, dir, "backend", "backend-good")
	goodPEM := [2][]byte{readFile(t, good.CertFile), readFile(t, good.KeyFile)}
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, yml, good, apiPort, agentPort)

	// restart.sh stops the running stand-in and starts a new one, like
	// systemctl restart; a stand-in that refuses its certificate exits 3.
	pidFile := filepath.Join(dir, "standin.pid")
	restart := filepath.Join(dir, "restart.sh")
	writeFile(t, restart, fmt.Sprintf(`#!/bin/sh
[ -f %[1]s ] && kill $(cat %[1]s) && while kill -0 $(cat %[1]s) 2>/dev/null; do sleep 0.05; done
%[2]s -c %[3]s --fail-if-cert-cn backend-bad >>%[4]s/standin.log 2>&1 &
echo $! > %[1]s
`, pidFile, standintest.Binary(t), yml, dir))
	os.Chmod(restart, 0o755)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := ParsePID(b); err == nil {
				PIDSignal{PID: pid, Signal: 15}.Run(context.Background(), nil)
			}
		}
	})

	reg := prometheus.NewRegistry()
	d, err := FromConfig(&config.Config{
		Sensu:        config.Sensu{BackendConfig: yml},
		Certificates: []config.Certificate{{Name: "backend", Services: []string{"sensu-backend"}}},
		Services: []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend, Action: "command", Command: []string{restart},
			Health: config.Health{Timeout: 3 * time.Second, Interval: 50 * time.Millisecond}}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	change := func(reason event.Reason, old, new testca.Set) event.Change {
		return event.Change{Name: "backend", Reason: reason, OldSerial: old.Serial, NewSerial: new.Serial,
			CertFile: new.CertFile, KeyFile: new.KeyFile, CAFile: new.CAFile, Files: []string{new.CertFile, new.KeyFile}}
	}
	ctx := context.Background()
	if err := d.CertificateChanged(ctx, change(event.ReasonInitial, testca.Set{}, good)); err != nil {
		t.Fatalf("first start: %v", err)
	}

	bad := ca.WriteSet(t, dir, "backend", "backend-bad")
	err = d.CertificateChanged(ctx, change(event.ReasonRenewal, good, bad))
	if err == nil || !strings.Contains(err.Error(), "not healthy within 3s") || !strings.Contains(err.Error(), "certificate backend") {
		t.Fatalf("bad certificate: got %v, want a health failure naming the certificate", err)
	}

	// The daemon re-installs the previous generation and says so.
	writeFile(t, good.CertFile, string(goodPEM[0]))
	writeFile(t, good.KeyFile, string(goodPEM[1]))
	if err := d.CertificateChanged(ctx, change(event.ReasonRollback, bad, good)); err != nil {
		t.Fatalf("rollback: %v\n%s", err, readFile(t, filepath.Join(dir, "standin.log")))
	}
	for labels, want := range map[[3]string]float64{
		{"sensu-backend", "change", "ok"}:        1,
		{"sensu-backend", "change", "unhealthy"}: 1,
		{"sensu-backend", "rollback", "ok"}:      1,
	} {
		if got := testutil.ToFloat64(d.metrics.actions.WithLabelValues(labels[:]...)); got != want {
			t.Errorf("actions%v = %v, want %v", labels, got, want)
		}
	}
	if got := testutil.ToFloat64(d.metrics.healthFailures.WithLabelValues("sensu-backend", "change")); got != 1 {
		t.Errorf("health failures = %v, want 1", got)
	}
}

func TestHealthTLSCheckNamesTheServedSerial(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	set := ca.WriteSet(t, dir, "backend", "backend-1")
	apiPort, agentPort := testpeer.FreePort(t), testpeer.FreePort(t)
	yml := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(t, yml, set, apiPort, agentPort)
	standintest.Start(t, yml)
	addr := fmt.Sprintf("127.0.0.1:%d", agentPort)
	testpeer.WaitTCP(t, addr)

	h := Health{Checks: []Check{TLSCheck{Address: addr}}, Timeout: 2 * time.Second}
	if err := h.Wait(context.Background(), Expect{Serials: []string{strings.ToUpper(set.Serial)}, CAFile: set.CAFile}); err != nil {
		t.Fatal(err)
	}
	err := h.Wait(context.Background(), Expect{Serials: []string{"DEADBEEF"}})
	if err == nil || !strings.Contains(err.Error(), "presents serial "+strings.ToUpper(set.Serial)) {
		t.Fatalf("wrong serial: %v", err)
	}
	otherCA := testca.New(t)
	otherDir := t.TempDir()
	otherCA.WriteSet(t, otherDir, "x", "x")
	err = h.Wait(context.Background(), Expect{CAFile: filepath.Join(otherDir, "ca.pem")})
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("foreign CA: %v", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
