package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// realBackend is the stand-in backend as a systemd unit named like the
// real one, so the sensu-backend preset's default unit applies.
type realBackend struct {
	sys           *systemdtest.System
	dir, yml, log string
	ca            *testca.CA
	set           testca.Set
}

func newRealBackend(t *testing.T, sys *systemdtest.System) *realBackend {
	dir := t.TempDir()
	b := &realBackend{sys: sys, dir: dir, yml: filepath.Join(dir, "backend.yml"), log: filepath.Join(dir, "standin.log"), ca: testca.New(t)}
	b.set = b.ca.WriteSet(t, dir, "backend", "backend-good")
	standintest.BackendYML(t, b.yml, b.set, testpeer.FreePort(t), testpeer.FreePort(t))
	// The etcd client certificate lives in the same backend.yml, as in
	// the security guide's layout.
	etcd := b.ca.WriteSet(t, dir, "etcd-client", "etcd-client")
	appendTo(t, b.yml, fmt.Sprintf("etcd-cert-file: %s\netcd-key-file: %s\netcd-trusted-ca-file: %s\n", etcd.CertFile, etcd.KeyFile, etcd.CAFile))
	// So is the dashboard's, which sensu-backend also reads only at start
	// (the stand-in ignores it, as the open-source build does).
	dash := b.ca.WriteSet(t, dir, "dashboard", "dashboard")
	appendTo(t, b.yml, fmt.Sprintf("dashboard-cert-file: %s\ndashboard-key-file: %s\n", dash.CertFile, dash.KeyFile))
	sys.InstallUnit("sensu-backend.service", standintest.Unit(t, b.yml, b.log, "--fail-if-cert-cn", "backend-bad"))
	// restart, not start: an earlier subtest may have left it running.
	sys.Systemctl("restart", "sensu-backend.service")
	t.Cleanup(func() { sys.SystemctlStatus("stop", "sensu-backend.service") })
	return b
}

func (b *realBackend) dispatcher(t *testing.T, reg *prometheus.Registry) *Dispatcher {
	t.Helper()
	d, err := FromConfig(&config.Config{
		Sensu: config.Sensu{BackendConfig: b.yml},
		Certificates: []config.Certificate{
			{Name: "backend", Services: []string{"sensu-backend"}},
			{Name: "etcd-client", Services: []string{"sensu-backend"}},
			{Name: "dashboard", Services: []string{"sensu-backend"}},
		},
		Services: []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend,
			Health: config.Health{Timeout: 5 * time.Second, Interval: 100 * time.Millisecond}}},
		ServiceActions: config.ActionPolicy{Coalesce: realCoalesce, SystemdAddress: b.sys.PrivateSocket()},
	}, slog.New(slog.NewTextHandler(testWriter{t}, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// realCoalesce is the coalescing window of the real-systemd dispatcher.
const realCoalesce = 500 * time.Millisecond

// starts counts the stand-in's starts (its "serving" log line), which are
// the runs of the unit's ExecStart that came up.
func (b *realBackend) starts(t *testing.T) int {
	t.Helper()
	return strings.Count(string(readFile(t, b.log)), "msg=serving")
}

func (b *realBackend) change(reason event.Reason, old, new testca.Set) event.Change {
	return event.Change{Name: "backend", Reason: reason, OldSerial: old.Serial, NewSerial: new.Serial,
		CertFile: new.CertFile, KeyFile: new.KeyFile, CAFile: new.CAFile, Files: []string{new.CertFile, new.KeyFile}}
}

// testWriter sends the dispatcher's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestRealSystemd drives the dispatcher against systemd booted as PID 1 in
// a private namespace and the stand-in backend as its sensu-backend.service.
func TestRealSystemd(t *testing.T) {
	sys := systemdtest.Boot(t)

	t.Run("rotation restarts the unit through a D-Bus job and the new serial is served", func(t *testing.T) {
		b := newRealBackend(t, sys)
		d := b.dispatcher(t, nil)
		waitHealthy(t, b)
		pidBefore := sys.Property("sensu-backend.service", "MainPID")
		renewed := b.ca.WriteSet(t, b.dir, "backend", "backend-renewed")
		if err := d.CertificateChanged(context.Background(), b.change(event.ReasonRenewal, b.set, renewed)); err != nil {
			t.Fatal(err)
		}
		if pidAfter := sys.Property("sensu-backend.service", "MainPID"); pidAfter == pidBefore || pidAfter == "0" {
			t.Fatalf("MainPID %s → %s: the unit was not restarted", pidBefore, pidAfter)
		}
		// The health gate already required the new serial; check once more
		// from outside the dispatcher.
		if err := (Health{Checks: []Check{TLSCheck{Address: apiAddr(t, b)}}, Timeout: time.Second}).Wait(context.Background(), Expect{Serials: []string{renewed.Serial}, CAFile: renewed.CAFile}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("only etcd certificates changed: no restart", func(t *testing.T) {
		b := newRealBackend(t, sys)
		d := b.dispatcher(t, nil)
		waitHealthy(t, b)
		pidBefore := sys.Property("sensu-backend.service", "MainPID")
		etcd := b.ca.WriteSet(t, b.dir, "etcd-client", "etcd-client-2")
		if err := d.CertificateChanged(context.Background(), event.Change{Name: "etcd-client", Reason: event.ReasonRenewal, NewSerial: etcd.Serial,
			CertFile: etcd.CertFile, Files: []string{etcd.CertFile, etcd.KeyFile}}); err != nil {
			t.Fatal(err)
		}
		if pidAfter := sys.Property("sensu-backend.service", "MainPID"); pidAfter != pidBefore {
			t.Fatalf("MainPID %s → %s: restarted for an etcd-only change", pidBefore, pidAfter)
		}
	})

	// etcd's certificate needs no restart of its own, so this shows the
	// etcd change in the batch adds none; the next subtest is coalescing.
	t.Run("backend and etcd renewed together: one restart, none for etcd", func(t *testing.T) {
		b := newRealBackend(t, sys)
		d := b.dispatcher(t, nil)
		waitHealthy(t, b)
		renewed := b.ca.WriteSet(t, b.dir, "backend", "backend-renewed")
		etcd := b.ca.WriteSet(t, b.dir, "etcd-client", "etcd-client-2")
		errs := publishTogether(d, b.change(event.ReasonRenewal, b.set, renewed),
			event.Change{Name: "etcd-client", Reason: event.ReasonRenewal, NewSerial: etcd.Serial, CertFile: etcd.CertFile, Files: []string{etcd.CertFile, etcd.KeyFile}})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := b.starts(t); n != 2 {
			t.Fatalf("the stand-in started %d times, want 2 (first start + one restart)", n)
		}
	})

	t.Run("API and dashboard certificates arriving within the window: one restart", func(t *testing.T) {
		b := newRealBackend(t, sys)
		d := b.dispatcher(t, nil)
		waitHealthy(t, b)
		renewed := b.ca.WriteSet(t, b.dir, "backend", "backend-renewed")
		dash := b.ca.WriteSet(t, b.dir, "dashboard", "dashboard-2")
		// Each change alone restarts the backend; the dashboard's arrives
		// well inside the window opened by the API certificate's.
		api := make(chan error, 1)
		go func() {
			api <- d.CertificateChanged(context.Background(), b.change(event.ReasonRenewal, b.set, renewed))
		}()
		time.Sleep(realCoalesce / 3)
		if err := d.CertificateChanged(context.Background(), event.Change{Name: "dashboard", Reason: event.ReasonRenewal, NewSerial: dash.Serial,
			CertFile: dash.CertFile, KeyFile: dash.KeyFile, Files: []string{dash.CertFile, dash.KeyFile}}); err != nil {
			t.Fatal(err)
		}
		if err := <-api; err != nil {
			t.Fatal(err)
		}
		if n := b.starts(t); n != 2 {
			t.Fatalf("the stand-in started %d times, want 2 (first start + one restart for both certificates)", n)
		}
		if err := (Health{Checks: []Check{TLSCheck{Address: apiAddr(t, b)}}, Timeout: time.Second}).Wait(context.Background(), Expect{Serials: []string{renewed.Serial}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a backend that fails to come back is reported, then the rollback brings it back", func(t *testing.T) {
		b := newRealBackend(t, sys)
		reg := prometheus.NewRegistry()
		d := b.dispatcher(t, reg)
		waitHealthy(t, b)
		goodCert, goodKey := readFile(t, b.set.CertFile), readFile(t, b.set.KeyFile)

		bad := b.ca.WriteSet(t, b.dir, "backend", "backend-bad")
		err := d.CertificateChanged(context.Background(), b.change(event.ReasonRenewal, b.set, bad))
		if err == nil || !strings.Contains(err.Error(), "not healthy") {
			t.Fatalf("bad certificate: %v", err)
		}
		if state := sys.Property("sensu-backend.service", "ActiveState"); state != "failed" {
			t.Fatalf("unit is %s after the bad certificate, want failed", state)
		}

		// The daemon re-installs the previous generation and publishes it.
		writeFile(t, b.set.CertFile, string(goodCert))
		writeFile(t, b.set.KeyFile, string(goodKey))
		if err := d.CertificateChanged(context.Background(), b.change(event.ReasonRollback, bad, b.set)); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if state := sys.Property("sensu-backend.service", "ActiveState"); state != "active" {
			t.Fatalf("unit is %s after the rollback", state)
		}
		if got := testutil.ToFloat64(d.metrics.actions.WithLabelValues("sensu-backend", "rollback", "ok")); got != 1 {
			t.Fatalf("rollback ok counted %v", got)
		}
		if got := testutil.ToFloat64(d.metrics.healthFailures.WithLabelValues("sensu-backend", "change")); got != 1 {
			t.Fatalf("health failures counted %v", got)
		}
	})

	t.Run("a unit stopped on purpose is not started", func(t *testing.T) {
		b := newRealBackend(t, sys)
		d := b.dispatcher(t, nil)
		waitHealthy(t, b)
		sys.Systemctl("stop", "sensu-backend.service")
		renewed := b.ca.WriteSet(t, b.dir, "backend", "backend-renewed")
		if err := d.CertificateChanged(context.Background(), b.change(event.ReasonRenewal, b.set, renewed)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if state := sys.Property("sensu-backend.service", "ActiveState"); state != "inactive" {
			t.Fatalf("stopped unit is %s after a rotation", state)
		}
	})

	t.Run("only-if-running: false starts a stopped unit", func(t *testing.T) {
		b := newRealBackend(t, sys)
		waitHealthy(t, b)
		sys.Systemctl("stop", "sensu-backend.service")
		start := false
		d, err := FromConfig(&config.Config{
			Sensu:        config.Sensu{BackendConfig: b.yml},
			Certificates: []config.Certificate{{Name: "backend", Services: []string{"sensu-backend"}}},
			Services: []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend, OnlyIfRunning: &start,
				Health: config.Health{Timeout: 5 * time.Second, Interval: 100 * time.Millisecond}}},
			ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, SystemdAddress: sys.PrivateSocket()},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		renewed := b.ca.WriteSet(t, b.dir, "backend", "backend-renewed")
		if err := d.CertificateChanged(context.Background(), b.change(event.ReasonRenewal, b.set, renewed)); err != nil {
			t.Fatal(err)
		}
		if state := sys.Property("sensu-backend.service", "ActiveState"); state != "active" {
			t.Fatalf("unit is %s, want started", state)
		}
	})

	t.Run("reload runs the unit's ExecReload and waits for it", func(t *testing.T) {
		dir := t.TempDir()
		got := filepath.Join(dir, "got")
		sys.InstallUnit("reloadable.service", fmt.Sprintf(`[Unit]
Description=a daemon with ExecReload
DefaultDependencies=no

[Service]
Type=exec
ExecStart=/bin/sh -c 'trap "echo reloaded >> %s" USR2; while :; do sleep 0.05; done'
ExecReload=/bin/kill -USR2 $MAINPID
`, got))
		sys.Systemctl("start", "reloadable.service")
		time.Sleep(200 * time.Millisecond) // let the shell install its trap
		pidBefore := sys.Property("reloadable.service", "MainPID")
		d, err := FromConfig(&config.Config{
			Certificates:   []config.Certificate{{Name: "web", Services: []string{"web"}}},
			Services:       []config.Service{{Name: "web", Unit: "reloadable.service", Action: "reload"}},
			ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, SystemdAddress: sys.PrivateSocket()},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.CertificateChanged(context.Background(), changeOf("web", "0A")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if b, err := os.ReadFile(got); err == nil && string(b) == "reloaded\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("ExecReload never reached the main process")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if pidAfter := sys.Property("reloadable.service", "MainPID"); pidAfter != pidBefore {
			t.Fatalf("reload restarted the unit: MainPID %s → %s", pidBefore, pidAfter)
		}
	})

	t.Run("sensu-agent preset restarts the agent and never sends SIGHUP", func(t *testing.T) {
		dir := t.TempDir()
		port := testpeer.FreePort(t)
		hupFile := filepath.Join(dir, "hup")
		sys.InstallUnit("sensu-agent.service", fmt.Sprintf(`[Unit]
Description=stand-in sensu-agent
DefaultDependencies=no

[Service]
Type=exec
ExecStart=%s agent --api-port %d --hup-file %s
StandardOutput=append:%s/agent.log
StandardError=inherit
`, standintest.Binary(t), port, hupFile, dir))
		sys.Systemctl("start", "sensu-agent.service")
		testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
		pidBefore := sys.Property("sensu-agent.service", "MainPID")
		d, err := FromConfig(&config.Config{
			Certificates: []config.Certificate{{Name: "agent-ca", Services: []string{"sensu-agent"}}},
			// Only the health URL is overridden: port 3031 may be taken on
			// a machine that runs a real agent.
			Services: []config.Service{{Name: "sensu-agent", Preset: PresetSensuAgent,
				Health: config.Health{URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port), Timeout: 5 * time.Second}}},
			ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, SystemdAddress: sys.PrivateSocket()},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.CertificateChanged(context.Background(), changeOf("agent-ca", "0A", filepath.Join(dir, "ca.pem"))); err != nil {
			t.Fatal(err)
		}
		if pidAfter := sys.Property("sensu-agent.service", "MainPID"); pidAfter == pidBefore {
			t.Fatal("the agent was not restarted")
		}
		if _, err := os.Stat(hupFile); err == nil {
			t.Fatalf("the agent stand-in got SIGHUP: %s", readFile(t, hupFile))
		}
		if res := sys.Property("sensu-agent.service", "Result"); res != "success" {
			t.Fatalf("agent unit result %s", res)
		}
	})

	t.Run("signal to a unit's main process without a pid file", func(t *testing.T) {
		dir := t.TempDir()
		got := filepath.Join(dir, "got")
		sys.InstallUnit("reloader.service", fmt.Sprintf(`[Unit]
Description=a daemon that reloads on USR1
DefaultDependencies=no

[Service]
Type=exec
ExecStart=/bin/sh -c 'trap "echo USR1 >> %s" USR1; while :; do sleep 0.05; done'
`, got))
		sys.Systemctl("start", "reloader.service")
		time.Sleep(200 * time.Millisecond) // let the shell install its trap
		d, err := FromConfig(&config.Config{
			Certificates:   []config.Certificate{{Name: "web", Services: []string{"reloader"}}},
			Services:       []config.Service{{Name: "reloader", Unit: "reloader.service", Action: "signal", Signal: "USR1"}},
			ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond, SystemdAddress: sys.PrivateSocket()},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.CertificateChanged(context.Background(), changeOf("web", "0A")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if b, err := os.ReadFile(got); err == nil && string(b) == "USR1\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the unit's main process never got USR1")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if state := sys.Property("reloader.service", "ActiveState"); state != "active" {
			t.Fatalf("reloader is %s", state)
		}
	})
}

func apiAddr(t *testing.T, b *realBackend) string {
	return backendListeners(t, b).API
}

func backendListeners(t *testing.T, b *realBackend) sensu.BackendListeners {
	t.Helper()
	n, err := sensu.ReadNode(sensu.Backend, b.yml, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n.BackendListeners()
}

func waitHealthy(t *testing.T, b *realBackend) {
	t.Helper()
	h := Health{Checks: backendChecks(backendListeners(t, b)), Timeout: 20 * time.Second}
	if err := h.Wait(context.Background(), Expect{Serials: []string{b.set.Serial}}); err != nil {
		out, _ := os.ReadFile(b.log)
		t.Fatalf("stand-in unit not healthy: %v\n%s", err, out)
	}
}
