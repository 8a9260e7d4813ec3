package enrol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testStore runs the Store contract on s; other is a second handle on the
// same records (another process, another cluster member).
func testStore(t *testing.T, s, other Store) {
	ctx := context.Background()
	if _, v, found, err := s.Get(ctx, "agent-1"); err != nil || found || v != 0 {
		t.Fatalf("Get of an absent name: version %d found %v err %v", v, found, err)
	}
	rec := Record{Name: "agent-1", Namespace: "default", State: Pending, Requested: "k1", Updated: now}
	if err := s.Put(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, rec, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second create of the same name: %v, want ErrConflict", err)
	}
	got, v, found, err := other.Get(ctx, "agent-1")
	if err != nil || !found || got.Requested != "k1" || !got.Updated.Equal(now) {
		t.Fatalf("Get through the other handle: %+v %v %v", got, found, err)
	}
	got.State = Approved
	if err := other.Put(ctx, got, v); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, rec, v); !errors.Is(err, ErrConflict) {
		t.Fatalf("a Put on a stale version: %v, want ErrConflict", err)
	}
	if err := s.Put(ctx, Record{Name: "agent-0", State: Signed, Key: "k0"}, 0); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "agent-0" || list[1].State != Approved {
		t.Fatalf("List: %+v %v", list, err)
	}

	// Concurrent decisions through both handles: every one lands once.
	var wg sync.WaitGroup
	for i := range 8 {
		st := []Store{s, other}[i%2]
		wg.Go(func() {
			_, _, err := Update(ctx, st, "counter", func(rec Record, found bool) (Record, struct{}, error) {
				rec.Name = "counter"
				rec.Reason += "x"
				return rec, struct{}{}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _, _, _ := s.Get(ctx, "counter"); got.Reason != "xxxxxxxx" {
		t.Errorf("8 concurrent updates left %q: some were lost", got.Reason)
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	a, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewFileStore(dir)
	testStore(t, a, b)
	fi, err := os.Stat(filepath.Join(dir, "agents.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agents.json: %v %v, want mode 0600", fi, err)
	}
	os.WriteFile(filepath.Join(dir, "agents.json"), []byte("{broken"), 0o600)
	if _, err := a.List(context.Background()); err == nil || !contains(err.Error(), "agents.json", "move it away") {
		t.Errorf("a broken store file: %v", err)
	}
}

func TestEtcdStore(t *testing.T) {
	endpoint := startEtcd(t)
	client := func() *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := NewEtcdStore(client()), NewEtcdStore(client())
	defer a.Close()
	defer b.Close()
	testStore(t, a, b)
	// Records live under the prefix, one key per name.
	resp, err := a.c.Get(context.Background(), EtcdPrefix+"agent-1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("key %sagent-1: %v %v", EtcdPrefix, resp, err)
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// startEtcd starts one etcd member (Debian's etcd-server) on loopback
// ports in a temporary directory and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("SENSU_TLSD_REQUIRE_PEERS") == "1" {
			t.Fatalf("etcd is not installed (apt-get install etcd-server) and SENSU_TLSD_REQUIRE_PEERS=1")
		}
		t.Skip("SKIP: etcd is not installed (apt-get install etcd-server): the etcd store is untested")
	}
	client, peer := freePort(t), freePort(t)
	clientURL, peerURL := "http://"+client, "http://"+peer
	cmd := exec.Command(bin, "--name", "enrol-test", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "enrol-test="+peerURL, "--log-level", "error")
	out, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", client, time.Second)
		if err == nil {
			conn.Close()
			return clientURL
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("etcd did not listen on %s in 20s: %s", client, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr())
}
