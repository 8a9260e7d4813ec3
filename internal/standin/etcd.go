package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// etcdStartLimit is how long sensu-backend waits for its embedded etcd
// before it gives up with "Etcd failed to start in 60 seconds".
const etcdStartLimit = 60 * time.Second

// embeddedEtcd is a real etcd child run from backend.yml's etcd-* keys as
// sensu-backend runs its embedded one: started before the API and agent
// ports open, stopped after they close, and the stand-in ends when it dies.
type embeddedEtcd struct {
	cmd       *exec.Cmd
	exited    chan struct{}
	healthURL string
	client    *http.Client
}

// startEtcd starts bin with the flags backend.yml gives and waits until
// it reports healthy; its output is appended to state-dir/etcd.log.
func startEtcd(ctx context.Context, bin, backendYML string) (*embeddedEtcd, error) {
	src, err := os.ReadFile(backendYML)
	if err != nil {
		return nil, usageError{err}
	}
	doc, err := sensu.Parse(backendYML, src)
	if err != nil {
		return nil, usageError{err}
	}
	flags := sensu.EmbeddedEtcdFlags(doc.Get)
	str := func(key string) string { v, _ := doc.Get(key); return strings.Join(sensu.SensuItems(v), ",") }
	client := strings.Split(str("etcd-advertise-client-urls"), ",")[0]
	if client == "" {
		return nil, usageError{fmt.Errorf("%s: --etcd needs etcd-advertise-client-urls", backendYML)}
	}
	httpClient, err := etcdClient(str("etcd-cert-file"), str("etcd-key-file"), str("etcd-trusted-ca-file"))
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", backendYML, err)}
	}
	stateDir := sensu.BackendStateDir(doc.Get)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(stateDir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== start %s\n", strings.Join(flags, " "))
	cmd := exec.Command(bin, flags...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	e := &embeddedEtcd{cmd: cmd, exited: make(chan struct{}), healthURL: client + "/health", client: httpClient}
	go func() {
		cmd.Wait()
		logf.Close()
		close(e.exited)
	}()
	deadline := time.After(etcdStartLimit)
	for {
		if e.healthy(ctx) == nil {
			return e, nil
		}
		select {
		case <-ctx.Done():
			e.stop()
			return nil, ctx.Err()
		case <-e.exited:
			return nil, fmt.Errorf("etcd exited at start (%s); see %s", cmd.ProcessState, filepath.Join(stateDir, "etcd.log"))
		case <-deadline:
			e.stop()
			return nil, errors.New("Etcd failed to start in 60 seconds")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// etcdClient is the HTTP client sensu-backend's etcd client would be:
// the etcd client certificate and CA when they are set.
func etcdClient(certFile, keyFile, caFile string) (*http.Client, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd-cert-file %s / etcd-key-file %s: %w", certFile, keyFile, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("etcd-trusted-ca-file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd-trusted-ca-file %s holds no PEM certificate", caFile)
		}
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}, nil
}

// healthy is nil when etcd's own /health says the member is healthy (it
// has a leader and takes reads), else why not.
func (e *embeddedEtcd) healthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.healthURL, nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct{ Health, Reason string }
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("etcd /health: %s", body)
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd member unhealthy: %s", h.Reason)
	}
	return nil
}

// stop ends etcd: SIGTERM, then SIGKILL after 10 s.
func (e *embeddedEtcd) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
}
