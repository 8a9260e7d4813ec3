package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/rotate"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90*24*time.Hour + 5*time.Hour: "90d 5h",
		5*time.Hour + 12*time.Minute:  "5h 12m",
		3*time.Minute + 4*time.Second: "3m 4s",
		42 * time.Second:              "42s",
		-49 * time.Hour:               "expired 2d 1h ago",
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
	e.Renewal = &rotate.CertState{Failures: 3, LastError: "exec: exit status 2"}
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
		{[]Entry{{Source: Source{Name: "gone"}, Error: "no such file"}, entry("a", 3*day, true)}, StatusUnknown, "UNKNOWN: gone unreadable (no such file); a expires"},
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
	p := filepath.Join(t.TempDir(), "backend.yml")
	os.WriteFile(p, []byte(`# comment
api-url: https://sensu.example.com:8080
cert-file: /etc/sensu/tls/backend.pem
key-file: /etc/sensu/tls/backend-key.pem
trusted-ca-file: /etc/sensu/tls/ca.pem
etcd-advertise-client-urls: "https://10.0.0.1:2379 https://10.0.0.2:2379"
etcd-cert-file: /etc/sensu/tls/etcd.pem
etcd-key-file: /etc/sensu/tls/etcd-key.pem
etcd-peer-cert-file: /etc/sensu/tls/peer.pem
etcd-initial-advertise-peer-urls: ["https://[::]:2380", "https://backend-1:2380"]
`), 0o644)
	got, err := FromBackendConfig(p)
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
	if got[0].Profile != pki.Backend || got[1].Profile != pki.EtcdPeer || got[1].CAFile != "" {
		t.Errorf("profiles/CA: %+v", got)
	}
}

func TestFromFilesRejectsKeyWithManyCerts(t *testing.T) {
	if _, err := FromFiles([]string{"a.pem", "b.pem"}, "k.pem", ""); err == nil {
		t.Fatal("--key with two certificates accepted")
	}
}
