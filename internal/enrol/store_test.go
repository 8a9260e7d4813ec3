package enrol

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
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

// Two stores on one real etcd member, each opened from the member's
// backend.yml as enrol-server opens it.
func TestEtcdStore(t *testing.T) {
	member := etcdtest.Start(t, 1).Members[0]
	open := func() *EtcdStore {
		b, err := cluster.ReadBackend(member.BackendYML, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cluster.Open(context.Background(), b.Config())
		if err != nil {
			t.Fatal(err)
		}
		return NewEtcdStore(c)
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	testStore(t, a, b)
	// Records live under the prefix, one key per name.
	if v, found, err := a.c.Get(context.Background(), EtcdPrefix+"agent-1"); err != nil || !found {
		t.Fatalf("key %sagent-1: %+v %v %v", EtcdPrefix, v, found, err)
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
