package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/watch"
)

// refusalLogEvery is how often a listener logs a refused agent; the
// metrics count every one.
const refusalLogEvery = 5 * time.Second

// leaf is the client's certificate, nil without one.
func (p Peer) leaf() *x509.Certificate {
	if len(p.Chain) == 0 {
		return nil
	}
	return p.Chain[0]
}

// bind decides a client whose first request head was read (hello is nil
// when it named no agent): the deny list, then the identity binding.
func (o *Options) bind(p Peer, hello *AgentHello) error {
	if err := o.Deny.denies(p.leaf(), hello); err != nil {
		return err
	}
	if o.Identity == IdentityNone {
		return nil
	}
	if hello == nil {
		return &identityError{"the first request is not a Sensu agent websocket upgrade with one Sensu-AgentName; this port binds agents to their certificates"}
	}
	return o.Identity.check(p.leaf(), *hello)
}

// keeps says whether a relaying session may stay under o (a reload, a
// changed deny list). Sessions still being set up are decided by their
// own goroutine, which checks the newest Options once relaying.
func (o *Options) keeps(pc *proxiedConn) error {
	if pc.relay.Load() == nil {
		return nil
	}
	hello := pc.hello.Load()
	if err := o.Deny.denies(pc.peer.leaf(), hello); err != nil {
		return err
	}
	if o.Identity == IdentityNone {
		return nil
	}
	if hello == nil {
		return &identityError{"the session began without an agent upgrade the binding could check"}
	}
	return o.Identity.check(pc.peer.leaf(), *hello)
}

// recheck closes pc when Options changed while it was set up and the
// newest ones refuse it; pc is relaying, so a concurrent Update either
// saw it relaying or stored its Options before this load.
func (s *Server) recheck(pc *proxiedConn, accepted *Options) {
	if now := s.options(); now != accepted && now.keeps(pc) != nil {
		pc.close()
	}
}

// refuse answers a client the deny list or the identity binding refuses
// with a 403 that says why, before any byte reached the target, and logs
// it (rate-limited) with the certificate and the agent claimed.
func (s *Server) refuse(pc *proxiedConn, cconn net.Conn, p Peer, hello *AgentHello, why error) {
	reason := "agent-identity"
	if errors.Is(why, ErrDenied) {
		reason = "denied"
	}
	s.m.handshakeFailed(reason)
	args := []any{"listener", s.name, "remote", pc.client.RemoteAddr().String(), "reason", why.Error()}
	if leaf := p.leaf(); leaf != nil {
		args = append(args, "certificate", certificateIdentity(leaf), "serial", leaf.SerialNumber.Text(16))
	} else {
		args = append(args, "certificate", "none")
	}
	if hello != nil {
		args = append(args, "claimed_agent", hello.Namespace+"/"+hello.Name)
	}
	s.agentRefusals.log(s.log, slog.LevelWarn, time.Now(), "agent refused", args...)
	pc.client.SetWriteDeadline(time.Now().Add(time.Second))
	cconn.Write(forbidden(why.Error()))
	if tc, ok := cconn.(*tls.Conn); ok {
		tc.Close() // close_notify after the answer
	}
	s.end(pc)
}

// forbidden is the 403 a refused agent reads; sensu-agent logs the body.
func forbidden(why string) []byte {
	body := "sensu-tlsd: " + strings.ReplaceAll(why, "\n", " ") + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// certificateIdentity is what a certificate can be bound by: its CN and
// URI SANs.
func certificateIdentity(leaf *x509.Certificate) string {
	parts := []string{"CN=" + leaf.Subject.CommonName}
	for _, u := range leaf.URIs {
		parts = append(parts, "URI:"+u.String())
	}
	return strings.Join(parts, " ")
}

// awaitUpgrade sends the bound request (head) to the target and holds
// the client's further bytes until the target switched protocols. A Sensu
// agent session is one websocket upgrade; were the client allowed to send
// a second HTTP request on the same connection after a refused first one,
// that request could claim another agent unchecked. So unless the target
// answers 101, its answer goes back to the client, the target's side is
// half-closed and the connection ends. It runs before the relay takes the
// sockets over, so both ends are read and written as ordinary conns. It
// reports whether to relay.
func (s *Server) awaitUpgrade(pc *proxiedConn, cconn, tconn net.Conn, head []byte, opt *Options) bool {
	tconn.SetDeadline(time.Now().Add(opt.HandshakeTimeout))
	_, err := tconn.Write(head)
	s.m.up.Add(float64(len(head)))
	var read []byte
	headLen := -1
	if err == nil {
		read, headLen, err = readRequestHead(tconn)
	}
	if len(read) > 0 {
		pc.client.SetWriteDeadline(time.Now().Add(opt.HandshakeTimeout))
		if _, werr := cconn.Write(read); werr != nil {
			err = werr
		}
		s.m.down.Add(float64(len(read)))
	}
	if err == nil && headLen > 0 && switchesProtocols(read[:headLen]) {
		tconn.SetDeadline(time.Time{})
		pc.client.SetWriteDeadline(time.Time{})
		return true
	}
	if err == nil {
		// The rest of a refusal's body, up to the target's end.
		if cw, ok := tconn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		n, _ := io.Copy(cconn, tconn)
		s.m.down.Add(float64(n))
	}
	tconn.Close()
	if tc, ok := cconn.(*tls.Conn); ok {
		pc.client.SetWriteDeadline(time.Now().Add(time.Second))
		tc.Close()
	}
	s.end(pc)
	return false
}

// switchesProtocols reports an HTTP/1.1 101 status line.
func switchesProtocols(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1.1 101"))
	return ok && (len(rest) == 0 || rest[0] == ' ')
}

// denyFollower watches the deny-file of the Options in use, from the
// first Serve until Shutdown.
type denyFollower struct {
	mu sync.Mutex
	w  *watch.Watcher
}

// followDeny points the watch at the deny-file of the Options in use
// (starting it the first time one is set).
func (s *Server) followDeny() {
	d := s.options().Deny
	s.deny.mu.Lock()
	defer s.deny.mu.Unlock()
	if s.deny.w == nil {
		if d == nil {
			return
		}
		w, err := watch.New(reloadDebounce)
		if err != nil {
			s.log.Warn("deny list is not watched; changes take effect on reload (SIGHUP)", "listener", s.name, "err", err)
			return
		}
		s.deny.w = w
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-s.stop
			cancel()
		}()
		go w.Run(ctx)
		go s.denyChanges(w)
	}
	if d == nil {
		s.deny.w.Remove("deny")
		return
	}
	if err := s.deny.w.Set("deny", []string{d.Path()}); err != nil {
		s.log.Warn("deny list is not watched; changes take effect on reload (SIGHUP)", "listener", s.name, "deny_file", d.Path(), "err", err)
	}
}

func (s *Server) denyChanges(w *watch.Watcher) {
	for {
		select {
		case <-s.stop:
			return
		case <-w.Changes():
			s.ReloadDeny()
			s.followDeny()
		}
	}
}

// ReloadDeny reads the deny-file again and closes the sessions it now
// refuses; a file that does not parse keeps the list in use. It returns
// how many sessions it closed.
func (s *Server) ReloadDeny() (int, error) {
	opt := s.options()
	if opt.Deny == nil {
		return 0, nil
	}
	changed, err := opt.Deny.reload()
	if err != nil {
		s.log.Warn("deny list changed but did not load; still refusing by the previous one", "listener", s.name, "err", err)
		return 0, err
	}
	if !changed {
		return 0, nil
	}
	closed := s.closeRefused(opt)
	level := slog.LevelInfo
	if closed > 0 {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "deny list reloaded", "listener", s.name, "deny_file", opt.Deny.Path(),
		"entries", opt.Deny.Len(), "closed_sessions", closed)
	return closed, nil
}
