package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.yaml.in/yaml/v3"
)

// agentConfig holds the agent.yml keys the stand-in honours; like
// sensu-agent it reads them once, at start, and ignores unknown keys.
type agentConfig struct {
	Name          string   `yaml:"name"`
	BackendURL    urlList  `yaml:"backend-url"`
	TrustedCAFile string   `yaml:"trusted-ca-file"`
	Insecure      bool     `yaml:"insecure-skip-tls-verify"`
	APIHost       string   `yaml:"api-host"`
	APIPort       int      `yaml:"api-port"`
	Subscriptions []string `yaml:"subscriptions"`
}

// urlList is backend-url: a list, or one URL as a string.
type urlList []string

func (l *urlList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var list []string
	err := n.Decode(&list)
	*l = list
	return err
}

func readAgentConfig(path string) (*agentConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &agentConfig{}
	if err := yaml.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.BackendURL) == 0 {
		c.BackendURL = urlList{"ws://127.0.0.1:8081"}
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	return c, nil
}

// agentConn keeps the stand-in agent connected to one of its backends,
// as sensu-agent does: the backends in turn, a second between rounds, and
// a keepalive the backend must echo every interval. Connected is what
// /healthz reports.
type agentConn struct {
	cfg       *agentConfig
	user      string
	password  string
	keepalive time.Duration
	log       *slog.Logger
	connected atomic.Bool
}

func (a *agentConn) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: a.cfg.Insecure}
	if a.cfg.TrustedCAFile != "" {
		pem, err := os.ReadFile(a.cfg.TrustedCAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", a.cfg.TrustedCAFile)
		}
	}
	return c, nil
}

// run connects until ctx ends.
func (a *agentConn) run(ctx context.Context) {
	for ctx.Err() == nil {
		for _, u := range a.cfg.BackendURL {
			if err := a.session(ctx, u); err != nil && ctx.Err() == nil {
				a.log.Warn("agent disconnected", "backend", u, "err", err)
			}
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// session is one connection to backend u, until it fails or ctx ends.
func (a *agentConn) session(ctx context.Context, u string) error {
	tc, err := a.tlsConfig()
	if err != nil {
		return err
	}
	h := http.Header{}
	h.Set("Sensu-AgentName", a.cfg.Name)
	h.Set("Sensu-Namespace", "default")
	h.Set("Sensu-User", a.user)
	h.Set("Sensu-Subscriptions", strings.Join(append(a.cfg.Subscriptions, "entity:"+a.cfg.Name), ","))
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.password)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: client})
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	a.connected.Store(true)
	defer a.connected.Store(false)
	a.log.Info("agent connected", "backend", u)
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusGoingAway, "agent stopping")
			a.log.Info("agent stopping", "backend", u)
			return nil
		case <-time.After(a.keepalive):
		}
		if err := a.ping(ctx, conn, n); err != nil {
			if ctx.Err() != nil { // stopped mid-keepalive
				conn.Close(websocket.StatusGoingAway, "agent stopping")
				a.log.Info("agent stopping", "backend", u)
				return nil
			}
			a.log.Warn("keepalive failed", "backend", u, "err", err)
			return err
		}
	}
}

// ping sends keepalive n and waits for the backend's echo of it.
func (a *agentConn) ping(ctx context.Context, conn *websocket.Conn, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := fmt.Sprintf("keepalive %d", n)
	if err := conn.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		return err
	}
	_, got, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(string(got), msg) {
		return fmt.Errorf("backend answered %q to %q", got, msg)
	}
	return nil
}
