package enrol

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
)

// EtcdPrefix is where the records live in the cluster's etcd, one key per
// agent name.
const EtcdPrefix = "/sensu-tlsd/enrol/agents/"

// EtcdStore is a Store in the Sensu cluster's etcd: every backend reads
// and writes the same records, and a Put is a transaction comparing the
// key's mod revision, so concurrent decisions on two members cannot both
// be stored.
type EtcdStore struct {
	c       *cluster.Cluster
	timeout time.Duration
}

// NewEtcdStore uses c; Close closes it.
func NewEtcdStore(c *cluster.Cluster) *EtcdStore {
	return &EtcdStore{c: c, timeout: 10 * time.Second}
}

func (s *EtcdStore) Get(ctx context.Context, name string) (Record, int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, found, err := s.c.Get(ctx, EtcdPrefix+name)
	if err != nil {
		return Record{}, 0, false, fmt.Errorf("enrolment store (etcd): reading %s: %w", name, err)
	}
	if !found {
		return Record{}, 0, false, nil
	}
	var rec Record
	if err := json.Unmarshal(v.Data, &rec); err != nil {
		return Record{}, 0, false, fmt.Errorf("enrolment store (etcd): key %s: %v: delete the key so the agent enrols again", v.Key, err)
	}
	return rec, v.Revision, true, nil
}

func (s *EtcdStore) Put(ctx context.Context, rec Record, version int64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// A key that does not exist has mod revision 0, so version 0 is "absent".
	stored, err := s.c.PutIfRevision(ctx, EtcdPrefix+rec.Name, data, version)
	if err != nil {
		return fmt.Errorf("enrolment store (etcd): writing %s: %w", rec.Name, err)
	}
	if !stored {
		return ErrConflict
	}
	return nil
}

func (s *EtcdStore) List(ctx context.Context) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	values, err := s.c.List(ctx, EtcdPrefix)
	if err != nil {
		return nil, fmt.Errorf("enrolment store (etcd): listing: %w", err)
	}
	out := make([]Record, 0, len(values))
	for _, v := range values {
		var rec Record
		if err := json.Unmarshal(v.Data, &rec); err != nil {
			return nil, fmt.Errorf("enrolment store (etcd): key %s: %v: delete the key so the agent enrols again", v.Key, err)
		}
		out = append(out, rec)
	}
	sortRecords(out)
	return out, nil
}

func (s *EtcdStore) Close() error { return s.c.Close() }
