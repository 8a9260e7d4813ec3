package enrol

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// Server answers POST /v1/enrol (Sensu credentials) and POST /v1/renew
// (the current certificate) on a backend, signing with the local CA.
type Server struct {
	Store    Store
	Policy   Policy
	Auth     *SensuAuth
	CADir    string // the local CA, loaded at each signing so a rollover counts at once
	Lifetime time.Duration
	Log      *slog.Logger
	Now      func() time.Time
	// Limit bounds /v1/enrol per client address (each costs a Sensu
	// password check); nil does not.
	Limit *Limiter
}

// Handler routes the two endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/enrol", s.enrol)
	mux.HandleFunc("POST /v1/renew", s.renew)
	return mux
}

func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	if s.Limit != nil {
		if ok, wait := s.Limit.Allow(r.RemoteAddr); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			s.answer(w, r, nil, http.StatusTooManyRequests, Response{Status: StatusRefused,
				Message: fmt.Sprintf("too many enrolment requests from this address (each checks a password with the Sensu API): try again in %ds", secs)})
			return
		}
	}
	p, ok := s.read(w, r)
	if !ok {
		return
	}
	user, password, ok := r.BasicAuth()
	if !ok {
		s.answer(w, r, p, http.StatusUnauthorized, Response{Status: StatusRefused,
			Message: "enrolment needs the agent's Sensu credentials (agent.yml user and password) as HTTP Basic auth"})
		return
	}
	if err := s.Auth.Check(r.Context(), user, password); err != nil {
		if errors.Is(err, ErrBadCredentials) {
			s.answer(w, r, p, http.StatusUnauthorized, Response{Status: StatusRefused,
				Message: fmt.Sprintf("the Sensu API at %s refused the password of user %q: check user and password in agent.yml", s.Auth.URL, user)})
			return
		}
		s.answer(w, r, p, http.StatusBadGateway, Response{Status: StatusRefused, Message: err.Error()})
		return
	}
	s.decide(w, r, p, s.Policy.Enrol)
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	p, ok := s.read(w, r)
	if !ok {
		return
	}
	if err := checkIdentity(r.TLS, p.Name, p.Namespace); err != nil {
		s.answer(w, r, p, http.StatusUnauthorized, Response{Status: StatusRefused, Message: err.Error()})
		return
	}
	s.decide(w, r, p, s.Policy.Renew)
}

// read parses the body, answering 400 or 413 itself when it cannot.
func (s *Server) read(w http.ResponseWriter, r *http.Request) (*Parsed, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		code := http.StatusBadRequest
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			code = http.StatusRequestEntityTooLarge
		}
		s.answer(w, r, nil, code, Response{Status: StatusRefused, Message: "reading the request: " + err.Error()})
		return nil, false
	}
	p, err := ParseRequest(body)
	if err != nil {
		s.answer(w, r, nil, http.StatusBadRequest, Response{Status: StatusRefused, Message: err.Error()})
		return nil, false
	}
	return p, true
}

type decideFunc func(rec Record, found bool, r Request, fp string, now time.Time) (Record, Outcome)

// decide applies the policy to the name's record and stores the result;
// a certificate is signed inside the compare-and-swap, so it is only
// handed out when the record that allows it was stored.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, p *Parsed, policy decideFunc) {
	var issued *ca.Issued
	rec, outcome, err := Update(r.Context(), s.Store, p.Name, func(rec Record, found bool) (Record, Outcome, error) {
		next, out := policy(rec, found, p.Request, p.Fingerprint, s.Now())
		if out != Sign {
			return next, out, nil
		}
		is, err := s.sign(p)
		if err != nil {
			return rec, out, err
		}
		issued = is
		next.Serial, next.NotAfter = pki.SerialHex(is.Cert), is.Cert.NotAfter
		return next, out, nil
	})
	if err != nil {
		s.Log.Error("enrolment failed", "agent", p.Name, "err", err)
		s.answer(w, r, p, http.StatusInternalServerError, Response{Status: StatusRefused, Message: "the enrol-server could not decide: " + err.Error()})
		return
	}
	switch outcome {
	case Sign:
		s.answer(w, r, p, http.StatusOK, Response{Status: StatusSigned, Certificate: string(issued.CertPEM), CA: string(issued.CAPEM),
			Message: fmt.Sprintf("signed %s (serial %s, until %s)", p.Name, rec.Serial, rec.NotAfter.UTC().Format(time.RFC3339))})
	case Wait:
		s.answer(w, r, p, http.StatusAccepted, Response{Status: StatusPending,
			Message: fmt.Sprintf("%s is pending (%s): run `sensu-tlsd agents approve %s` on a backend", p.Name, rec.Reason, p.Name)})
	case Refuse:
		s.answer(w, r, p, http.StatusForbidden, Response{Status: StatusDenied,
			Message: fmt.Sprintf("%s is denied: run `sensu-tlsd agents approve %s` on a backend to let it enrol", p.Name, p.Name)})
	}
}

// sign issues the agent certificate: CN the agent name, and the URI SAN
// sensu://NAMESPACE/NAME, so a proxy binding either identity accepts it.
func (s *Server) sign(p *Parsed) (*ca.Issued, error) {
	authority, err := ca.Load(s.CADir)
	if err != nil {
		return nil, err
	}
	return authority.Sign(p.Key, ca.Request{
		Name:     p.Name,
		Profile:  pki.Agent,
		Lifetime: s.Lifetime,
		URIs:     []*url.URL{AgentURI(p.Namespace, p.Name)},
	})
}

// AgentURI is an agent's identity as a URI SAN.
func AgentURI(namespace, name string) *url.URL {
	return &url.URL{Scheme: "sensu", Host: namespace, Path: "/" + name}
}

// checkIdentity accepts a renewal when the TLS client certificate (whose
// chain to the CA, validity and clientAuth usage crypto/tls verified) is
// the agent's: CN the name and, if it has a sensu:// URI, that one too.
func checkIdentity(state *tls.ConnectionState, name, namespace string) error {
	if state == nil || len(state.VerifiedChains) == 0 {
		return fmt.Errorf("renewing %s needs its current certificate, signed by this CA and unexpired, as the TLS client certificate; without one, enrol with the Sensu credentials (/v1/enrol)", name)
	}
	leaf := state.VerifiedChains[0][0]
	if leaf.Subject.CommonName != name {
		return fmt.Errorf("the client certificate is for %q, not %q: an agent renews only its own certificate", leaf.Subject.CommonName, name)
	}
	want := AgentURI(namespace, name).String()
	for _, u := range leaf.URIs {
		if u.Scheme == "sensu" && u.String() != want {
			return fmt.Errorf("the client certificate is for %s, not %s", u, want)
		}
	}
	return nil
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, p *Parsed, code int, resp Response) {
	attrs := []any{"status", resp.Status, "code", code, "remote", r.RemoteAddr, "path", r.URL.Path}
	if p != nil {
		attrs = append(attrs, "agent", p.Name, "namespace", p.Namespace, "key", Short(p.Fingerprint))
	}
	level := slog.LevelInfo
	if code >= 400 {
		level = slog.LevelWarn
	}
	s.Log.Log(r.Context(), level, "enrolment: "+resp.Message, attrs...)
	body, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

// ServerTLS serves certFile/keyFile and verifies client certificates
// (renewals) against caFile when a client presents one. The files are
// read at each handshake, so a renewed serving certificate or a CA
// rollover counts at once.
func ServerTLS(certFile, keyFile, caFile string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("enrol-server certificate: %w", err)
			}
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("enrol-server client CA: %w", err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{pair},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    pool,
			}, nil
		},
	}
}
