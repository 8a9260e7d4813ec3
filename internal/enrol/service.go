package enrol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/reload"
)

// Service is the run process's enrol-server. It follows reloads through
// internal/reload: Prepare builds the server a configuration describes
// (store, Sensu API, autosign patterns, certificate) without binding;
// Commit puts it in effect for the next request, and binds the new
// address first when enrol-server.listen changed (an empty one stops
// serving). The per-address enrolment limit outlives reloads.
type Service struct {
	base  *slog.Logger // for the servers, which name their component
	log   *slog.Logger
	limit *Limiter

	// active is the server answering requests; nil while off.
	active atomic.Pointer[built]

	mu      sync.Mutex
	addr    string       // enrol-server.listen as bound
	http    *http.Server // serving addr; nil while off
	retired sync.WaitGroup
}

// built is one configuration's server. Requests hold mu for reading, so
// its store is closed only once the last one using it has answered.
type built struct {
	listen  string
	server  *Server
	handler http.Handler
	tls     *tls.Config
	mu      sync.RWMutex
	retired bool
}

// NewService returns the enrol-server, off until a configuration is
// committed.
func NewService(log *slog.Logger) *Service {
	return &Service{base: log, log: log.With("component", "enrol-server"), limit: NewLimiter(EnrolRate, EnrolBurst, time.Now)}
}

// Prepare opens the store and builds the server of cfg's enrol-server.
func (s *Service) Prepare(cfg *config.Config) (reload.Pending, error) {
	if cfg.EnrolServer.Listen == "" {
		return &pendingService{s: s}, nil
	}
	store, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	srv, tlsConfig, err := NewServer(cfg, store, s.base)
	if err != nil {
		store.Close()
		return nil, err
	}
	srv.Limit = s.limit
	return &pendingService{s: s, b: &built{listen: cfg.EnrolServer.Listen, server: srv, handler: srv.Handler(), tls: tlsConfig}}, nil
}

type pendingService struct {
	s *Service
	b *built // nil: enrolment off
}

func (p *pendingService) Abort() {
	if p.b != nil {
		p.b.server.Store.Close()
	}
}

func (p *pendingService) Commit(context.Context) error {
	s, b := p.s, p.b
	s.mu.Lock()
	defer s.mu.Unlock()
	listen := ""
	if b != nil {
		listen = b.listen
	}
	if listen != s.addr {
		var next *http.Server
		if b != nil {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				p.Abort()
				return fmt.Errorf("enrol-server.listen %s: %w", listen, err)
			}
			next = s.serve(ln)
		}
		if s.http != nil {
			s.stop(s.http)
		}
		s.http, s.addr = next, listen
	}
	old := s.active.Swap(b)
	if old != nil {
		s.retire(old)
	}
	switch {
	case b != nil:
		s.log.Info("enrol-server listening", "address", b.listen, "store", storeName(b.server.Store), "autosign", b.server.Policy.Autosign)
	case old != nil:
		s.log.Info("enrol-server stopped: enrol-server.listen is empty now")
	}
	return nil
}

func storeName(st Store) string {
	if _, ok := st.(*EtcdStore); ok {
		return "etcd"
	}
	return "file"
}

// serve serves TLS on ln with the active server's certificate and
// handler, whatever configuration is active when a request comes.
func (s *Service) serve(ln net.Listener) *http.Server {
	srv := &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				b := s.active.Load()
				if b == nil {
					return nil, errors.New("enrol-server is off")
				}
				return b.tls.GetConfigForClient(hello)
			},
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		// Serve leaves ln open when a Shutdown came first.
		defer ln.Close()
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("enrol-server stopped serving", "address", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		b := s.active.Load()
		if b == nil {
			http.Error(w, "enrol-server is off", http.StatusServiceUnavailable)
			return
		}
		b.mu.RLock()
		if !b.retired {
			defer b.mu.RUnlock()
			b.handler.ServeHTTP(w, r)
			return
		}
		// Replaced while this request looked: the next one is active.
		b.mu.RUnlock()
	}
}

// retire closes old's store once the requests it is answering are done.
func (s *Service) retire(old *built) {
	s.retired.Go(func() {
		old.mu.Lock()
		defer old.mu.Unlock()
		old.retired = true
		if err := old.server.Store.Close(); err != nil {
			s.log.Warn("enrol-server: closing the replaced store", "err", err)
		}
	})
}

// stop lets srv finish its requests and closes it, in the background.
func (s *Service) stop(srv *http.Server) {
	s.retired.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// Run serves until ctx ends, then stops serving and closes the store.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	s.mu.Lock()
	if s.http != nil {
		s.stop(s.http)
		s.http, s.addr = nil, ""
	}
	if old := s.active.Swap(nil); old != nil {
		s.retire(old)
	}
	s.mu.Unlock()
	s.retired.Wait()
	return nil
}
