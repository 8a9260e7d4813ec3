package enrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// EtcdPrefix is where the records live in the cluster's etcd, one key per
// agent name.
const EtcdPrefix = "/sensu-tlsd/enrol/agents/"

// EtcdStore is a Store in the Sensu cluster's etcd: every backend reads
// and writes the same records, and a Put is a transaction comparing the
// key's mod revision, so concurrent decisions on two members cannot both
// be stored.
type EtcdStore struct {
	c       *clientv3.Client
	timeout time.Duration
}

// NewEtcdStore uses c; Close closes it.
func NewEtcdStore(c *clientv3.Client) *EtcdStore {
	return &EtcdStore{c: c, timeout: 10 * time.Second}
}

func (s *EtcdStore) Get(ctx context.Context, name string) (Record, int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, EtcdPrefix+name)
	if err != nil {
		return Record{}, 0, false, fmt.Errorf("enrolment store (etcd): reading %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, 0, false, nil
	}
	var rec Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return Record{}, 0, false, fmt.Errorf("enrolment store (etcd): key %s%s: %v: delete the key so the agent enrols again", EtcdPrefix, name, err)
	}
	return rec, resp.Kvs[0].ModRevision, true, nil
}

func (s *EtcdStore) Put(ctx context.Context, rec Record, version int64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := EtcdPrefix + rec.Name
	// A key that does not exist has mod revision 0, so version 0 is "absent".
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return fmt.Errorf("enrolment store (etcd): writing %s: %w", rec.Name, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

func (s *EtcdStore) List(ctx context.Context) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, EtcdPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("enrolment store (etcd): listing: %w", err)
	}
	out := make([]Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("enrolment store (etcd): key %s: %v: delete the key so the agent enrols again", kv.Key, err)
		}
		out = append(out, rec)
	}
	sortRecords(out)
	return out, nil
}

func (s *EtcdStore) Close() error { return s.c.Close() }

// EtcdConfig is the etcd client config a backend's files give: the
// external etcd's etcd-client-urls, else the embedded etcd's
// etcd-advertise-client-urls, with the etcd client certificate, CA and
// credentials sensu-backend itself uses.
func EtcdConfig(n *sensu.Node) (clientv3.Config, error) {
	urls, _ := n.Get("etcd-client-urls")
	where := n.Where("etcd-client-urls")
	if len(urls.Items()) == 0 {
		urls, _ = n.Get("etcd-advertise-client-urls")
		if len(urls.Items()) == 0 {
			urls, _ = sensu.Default(sensu.Backend, "etcd-advertise-client-urls")
		}
		where = n.Where("etcd-advertise-client-urls")
	}
	cfg := clientv3.Config{
		Endpoints:   sensu.SensuItems(urls),
		DialTimeout: 5 * time.Second,
		Username:    n.Str("etcd-client-username"),
		Password:    n.Str("etcd-client-password"),
		// The client's own logs would flood the daemon's; its errors
		// reach the caller.
		Logger: zap.NewNop(),
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, fmt.Errorf("%s: no etcd client URL (etcd-client-urls or etcd-advertise-client-urls)", where)
	}
	certFile, keyFile, caFile := n.Str("etcd-cert-file"), n.Str("etcd-key-file"), n.Str("etcd-trusted-ca-file")
	if certFile == "" && caFile == "" {
		return cfg, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return cfg, fmt.Errorf("%s etcd-trusted-ca-file: %w", n.Where("etcd-trusted-ca-file"), err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("%s etcd-trusted-ca-file: %s holds no PEM certificate", n.Where("etcd-trusted-ca-file"), caFile)
		}
	}
	if certFile != "" {
		if keyFile == "" {
			return cfg, errors.New(n.Where("etcd-cert-file") + ": etcd-cert-file is set but etcd-key-file is not")
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cfg, fmt.Errorf("%s etcd-cert-file/etcd-key-file: %w", n.Where("etcd-cert-file"), err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = t
	return cfg, nil
}
