package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logbuf"
)

// restartRecorder is a command standing in for a sensu-backend restart: it
// fails (exit 9) when another member's restart is running, and logs its
// start and end, with the time in nanoseconds, to log.
func restartRecorder(member, lock, log string) []string {
	return []string{"sh", "-c", `mkdir "$0" || exit 9; echo "start $2 $(date +%s%N)" >> "$1"; sleep 0.4; echo "end $2 $(date +%s%N)" >> "$1"; rmdir "$0"`, lock, log, member}
}

// healthGate is a member's /health: each probe is logged like a restart
// ("probe MEMBER NANOSECONDS") and answers status.
func healthGate(t *testing.T, member, log string, status int) Health {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			fmt.Fprintf(f, "probe %s %d\n", member, time.Now().UnixNano())
			f.Close()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return Health{Checks: []Check{HTTPCheck{URL: srv.URL + "/health"}}, Timeout: time.Second, Interval: 100 * time.Millisecond}
}

// memberDispatcher is one member's sensu-tlsd: its sensu-backend service
// restarts through restartRecorder under the cluster's restart lock, read
// from the member's backend.yml, and passes its health gate when health
// says so (none: no gate).
func memberDispatcher(t *testing.T, m *etcdtest.Member, lock, log string, timeout time.Duration, health Health) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(DispatcherOptions{
		Services: []*Service{{
			Name: "sensu-backend", Trigger: Always{},
			Action:     Command{Service: "sensu-backend", Args: restartRecorder(m.Name, lock, log)},
			Health:     health,
			Serializer: ClusterRestartLock{BackendFile: m.BackendYML, Timeout: timeout},
		}},
		Routes: map[string][]string{"backend": {"sensu-backend"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type span struct {
	member     string
	start, end int64
}

// spans reads restartRecorder's and healthGate's log: each member's
// restart from its start to its last health probe.
func spans(t *testing.T, log string) []span {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	byMember := map[string]*span{}
	var out []*span
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("restart log line %q", l)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("restart log line %q: %v", l, err)
		}
		switch f[0] {
		case "start":
			byMember[f[1]] = &span{member: f[1], start: ns}
			out = append(out, byMember[f[1]])
		default: // end, probe
			byMember[f[1]].end = max(byMember[f[1]].end, ns)
		}
	}
	var res []span
	for _, s := range out {
		res = append(res, *s)
	}
	return res
}

// Three members whose backend certificates are renewed at the same moment
// restart one after the other, each through its own etcd member: no
// restart starts before the previous member's health gate ended, the
// failing gate of backend-1 included (it releases the lock too).
func TestClusteredBackendsRenewedTogetherRestartOneAtATime(t *testing.T) {
	c := etcdtest.Start(t, 3)
	dir := t.TempDir()
	lock, log := filepath.Join(dir, "restarting"), filepath.Join(dir, "restarts")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ds []*Dispatcher
	for i, m := range c.Members {
		status := http.StatusOK
		if i == 0 {
			status = http.StatusServiceUnavailable
		}
		ds = append(ds, memberDispatcher(t, m, lock, log, time.Minute, healthGate(t, m.Name, log, status)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			errs[i] = d.CertificateChanged(ctx, event.Change{Name: "backend", Reason: event.ReasonRenewal, NewSerial: fmt.Sprint(i)})
		})
		if i == 0 {
			// backend-1 goes first, so the others wait out its failing gate.
			for b, _ := os.ReadFile(log); !strings.Contains(string(b), "start backend-1"); b, _ = os.ReadFile(log) {
				if ctx.Err() != nil {
					t.Fatal("backend-1 never restarted")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	wg.Wait()
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "not healthy within 1s") {
		t.Errorf("backend-1, whose health gate fails: %v", errs[0])
	}
	if err := errors.Join(errs[1:]...); err != nil {
		t.Fatal(err)
	}
	got := spans(t, log)
	if len(got) != 3 {
		t.Fatalf("%d restarts ran, want 3: %+v", len(got), got)
	}
	slices.SortFunc(got, func(a, b span) int { return int(a.start - b.start) })
	for i := 1; i < len(got); i++ {
		if got[i].start < got[i-1].end {
			t.Errorf("%s restarted at %d while %s was still restarting (until %d)", got[i].member, got[i].start, got[i-1].member, got[i-1].end)
		}
		t.Logf("%s started %v after %s's health gate ended", got[i].member, time.Duration(got[i].start-got[i-1].end), got[i-1].member)
	}
}

// A member whose sensu-tlsd died holding the restart lock (its lease no
// longer renewed) holds up the others only until the lease expires; a
// live holder that keeps it past the timeout fails the restart, which
// never runs.
func TestRestartLockOfADeadHolderFreesAndALiveOneTimesOut(t *testing.T) {
	c := etcdtest.Start(t, 3)
	dir := t.TempDir()
	lock, log := filepath.Join(dir, "restarting"), filepath.Join(dir, "restarts")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder := func(m *etcdtest.Member, ttl time.Duration) (*cluster.Cluster, cluster.Unlock) {
		b, err := cluster.ReadBackend(m.BackendYML, nil)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := cluster.Open(ctx, b.Config())
		if err != nil {
			t.Fatal(err)
		}
		unlock, err := cl.Lock(ctx, cluster.RestartLock, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return cl, unlock
	}

	const ttl = 2 * time.Second
	dead, _ := holder(c.Members[0], ttl)
	dead.Close() // the holder's process is gone: nothing renews its lease
	died := time.Now()
	if err := memberDispatcher(t, c.Members[1], lock, log, time.Minute, Health{}).CertificateChanged(ctx, event.Change{Name: "backend", NewSerial: "2"}); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(died)
	t.Logf("the restart ran %v after the lock's holder died (lease TTL %v)", waited.Round(time.Millisecond), ttl)
	if waited < ttl/2 {
		t.Errorf("the restart ran %v after the holder died, before its lease (TTL %v) could expire", waited, ttl)
	}

	live, unlock := holder(c.Members[0], 0)
	defer live.Close()
	defer unlock(ctx)
	err := memberDispatcher(t, c.Members[2], lock, log, time.Second, Health{}).CertificateChanged(ctx, event.Change{Name: "backend", NewSerial: "3"})
	if err == nil || !errors.Is(err, errLockTimeout) || !strings.Contains(err.Error(), "backend-3") {
		t.Fatalf("restarting while another member holds the lock past the timeout: %v", err)
	}
	if n := len(spans(t, log)); n != 1 {
		t.Errorf("%d restarts ran, want only the first: the one that timed out must not run", n)
	}
}

// A member that reaches no etcd restarts without the lock and says so.
func TestUnreachableClusterRestartsUnlockedWithAWarning(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "backend.yml")
	// Port 1 on loopback: nothing listens, every dial is refused.
	if err := os.WriteFile(yml, []byte(`etcd-name: backend-1
etcd-advertise-client-urls: "http://127.0.0.1:1"
etcd-initial-cluster: "backend-1=http://127.0.0.1:2,backend-2=http://127.0.0.2:2"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	release, err := ClusterRestartLock{BackendFile: yml, Timeout: time.Minute}.Hold(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	release()
	if !strings.Contains(logs.String(), "restarting without the cluster's restart lock: the cluster is unreachable") {
		t.Errorf("no warning that the restart went ahead unlocked; log:\n%s", logs.String())
	}
}

// The sensu-backend preset restarts under the cluster's restart lock, read
// from the configured backend.yml and environment files, with the
// configured timeout.
func TestSensuBackendPresetTakesTheClusterRestartLock(t *testing.T) {
	d, err := FromConfig(&config.Config{
		Sensu:          config.Sensu{BackendConfig: "/etc/sensu/cluster/backend.yml", BackendEnvFiles: []string{"/etc/sensu/cluster/env"}},
		Services:       []config.Service{{Name: "sensu-backend", Preset: PresetSensuBackend}, {Name: "web", Action: "none"}},
		ServiceActions: config.ActionPolicy{RestartLockTimeout: 3 * time.Minute},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := ClusterRestartLock{BackendFile: "/etc/sensu/cluster/backend.yml", BackendEnvFiles: []string{"/etc/sensu/cluster/env"}, Timeout: 3 * time.Minute}
	if got := d.all["sensu-backend"].svc.Serializer; !reflect.DeepEqual(got, want) {
		t.Errorf("sensu-backend serializer %#v, want %#v", got, want)
	}
	if got := d.all["web"].svc.Serializer; got != nil {
		t.Errorf("a generic service got serializer %#v", got)
	}
}
