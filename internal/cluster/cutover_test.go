package cluster_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/cluster"
	"github.com/sensu-tlsd/sensu-tlsd/internal/etcdtest"
)

// migrateNode is member m's node as `sensu-tlsd migrate` sees it.
func migrateNode(c *etcdtest.Cluster, m *etcdtest.Member) *migrate.Node {
	n := &migrate.Node{
		StateDir: filepath.Join(c.Dir, m.Name, "state"),
		Backend:  migrate.Cert{Name: "backend", CertPaths: c.Backend},
		EtcdPeer: migrate.Cert{Name: "peer", CertPaths: c.Peer},
		LintUser: "root",
	}
	n.Files.Backend = m.BackendYML
	return n
}

// coordinator opens the cluster through member via's client URL with the
// backend's etcd client certificate, as `sensu-tlsd migrate` on that
// member would.
func coordinator(t *testing.T, ctx context.Context, c *etcdtest.Cluster, via *etcdtest.Member) *cluster.Cluster {
	t.Helper()
	cl, err := cluster.Open(ctx, cluster.Config{Endpoints: []string{via.ClientURL(t)},
		CertFile: c.Backend.CertFile, KeyFile: c.Backend.KeyFile, CAFile: c.Backend.CAFile, Source: via.BackendYML})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// rollingSwitch takes every member to scheme, one at a time, in the order
// switchOrder gives, and checks the writes never stalled for longer than an
// election timeout.
func rollingSwitch(t *testing.T, ctx context.Context, c *etcdtest.Cluster, p *etcdtest.WriteProbe, scheme string, change func(*migrate.Node) error, phase string) {
	t.Helper()
	p.Gaps()
	for i, m := range switchOrder(t, ctx, c) {
		name := m.Name
		via := c.Members[0]
		if via == m {
			via = c.Members[1]
		}
		co := coordinator(t, ctx, c, via)
		p.Aside(m)
		began := time.Now()
		err := co.SwitchMember(ctx, cluster.Step{
			Member: name, Scheme: scheme, Phase: phase, Details: "etcdtest",
			Stop: func(context.Context) error {
				c.StopMember(m)
				return nil
			},
			Start: func(context.Context) error {
				if err := change(migrateNode(c, m)); err != nil {
					return err
				}
				c.StartMember(m)
				return nil
			},
		})
		co.Close()
		if err != nil {
			t.Fatalf("step %d (%s to %s): %v", i+1, name, scheme, err)
		}
		took := time.Since(began)
		p.Back(m)
		// The member's own writes are measured again from here: give it
		// a moment so its first writes count in this step.
		time.Sleep(500 * time.Millisecond)
		perMember, anyMember, accepted := p.Gaps()
		longest := time.Duration(0)
		for other, g := range perMember {
			if other != name {
				longest = max(longest, g)
			}
		}
		t.Logf("step %d: %s peers -> %s in %v; longest write gap through the other members %v, through any member %v; %d writes accepted",
			i+1, name, scheme, took.Round(time.Millisecond), longest.Round(time.Millisecond), anyMember.Round(time.Millisecond), accepted)
		if longest >= etcdtest.ElectionTimeout {
			t.Errorf("step %d (%s): writes through a member failed for %v, longer than the election timeout %v (%v)", i+1, name, longest, etcdtest.ElectionTimeout, perMember)
		}
		if accepted == 0 {
			t.Errorf("step %d (%s): no write was accepted", i+1, name)
		}
	}
}

// checkSettled asserts one leader, every member healthy, and every stored
// peer URL of scheme.
func checkSettled(t *testing.T, ctx context.Context, c *etcdtest.Cluster, scheme string) cluster.View {
	t.Helper()
	co := coordinator(t, ctx, c, c.Members[0])
	defer co.Close()
	v, err := co.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, m := range v.Members {
		if m.Leader {
			leaders++
		}
		if !m.Healthy {
			t.Errorf("member %s unhealthy: %s", m.Name, m.Problem)
		}
		for _, u := range m.PeerURLs {
			if want := scheme + "://"; len(u) < len(want) || u[:len(want)] != want {
				t.Errorf("member %s: etcd stores peer URL %s, want %s", m.Name, u, scheme)
			}
		}
	}
	if leaders != 1 || !v.Quorum || len(v.Members) != len(c.Members) {
		t.Errorf("want %d members, one leader and quorum; got %d members, %d leaders, quorum %v", len(c.Members), len(v.Members), leaders, v.Quorum)
	}
	return v
}

// peerTLSFailures are the lines of the members' etcd logs where one
// member's certificate check of another failed: its rafthttp dialing a
// peer (x509), or its listener refusing a peer ("remote error: tls", the
// dialer's alert). "first record does not look like a TLS handshake" is
// left out: it is a scheme mismatch, not a certificate one, which the
// probe's and migrate's etcd clients cause dialing a member's old http
// client URL while it switches, and a member just restarted causes
// dialing a peer at the URL its data held until it applies the peer's move.
func peerTLSFailures(t *testing.T, c *etcdtest.Cluster) []string {
	t.Helper()
	var out []string
	for _, m := range c.Members {
		b, err := os.ReadFile(m.Log)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "x509:") || strings.Contains(line, "remote error: tls") {
				out = append(out, m.Name+": "+line)
			}
		}
	}
	return out
}

// A three-member cluster goes to https peers (phase 3, native) and back to
// http (its rollback), member by member, by the code path the CLI runs:
// migrate edits the member's backend.yml, cluster.SwitchMember moves its
// stored peer URLs under the restart lock while it is stopped, and starts
// it from the file.
// Writes through every member never stall longer than an election timeout,
// and while the members' peer schemes are mixed no member fails TLS with
// another: phase 1 gave each the peer trio, which etcd dials https peers
// with while its own peer URLs are still http.
func TestRollingPeerCutoverAndRollbackKeepWritesFlowing(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, m := range c.Members {
		for _, ph := range []migrate.Phase{migrate.Bridge} {
			if _, err := migrate.Apply(context.Background(), migrateNode(c, m), ph, migrate.Options{CutOff: true}); err != nil {
				t.Fatalf("%s phase %d: %v", m.Name, ph, err)
			}
		}
		// Phase 1 restarts the backend: its etcd takes the peer trio it
		// dials the members already on https peers with.
		c.RestartMember(m)
		c.WaitHealthy(m, time.Minute)
	}
	checkSettled(t, ctx, c, "http")
	p := etcdtest.StartWriteProbe(t, c, 10*time.Millisecond)

	rollingSwitch(t, ctx, c, p, "https", func(n *migrate.Node) error {
		_, err := migrate.Apply(context.Background(), n, migrate.Native, migrate.Options{CutOff: true})
		return err
	}, migrate.Native.String())
	checkSettled(t, ctx, c, "https")
	for _, m := range c.Members {
		if u := m.ClientURL(t); u[:8] != "https://" {
			t.Errorf("%s: phase 3 left client URL %s", m.Name, u)
		}
	}
	co := coordinator(t, ctx, c, c.Members[2])
	phases, err := co.Phases(ctx)
	co.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) != 3 {
		t.Fatalf("recorded phases: %+v, want one per member", phases)
	}
	for _, ph := range phases {
		if ph.Phase != "native" {
			t.Errorf("member %s recorded phase %q, want native", ph.Member, ph.Phase)
		}
	}

	rollingSwitch(t, ctx, c, p, "http", func(n *migrate.Node) error {
		_, err := migrate.Rollback(context.Background(), n, false, migrate.Options{})
		return err
	}, migrate.Bridge.String())
	checkSettled(t, ctx, c, "http")
	if bad := peerTLSFailures(t, c); len(bad) > 0 {
		t.Errorf("members failed TLS with each other while their peer schemes were mixed:\n%s", strings.Join(bad, "\n"))
	}
}

// memberServices is a member's sensu-backend as migrate's steps see it:
// its etcd, stopped and started from its backend.yml. The bridge's proxy
// has nothing to do here.
type memberServices struct {
	c       *etcdtest.Cluster
	m       *etcdtest.Member
	stopped bool
	did     []string
}

func (s *memberServices) Do(_ context.Context, st migrate.Step) error {
	s.did = append(s.did, st.Action.String())
	switch st.Action {
	case migrate.StopBackend:
		s.c.StopMember(s.m)
		s.stopped = true
	case migrate.RestartBackend:
		if s.stopped {
			s.c.StartMember(s.m)
			s.stopped = false
			return nil
		}
		s.c.RestartMember(s.m)
	}
	return nil
}

// member is m as `sensu-tlsd migrate` on it opens its cluster: through its
// own client URL, then the other members', so the connection outlives m's
// restart.
func member(t *testing.T, ctx context.Context, c *etcdtest.Cluster, m *etcdtest.Member) *migrate.Member {
	t.Helper()
	co := coordinator(t, ctx, c, m)
	t.Cleanup(func() { co.Close() })
	if err := co.SyncEndpoints(ctx, m.Name); err != nil {
		t.Fatal(err)
	}
	return &migrate.Member{Cluster: co, Name: m.Name}
}

// migrateRound runs do on every member in switchOrder, each through its own
// migrate.Member and services as the CLI on that member would, and checks
// that writes through the other members never stalled for an election
// timeout.
func migrateRound(t *testing.T, ctx context.Context, c *etcdtest.Cluster, p *etcdtest.WriteProbe, what string, do func(n *migrate.Node, o migrate.Options) error) {
	t.Helper()
	p.Gaps()
	for _, m := range switchOrder(t, ctx, c) {
		name := m.Name
		svc := &memberServices{c: c, m: m}
		p.Aside(m)
		began := time.Now()
		if err := do(migrateNode(c, m), migrate.Options{Member: member(t, ctx, c, m), Services: svc, Agents: migrate.AllAgents{}}); err != nil {
			t.Fatalf("%s on %s: %v (steps %v)", what, name, err, svc.did)
		}
		took := time.Since(began)
		p.Back(m)
		time.Sleep(500 * time.Millisecond)
		perMember, anyMember, accepted := p.Gaps()
		longest := time.Duration(0)
		for other, g := range perMember {
			if other != name {
				longest = max(longest, g)
			}
		}
		t.Logf("%s on %s (%v) in %v; longest write gap through the other members %v, through any member %v; %d writes accepted",
			what, name, svc.did, took.Round(time.Millisecond), longest.Round(time.Millisecond), anyMember.Round(time.Millisecond), accepted)
		if longest >= etcdtest.ElectionTimeout {
			t.Errorf("%s on %s: writes through a member failed for %v, longer than the election timeout %v (%v)", what, name, longest, etcdtest.ElectionTimeout, perMember)
		}
		if accepted == 0 {
			t.Errorf("%s on %s: no write was accepted", what, name)
		}
	}
}

// checkPhases asserts every member recorded phase.
func checkPhases(t *testing.T, ctx context.Context, c *etcdtest.Cluster, phase migrate.Phase) {
	t.Helper()
	co := coordinator(t, ctx, c, c.Members[2])
	defer co.Close()
	recs, err := co.Phases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(c.Members) {
		t.Fatalf("recorded phases %+v, want one per member", recs)
	}
	for _, r := range recs {
		if r.Phase != phase.String() {
			t.Errorf("member %s recorded phase %q (%s), want %s", r.Member, r.Phase, r.Details, phase)
		}
	}
}

// The cutover as every member's `migrate apply` runs it on a real
// three-member cluster: phase 1 restarts each backend in turn under the
// restart lock; phase 3 is refused on one member while another member's
// daemon published an agent its bridge saw in plaintext, naming the agent,
// the member and when; once that agent moved to TLS, each member's phase 3 moves its own stored
// peer URLs to https while its backend is stopped, and its rollback moves
// them back. Writes never stall beyond an election timeout, one leader
// remains, each member's phase is recorded, and no member fails TLS with
// another while their peer schemes are mixed.
func TestMigrateApplyOnEachMemberSwitchesItThroughTheCluster(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := etcdtest.StartWriteProbe(t, c, 10*time.Millisecond)
	migrateRound(t, ctx, c, p, "phase 1", func(n *migrate.Node, o migrate.Options) error {
		_, err := migrate.Apply(ctx, n, migrate.Bridge, o)
		return err
	})
	checkSettled(t, ctx, c, "http")
	checkPhases(t, ctx, c, migrate.Bridge)

	// backend-2's daemon publishes what its bridge saw: app-7 in plaintext.
	seen := time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC)
	var bridgeMu sync.Mutex
	bridge := []migrate.Sighting{{Namespace: "default", Name: "app-7", Transport: "plaintext", LastSeen: seen}}
	pctx, stopPublisher := context.WithCancel(ctx)
	published := make(chan error, 1)
	go func() {
		published <- (&migrate.Publisher{Node: migrateNode(c, c.Members[1]), Interval: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
			Agents: func() []migrate.Sighting { bridgeMu.Lock(); defer bridgeMu.Unlock(); return slices.Clone(bridge) }}).Run(pctx)
	}()
	self := member(t, ctx, c, c.Members[0])
	waitAgents := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			recs, err := self.Cluster.PlaintextAgents(ctx)
			if err == nil && len(recs) == 1 && recs[0].Member == c.Members[1].Name && len(recs[0].Agents) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("backend-2's publisher: records %+v (%v), want %d agent(s)", recs, err, want)
			}
		}
	}
	waitAgents(1)
	fleet := migrate.AllAgents{migrate.ClusterAgents{Cluster: self.Cluster, Except: self.Name}}
	svc := &memberServices{c: c, m: c.Members[0]}
	_, err := migrate.Apply(ctx, migrateNode(c, c.Members[0]), migrate.Native, migrate.Options{Member: self, Services: svc, Agents: fleet})
	want := "1 agent(s) were seen in plaintext: default/app-7 (last seen 2026-12-06T16:00:00Z via " + c.Members[1].Name + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("phase 3 with an agent in plaintext on another member: %v, want %q", err, want)
	}
	if len(svc.did) != 0 {
		t.Errorf("the refused phase 3 acted: %v", svc.did)
	}
	// app-7 reconnects over TLS: backend-2 publishes that none is left.
	bridgeMu.Lock()
	bridge = append(bridge, migrate.Sighting{Namespace: "default", Name: "app-7", Transport: "tls", LastSeen: seen.Add(time.Minute)})
	bridgeMu.Unlock()
	waitAgents(0)
	stopPublisher()
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	migrateRound(t, ctx, c, p, "phase 3", func(n *migrate.Node, o migrate.Options) error {
		o.Agents = migrate.AllAgents{migrate.ClusterAgents{Cluster: o.Member.Cluster, Except: o.Member.Name}}
		_, err := migrate.Apply(ctx, n, migrate.Native, o)
		return err
	})
	checkSettled(t, ctx, c, "https")
	checkPhases(t, ctx, c, migrate.Native)

	migrateRound(t, ctx, c, p, "rollback of phase 3", func(n *migrate.Node, o migrate.Options) error {
		_, err := migrate.Rollback(ctx, n, false, o)
		return err
	})
	checkSettled(t, ctx, c, "http")
	checkPhases(t, ctx, c, migrate.Bridge)
	if bad := peerTLSFailures(t, c); len(bad) > 0 {
		t.Errorf("members failed TLS with each other while their peer schemes were mixed:\n%s", strings.Join(bad, "\n"))
	}
}

// switchOrder is the order the tests restart members in, as the cluster
// sees it now: followers first, the leader last, so leadership moves at
// most once.
func switchOrder(t *testing.T, ctx context.Context, c *etcdtest.Cluster) []*etcdtest.Member {
	t.Helper()
	co := coordinator(t, ctx, c, c.Members[0])
	v, err := co.Members(ctx)
	co.Close()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*etcdtest.Member{}
	for _, m := range c.Members {
		byName[m.Name] = m
	}
	var order []*etcdtest.Member
	var leader *etcdtest.Member
	for _, m := range v.Members {
		if m.Leader {
			leader = byName[m.Name]
			continue
		}
		order = append(order, byName[m.Name])
	}
	if leader != nil {
		order = append(order, leader)
	}
	return order
}
