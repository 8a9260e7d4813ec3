package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Value is one key's value and the revision of its last change.
type Value struct {
	Key      string
	Data     []byte
	Revision int64
}

// Get returns key's value; found is false (and the revision 0) when the
// key does not exist.
func (c *Cluster) Get(ctx context.Context, key string) (v Value, found bool, err error) {
	resp, err := c.client.Get(ctx, key)
	if err != nil {
		return Value{}, false, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Value{}, false, nil
	}
	kv := resp.Kvs[0]
	return Value{Key: string(kv.Key), Data: kv.Value, Revision: kv.ModRevision}, true, nil
}

// PutIfRevision stores data at key if the key's last change is still
// revision (0: the key does not exist), in one transaction, so two writers
// that read the same revision cannot both store; stored is false when the
// key changed meanwhile.
func (c *Cluster) PutIfRevision(ctx context.Context, key string, data []byte, revision int64) (stored bool, err error) {
	resp, err := c.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("etcd put %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// List returns every value under prefix, in key order.
func (c *Cluster) List(ctx context.Context, prefix string) ([]Value, error) {
	resp, err := c.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", prefix, err)
	}
	out := make([]Value, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, Value{Key: string(kv.Key), Data: kv.Value, Revision: kv.ModRevision})
	}
	return out, nil
}
