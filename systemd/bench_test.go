package systemd

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/systemdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testca"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// BenchmarkTLSCheckProbe is one health probe of the stand-in backend's
// agent port: TLS handshake, chain verification and serial comparison.
func BenchmarkTLSCheckProbe(b *testing.B) {
	dir := b.TempDir()
	ca := testca.New(b)
	set := ca.WriteSet(b, dir, "backend", "backend-1")
	api, agent := testpeer.FreePort(b), testpeer.FreePort(b)
	yml := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(b, yml, set, api, agent)
	standintest.Start(b, yml)
	addr := fmt.Sprintf("127.0.0.1:%d", agent)
	testpeer.WaitTCP(b, addr)
	check, e := TLSCheck{Address: addr}, Expect{Serials: []string{set.Serial}, CAFile: set.CAFile}
	b.ResetTimer()
	for b.Loop() {
		if err := check.Probe(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchNone is the dispatcher's own cost: one change routed to
// three services whose action does nothing, no coalescing wait.
func BenchmarkDispatchNone(b *testing.B) {
	d, err := FromConfig(&config.Config{
		Certificates: []config.Certificate{{Name: "c", Services: []string{"a", "b", "c"}}},
		Services: []config.Service{
			{Name: "a", Action: "none"}, {Name: "b", Action: "none"}, {Name: "c", Action: "none"},
		},
		ServiceActions: config.ActionPolicy{Coalesce: time.Nanosecond},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ch := event.Change{Name: "c", NewSerial: "0A", Files: []string{"/x.pem"}}
	for b.Loop() {
		if err := d.CertificateChanged(context.Background(), ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRealSystemdRotation is a whole rotation as the backend sees it,
// against systemd as PID 1 in a namespace: a D-Bus restart job of the
// stand-in sensu-backend.service, then the health gate until /health
// answers and both ports present the new serial.
func BenchmarkRealSystemdRotation(b *testing.B) {
	sys := systemdtest.Boot(b)
	dir := b.TempDir()
	ca := testca.New(b)
	set := ca.WriteSet(b, dir, "backend", "backend-0")
	yml := filepath.Join(dir, "backend.yml")
	standintest.BackendYML(b, yml, set, testpeer.FreePort(b), testpeer.FreePort(b))
	sys.InstallUnit("sensu-backend.service", fmt.Sprintf("[Unit]\nDefaultDependencies=no\n# Restarts faster than the default start limit (5 in 10s).\nStartLimitIntervalSec=0\n[Service]\nType=exec\nExecStart=%s -c %s\nStandardOutput=null\n", standintest.Binary(b), yml))
	sys.Systemctl("start", "sensu-backend.service")
	d, err := FromConfig(&config.Config{
		Sensu:          config.Sensu{BackendConfig: yml},
		Certificates:   []config.Certificate{{Name: "backend", Services: []string{"sensu-backend"}}},
		Services:       []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend, Health: config.Health{Timeout: 20 * time.Second, Interval: 10 * time.Millisecond}}},
		ServiceActions: config.ActionPolicy{Coalesce: time.Nanosecond, SystemdAddress: sys.PrivateSocket()},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		next := ca.WriteSet(b, dir, "backend", fmt.Sprintf("backend-%d", i))
		b.StartTimer()
		err := d.CertificateChanged(context.Background(), event.Change{Name: "backend", NewSerial: next.Serial,
			CertFile: next.CertFile, KeyFile: next.KeyFile, CAFile: next.CAFile, Files: []string{next.CertFile, next.KeyFile}})
		if err != nil {
			b.Fatal(err)
		}
	}
}
