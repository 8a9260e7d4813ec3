package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"go.yaml.in/yaml/v3"
)

// backendConfig holds the backend.yml keys the stand-in honours. Like
// sensu-backend (viper), unknown keys are ignored.
type backendConfig struct {
	CertFile         string `yaml:"cert-file"`
	KeyFile          string `yaml:"key-file"`
	TrustedCAFile    string `yaml:"trusted-ca-file"`
	APIListenAddress string `yaml:"api-listen-address"`
	AgentHost        string `yaml:"agent-host"`
	AgentPort        int    `yaml:"agent-port"`
}

// options are the stand-in's own flags.
type options struct {
	configFile        string
	failIfCN          string
	failIfSerial      string
	unhealthyIfCN     string
	startDelay        time.Duration
	user, password    string
	namespaces        string
	shutdownTimeout   time.Duration
	clientCertRequest bool
	etcd              string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("standin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.configFile, "c", "", "backend.yml to read (required)")
	fs.StringVar(&o.failIfCN, "fail-if-cert-cn", "", "exit 3 at start when the leaf certificate's CN is this")
	fs.StringVar(&o.failIfSerial, "fail-if-serial", "", "exit 3 at start when the leaf certificate's serial (hex) is this")
	fs.StringVar(&o.unhealthyIfCN, "unhealthy-if-cert-cn", "", "keep running but answer /health 503 when the leaf certificate's CN is this")
	fs.DurationVar(&o.startDelay, "start-delay", 0, "wait this long after reading the certificates before listening")
	fs.StringVar(&o.user, "user", "agent", "agent user accepted on the websocket")
	fs.StringVar(&o.password, "password", "P@ssw0rd!", "agent password accepted on the websocket")
	fs.StringVar(&o.namespaces, "namespaces", "default", "comma-separated namespaces that exist")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 2*time.Second, "graceful shutdown limit on SIGTERM")
	fs.BoolVar(&o.clientCertRequest, "request-client-cert", false, "verify agent client certificates against trusted-ca-file when presented")
	fs.StringVar(&o.etcd, "etcd", "", "run this etcd binary as the embedded etcd, from backend.yml's etcd-* keys")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	if o.configFile == "" {
		return o, usageError{errors.New("-c backend.yml is required")}
	}
	return o, nil
}

// loadBackendConfig reads backend.yml as sensu-backend does: a key set
// twice counts at its last value (yaml.v2), and a SENSU_BACKEND_* variable
// (what the unit's EnvironmentFile= sets) that is not empty overrides the
// file (viper).
func loadBackendConfig(path string) (backendConfig, error) {
	cfg := backendConfig{APIListenAddress: "[::]:8080", AgentHost: "[::]", AgentPort: 8081}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, usageError{err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return cfg, usageError{fmt.Errorf("%s: %w", path, err)}
	}
	if len(doc.Content) > 0 {
		if err := lastOfEachKey(doc.Content[0]).Decode(&cfg); err != nil {
			return cfg, usageError{fmt.Errorf("%s: %w", path, err)}
		}
	}
	for _, v := range []struct {
		env string
		to  *string
	}{
		{"SENSU_BACKEND_CERT_FILE", &cfg.CertFile}, {"SENSU_BACKEND_KEY_FILE", &cfg.KeyFile},
		{"SENSU_BACKEND_TRUSTED_CA_FILE", &cfg.TrustedCAFile}, {"SENSU_BACKEND_API_LISTEN_ADDRESS", &cfg.APIListenAddress},
		{"SENSU_BACKEND_AGENT_HOST", &cfg.AgentHost},
	} {
		if s := os.Getenv(v.env); s != "" {
			*v.to = s
		}
	}
	if s := os.Getenv("SENSU_BACKEND_AGENT_PORT"); s != "" {
		if cfg.AgentPort, err = strconv.Atoi(s); err != nil {
			return cfg, usageError{fmt.Errorf("SENSU_BACKEND_AGENT_PORT: %w", err)}
		}
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return cfg, usageError{fmt.Errorf("%s: tls configuration error: cert-file and key-file must be set together", path)}
	}
	return cfg, nil
}

// lastOfEachKey is a mapping with only the last pair of each key, which
// yaml.v3 decodes where it refuses a key set twice.
func lastOfEachKey(m *yaml.Node) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return m
	}
	last := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		last[m.Content[i].Value] = i
	}
	out := *m
	out.Content = nil
	for i := 0; i+1 < len(m.Content); i += 2 {
		if last[m.Content[i].Value] == i {
			out.Content = append(out.Content, m.Content[i], m.Content[i+1])
		}
	}
	return &out
}

// runBackend is the whole backend stand-in; it returns when ctx ends (nil: graceful) or on
// a start-up failure.
func runBackend(ctx context.Context, args []string, logw io.Writer) error {
	log := slog.New(slog.NewTextHandler(logw, nil))
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	cfg, err := loadBackendConfig(opts.configFile)
	if err != nil {
		return err
	}
	tlsConf, leaf, err := loadTLS(cfg, opts)
	if err != nil {
		return err
	}
	serial, cn := "", ""
	if leaf != nil {
		serial, cn = serialHex(leaf), leaf.Subject.CommonName
		if opts.failIfCN != "" && cn == opts.failIfCN {
			return deliberateFailure{fmt.Errorf("refusing to start: certificate CN %q matches --fail-if-cert-cn", cn)}
		}
		if want, ok := new(big.Int).SetString(strings.ReplaceAll(opts.failIfSerial, ":", ""), 16); ok && want.Cmp(leaf.SerialNumber) == 0 {
			return deliberateFailure{fmt.Errorf("refusing to start: certificate serial %s matches --fail-if-serial", serial)}
		}
	}
	// SIGHUP must not kill the stand-in: sensu-backend only reopens its log
	// files on it and keeps serving the certificate it started with.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			log.Info("SIGHUP: reopening logs; certificates are not reloaded", "serial", serial)
		}
	}()

	select {
	case <-time.After(opts.startDelay):
	case <-ctx.Done():
		return nil
	}
	b := &backend{opts: opts, id: randomID(), healthy: opts.unhealthyIfCN == "" || cn != opts.unhealthyIfCN, log: log}
	var etcdExited <-chan struct{} // nil: never
	if opts.etcd != "" {
		if b.etcd, err = startEtcd(ctx, opts.etcd, opts.configFile); err != nil {
			return err
		}
		defer b.etcd.stop()
		etcdExited = b.etcd.exited
	}
	apiAddr := cfg.APIListenAddress
	agentAddr := net.JoinHostPort(strings.Trim(cfg.AgentHost, "[]"), strconv.Itoa(cfg.AgentPort))
	servers := []*http.Server{
		{Addr: apiAddr, Handler: b.apiMux(), TLSConfig: tlsConf.Clone(), ReadHeaderTimeout: 10 * time.Second},
		{Addr: agentAddr, Handler: b.agentMux(), TLSConfig: tlsConf.Clone(), ReadHeaderTimeout: 10 * time.Second},
	}
	listeners := make([]net.Listener, len(servers))
	for i, s := range servers {
		l, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, open := range listeners[:i] {
				open.Close()
			}
			return err
		}
		listeners[i] = l
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			var err error
			if s.TLSConfig != nil {
				err = s.ServeTLS(listeners[i], "", "")
			} else {
				err = s.Serve(listeners[i])
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("serving", "api", listeners[0].Addr().String(), "agent", listeners[1].Addr().String(),
		"tls", tlsConf != nil, "serial", serial, "cn", cn, "backend-id", b.id, "healthy", b.healthy)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
	case <-etcdExited:
		runErr = errors.New("the embedded etcd exited")
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	b.closeSessions()
	return runErr
}

// loadTLS reads cert-file, key-file and trusted-ca-file once; nil config
// means plaintext.
func loadTLS(cfg backendConfig, opts options) (*tls.Config, *x509.Certificate, error) {
	if cfg.CertFile == "" {
		return nil, nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("loading cert-file %s / key-file %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if cfg.TrustedCAFile != "" {
		pem, err := os.ReadFile(cfg.TrustedCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("loading trusted-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("trusted-ca-file %s holds no PEM certificate", cfg.TrustedCAFile)
		}
		conf.ClientCAs = pool
		if opts.clientCertRequest {
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return conf, pair.Leaf, nil
}

func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// backend is the stand-in's HTTP behaviour.
type backend struct {
	opts    options
	id      string
	healthy bool
	log     *slog.Logger
	etcd    *embeddedEtcd // nil: no embedded etcd

	mu       sync.Mutex
	sessions map[*websocket.Conn]struct{}
}

func (b *backend) apiMux() *http.ServeMux {
	mux := http.NewServeMux()
	b.common(mux)
	return mux
}

func (b *backend) agentMux() *http.ServeMux {
	mux := http.NewServeMux()
	b.common(mux)
	mux.HandleFunc("GET /{$}", b.agentSession)
	return mux
}

func (b *backend) common(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", b.health)
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !b.healthy {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"etcd": map[string]string{"etcdserver": "3.5.0", "etcdcluster": "3.5.0"}, "sensu_backend": "6.12.0-standin"})
	})
}

// clusterMember mirrors the shape of one entry of sensu-backend's
// /health ClusterHealth list.
type clusterMember struct {
	MemberID    uint64
	MemberIDHex string
	Name        string
	Err         string
	Healthy     bool
}

func (b *backend) health(w http.ResponseWriter, r *http.Request) {
	member := clusterMember{MemberID: 0x3e5b8f1a, MemberIDHex: "3e5b8f1a", Name: "default", Healthy: b.healthy}
	status := http.StatusOK
	if !b.healthy {
		member.Err = "standin: unhealthy on purpose (--unhealthy-if-cert-cn)"
		status = http.StatusServiceUnavailable
	} else if b.etcd != nil {
		if err := b.etcd.healthy(r.Context()); err != nil {
			member.Healthy, member.Err, status = false, err.Error(), http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, map[string]any{
		"Alarms":         nil,
		"ClusterHealth":  []clusterMember{member},
		"Header":         map[string]any{"cluster_id": 1, "member_id": member.MemberID, "raft_term": 2},
		"PostgresHealth": nil,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// agentSession checks the agent handshake the way sensu-backend does and
// then echoes every message, so a proxy test can see frames pass both ways.
func (b *backend) agentSession(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != b.opts.user || pass != b.opts.password {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	for _, h := range []string{"Sensu-AgentName", "Sensu-Namespace", "Sensu-User"} {
		if r.Header.Get(h) == "" {
			http.Error(w, "missing header "+h, http.StatusBadRequest)
			return
		}
	}
	if r.Header.Get("Sensu-User") != user {
		http.Error(w, "Sensu-User does not match the credentials", http.StatusUnauthorized)
		return
	}
	if !b.namespaceExists(r.Header.Get("Sensu-Namespace")) {
		http.Error(w, "namespace not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Backend-ID", b.id)
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept already answered the client
	}
	b.track(conn, true)
	defer b.track(conn, false)
	b.log.Info("agent connected", "agent", r.Header.Get("Sensu-AgentName"), "namespace", r.Header.Get("Sensu-Namespace"))
	ctx := r.Context()
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return
		}
		if err := conn.Write(ctx, typ, msg); err != nil {
			conn.CloseNow()
			return
		}
	}
}

func (b *backend) namespaceExists(ns string) bool {
	for _, n := range strings.Split(b.opts.namespaces, ",") {
		if strings.TrimSpace(n) == ns {
			return true
		}
	}
	return false
}

func (b *backend) track(c *websocket.Conn, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sessions == nil {
		b.sessions = map[*websocket.Conn]struct{}{}
	}
	if open {
		b.sessions[c] = struct{}{}
	} else {
		delete(b.sessions, c)
	}
}

// closeSessions ends open agent sessions; http.Server.Shutdown does not
// touch hijacked connections.
func (b *backend) closeSessions() {
	b.mu.Lock()
	open := make([]*websocket.Conn, 0, len(b.sessions))
	for c := range b.sessions {
		open = append(open, c)
	}
	b.mu.Unlock()
	for _, c := range open {
		c.Close(websocket.StatusGoingAway, "backend shutting down")
	}
}
