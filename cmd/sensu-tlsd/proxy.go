package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/proxy"
)

func newProxyCmd() *cobra.Command {
	var (
		spec           proxy.Spec
		targets        string
		metricsAddress string
		drainTimeout   time.Duration
		logLevel       string
	)
	cmd := &cobra.Command{
		Use:   "proxy --mode terminate|originate|dual --listen ADDR --target ADDR[,ADDR...] [--cert F --key F]",
		Short: "Run one TLS proxy listener (certificate and CA files are watched and reloaded)",
		Long: `Run one TLS proxy listener in the foreground.

  terminate  TLS in, plaintext out to --target (wss/https in front of a plaintext Sensu port)
  originate  plaintext in, TLS out to the first --target that verifies against --ca
             (--target-order spread: connections take the targets in turn; a target
             that failed is skipped for 10s)
  dual       TLS and (with --allow-plaintext) plaintext HTTP on one port, plaintext out

ALPN: the proxy relays bytes and cannot translate protocols, so --alpn lists what
the other end speaks. Without it no protocol is negotiated and TLS clients speak
HTTP/1.1, which every plaintext Sensu port (8080, 8081, 3000, 3031) expects; an
originate listener then also keeps a backend from choosing h2 for a legacy agent.

The certificate passes the checks the daemon installs through: key match,
validity, serverAuth (originate: clientAuth), key strength, no CA:TRUE leaf,
a chain that holds only the certificates leading to its CA (at most 10, 64 KiB),
and (originate) a chain to --ca. A refused certificate stops the start with a
non-zero exit. The certificate, key and CA bundle (--ca, --client-ca) are
watched and reloaded when they change; a file refused on reload never replaces
the one in use and is logged as a warning with the reason and the fix.

Agent binding (--agent-identity cn|uri with --client-ca): each agent's
certificate must name the Sensu-AgentName (cn), or the namespace and name
through a URI SAN sensu://NAMESPACE/AGENT (uri), of its websocket upgrade; a
mismatch or a missing certificate gets a 403 before a byte reaches the
target. --deny-file refuses listed serials and agents and closes their open
sessions when the file changes.
SIGTERM or SIGINT drains: no new connections, open ones get --drain-timeout to finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec.Targets = splitList(targets)
			if spec.Mode == "originate" {
				spec.CertCAFile = spec.CAFile // the client certificate chains to the CA the targets share
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			return runProxy(cmd, spec, metricsAddress, drainTimeout, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Name, "name", "proxy", "listener name in metrics and logs")
	f.StringVar(&spec.Mode, "mode", "", "terminate, originate or dual")
	f.StringVar(&spec.Listen, "listen", "", "address to accept on (host:port)")
	f.StringVar(&targets, "target", "", "address(es) to forward to, comma-separated; originate fails over between them (see --target-order)")
	f.StringVar(&spec.TargetOrder, "target-order", "", "originate: in-order (default: the first target is preferred) or spread (connections take the targets in turn)")
	f.StringVar(&spec.CertFile, "cert", "", "certificate chain PEM served (terminate, dual) or presented to targets (originate)")
	f.StringVar(&spec.KeyFile, "key", "", "private key PEM for --cert")
	f.StringVar(&spec.CAFile, "ca", "", "originate: CA bundle that verifies the targets (default: system roots)")
	f.StringVar(&spec.ClientCAFile, "client-ca", "", "terminate/dual: require client certificates verified by this CA bundle")
	f.StringArrayVar(&spec.AllowCN, "allow-cn", nil, "admit client certificates with this common name (repeatable)")
	f.StringArrayVar(&spec.AllowDNS, "allow-dns", nil, "admit client certificates with this DNS SAN (repeatable)")
	f.StringArrayVar(&spec.AllowURI, "allow-uri", nil, "admit client certificates with this URI SAN (repeatable)")
	f.BoolVar(&spec.AllowPlaintext, "allow-plaintext", false, "dual: accept plaintext HTTP/ws clients as well as TLS")
	f.BoolVar(&spec.TLS13Only, "tls13-only", false, "refuse TLS 1.2 (default minimum is TLS 1.2)")
	f.StringArrayVar(&spec.ALPN, "alpn", nil, "application protocol the target speaks (terminate, dual; clients offering none are refused) or offered to the targets (originate); repeatable; default none: clients speak HTTP/1.1")
	f.StringVar(&spec.ServerName, "server-name", "", "originate: name to verify on the targets' certificates (default: each target's host)")
	f.IntVar(&spec.MaxConns, "max-conns", 0, "refuse connections beyond this many open ones (0: no limit)")
	f.DurationVar(&spec.IdleTimeout, "idle-timeout", 0, "close connections idle this long in both directions (0: never)")
	f.DurationVar(&spec.HandshakeTimeout, "handshake-timeout", proxy.DefaultHandshakeTimeout, "cut clients that do not finish the handshake (and agent upgrade request) in time")
	f.DurationVar(&spec.DialTimeout, "dial-timeout", proxy.DefaultDialTimeout, "give up connecting to one target (originate: and its TLS handshake) after this long, then try the next")
	f.BoolVar(&spec.AgentHeaders, "agent-headers", false, "read the first HTTP request to learn Sensu agent names (agent port 8081)")
	f.StringVar(&spec.AgentIdentity, "agent-identity", "", "terminate/dual with --client-ca: bind each client certificate to the agent it connects as: cn (CN = Sensu-AgentName) or uri (URI SAN sensu://NAMESPACE/AGENT); others get a 403")
	f.StringVar(&spec.DenyFile, "deny-file", "", "refuse these certificate serials and agents (lines `serial HEX`, `agent NAME`, `agent NAMESPACE/NAME`); watched, open sessions of newly denied ones are closed")
	f.StringVar(&metricsAddress, "metrics-address", "", "serve Prometheus /metrics and /agents on this address (default: off)")
	f.DurationVar(&drainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "on SIGTERM, how long open connections may finish")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runProxy(cmd *cobra.Command, spec proxy.Spec, metricsAddress string, drainTimeout time.Duration, log *slog.Logger) error {
	if spec.Mode == "" || spec.Listen == "" {
		return errors.New("proxy needs --mode and --listen (see sensu-tlsd proxy --help)")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := proxy.NewMetrics(reg)
	if err != nil {
		return err
	}
	srv, files, err := proxy.Build(spec, metrics, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		if err := files.Watch(ctx, log); err != nil {
			log.Error("certificate files are not watched; rotations need a restart", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", spec.Listen, err)
	}
	if metricsAddress != "" {
		mln, err := net.Listen("tcp", metricsAddress)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-address %s: %w", metricsAddress, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/agents", func(w http.ResponseWriter, _ *http.Request) {
			b, err := proxy.AgentsJSON(srv.Agents())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		})
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(mln)
		defer hs.Close()
		fmt.Fprintf(cmd.OutOrStdout(), "metrics on http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "listening on %s (mode %s, target %s)\n", ln.Addr(), spec.Mode, strings.Join(spec.Targets, ","))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("listener %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("draining", "open", srv.Open(), "deadline", drainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain deadline passed; closed the remaining connections", "err", err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "drained")
	return nil
}
