package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// runAgent stands in for sensu-agent where it matters to rotation: its
// API answers GET /healthz, SIGTERM ends it with 0, and SIGHUP kills it
// with status 129 without a word to the log, as the real agent does. With
// --hup-file it first appends a line there, so a test can prove nobody
// sent it SIGHUP. With -c agent.yml it connects to the backends as
// sensu-agent does (agentConn) and /healthz answers 503 while it is not
// connected.
func runAgent(ctx context.Context, args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("standin agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	host := fs.String("api-host", "127.0.0.1", "agent API host")
	port := fs.Int("api-port", 3031, "agent API port")
	hupFile := fs.String("hup-file", "", "append a line here when SIGHUP arrives")
	configFile := fs.String("c", "", "agent.yml: connect to its backend-url and answer /healthz by the connection")
	user := fs.String("user", "agent", "agent user sent on the websocket")
	password := fs.String("password", "P@ssw0rd!", "agent password sent on the websocket")
	keepalive := fs.Duration("keepalive-interval", time.Second, "time between keepalives the backend must echo")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(logw, nil))
	var conn *agentConn
	if *configFile != "" {
		cfg, err := readAgentConfig(*configFile)
		if err != nil {
			return usageError{err}
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if cfg.APIHost != "" && !set["api-host"] {
			*host = cfg.APIHost
		}
		if cfg.APIPort != 0 && !set["api-port"] {
			*port = cfg.APIPort
		}
		conn = &agentConn{cfg: cfg, user: *user, password: *password, keepalive: *keepalive, log: log}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if conn != nil && !conn.connected.Load() {
			http.Error(w, "not connected to a backend", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	log.Info("agent serving", "api", l.Addr().String(), "pid", os.Getpid())
	done := make(chan struct{})
	if conn != nil {
		go func() { conn.run(ctx); close(done) }()
	} else {
		close(done)
	}
	select {
	case <-ctx.Done():
		<-done
		return nil
	case <-hup:
		if *hupFile != "" {
			if f, err := os.OpenFile(*hupFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(f, "SIGHUP pid %d\n", os.Getpid())
				f.Close()
			}
		}
		return diedOnHUP{errors.New("SIGHUP")}
	}
}

// diedOnHUP makes main exit 129 like sensu-agent.
type diedOnHUP struct{ error }
