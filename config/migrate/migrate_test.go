package migrate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/golden"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// seen is a fixed list of sightings, as a bridge would report them.
type seen []Sighting

func (s seen) Sightings(context.Context) ([]Sighting, error) { return s, nil }

// noAgents: every bridge is empty, so no step is held back.
var noAgents = Options{Agents: seen{}}

func apply(n *Node, p Phase) (*Result, error) {
	return Apply(context.Background(), n, p, noAgents)
}

func rollback(n *Node, force bool) (*Result, error) {
	return Rollback(context.Background(), n, force, noAgents)
}

// allHosts covers every host the sample configs use.
var allHosts = []string{"localhost", "127.0.0.1", "::1", "backend.example.com", "sensu.example.com",
	"sensu-backend.example.com", "10.0.0.1", "10.0.0.2", "10.0.0.3"}

// testNode builds a node in a temp dir from sample files, with a local CA
// and issued backend, peer and agent certificates.
func testNode(t *testing.T, backendSample, agentSample string) (*Node, string) {
	t.Helper()
	dir := t.TempDir()
	tls := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tls, 0o755); err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Init(tls, ca.InitOptions{CommonName: "test CA", Lifetime: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, profile pki.Profile, hosts []string) Cert {
		is, err := authority.Issue(ca.Request{Name: name, Profile: profile, Hosts: hosts, Lifetime: 90 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ca.WriteFiles(tls, name, is)
		if err != nil {
			t.Fatal(err)
		}
		return Cert{Name: name, CertPaths: sensu.CertPaths{CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA}}
	}
	n := &Node{
		StateDir: filepath.Join(dir, "state"),
		Backend:  issue("backend", pki.Backend, allHosts),
		EtcdPeer: issue("peer", pki.EtcdPeer, allHosts),
		Agent:    issue("agent", pki.Agent, nil),
		LintUser: "root",
	}
	copyTo := func(sample, name string) string {
		if sample == "" {
			return ""
		}
		b, err := os.ReadFile(filepath.Join("..", "sensu", "testdata", sample))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	n.Files.Backend = copyTo(backendSample, "backend.yml")
	n.Files.Agent = copyTo(agentSample, "agent.yml")
	return n, dir
}

// normalized replaces the temp dir in file content so goldens are stable.
func normalized(dir string, b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(dir), []byte("/TMP"))
}

func readOrNil(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var pairs = []struct{ name, backend, agent string }{
	{"packaged", "backend-packaged.yml", "agent-packaged.yml"},
	{"ansible", "backend-ansible.yml", "agent-ansible.yml"},
	{"chef", "backend-chef.yml", "agent-chef.yml"},
	{"puppet", "backend-puppet.yml", "agent-puppet.yml"},
	{"cluster", "backend-cluster-1.yml", "agent-cluster.yml"},
	{"cluster-2", "backend-cluster-2.yml", ""},
	{"cluster-3", "backend-cluster-3.yml", ""},
}

func TestEveryPhaseForwardAndBackRestoresTheOriginalBytes(t *testing.T) {
	for _, pair := range pairs {
		t.Run(pair.name, func(t *testing.T) {
			n, dir := testNode(t, pair.backend, pair.agent)
			var files []string
			for _, f := range []string{n.Files.Backend, n.Files.Agent, DropInPath(n.StateDir)} {
				if f != "" {
					files = append(files, f)
				}
			}
			var start [][]byte
			for _, f := range files {
				start = append(start, readOrNil(t, f))
			}
			history := map[Phase][][]byte{Plaintext: start}
			phases := Phases(n)
			for _, p := range phases {
				res, err := apply(n, p)
				if err != nil {
					t.Fatalf("apply phase %d: %v", p, err)
				}
				if res.To != p {
					t.Fatalf("apply phase %d reported %d", p, res.To)
				}
				var state [][]byte
				var all bytes.Buffer
				for _, f := range files {
					b := readOrNil(t, f)
					state = append(state, b)
					all.WriteString("==> " + filepath.Base(f) + "\n")
					all.Write(normalized(dir, b))
				}
				history[p] = state
				golden.Check(t, filepath.Join("testdata", pair.name+".phase"+string(rune('0'+p))+".txt"), all.Bytes())

				again, err := apply(n, p)
				if err != nil {
					t.Fatalf("re-apply phase %d: %v", p, err)
				}
				if len(again.Files) != 0 {
					t.Errorf("re-applying phase %d changed %v", p, again.Files)
				}
				if st, err := CurrentStatus(n); err != nil || st.Phase != p || len(st.Drifted) != 0 {
					t.Errorf("status after phase %d: %+v %v", p, st, err)
				}
			}
			for i := len(phases) - 1; i >= 0; i-- {
				p, prev := phases[i], Plaintext
				if i > 0 {
					prev = phases[i-1]
				}
				res, err := rollback(n, false)
				if err != nil {
					t.Fatalf("rollback from %d: %v", p, err)
				}
				if res.To != prev {
					t.Errorf("rollback from %d went to %d, want %d", p, res.To, prev)
				}
				for i, f := range files {
					if got := readOrNil(t, f); !bytes.Equal(got, history[prev][i]) || (got == nil) != (history[prev][i] == nil) {
						t.Errorf("after rollback to phase %d, %s differs:\n%s", prev, f, sensu.Diff("want", "got", history[prev][i], got))
					}
				}
			}
			if _, err := rollback(n, false); err == nil || !strings.Contains(err.Error(), "nothing to roll back") {
				t.Errorf("rollback at phase 0: %v", err)
			}
			if _, err := os.Stat(filepath.Join(n.StateDir, "migrate", "phase-1")); !os.IsNotExist(err) {
				t.Error("backups left behind after rolling everything back")
			}
		})
	}
}

func TestPlanShowsEachPhaseDiffAndNeeds(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "agent-packaged.yml")
	before := readOrNil(t, n.Files.Backend)
	plans, at, err := Plan(context.Background(), n, noAgents)
	if err != nil {
		t.Fatal(err)
	}
	if at != Plaintext || len(plans) != 4 || plans[3].Skip == "" || !strings.Contains(plans[3].Summary, "no effect on the open-source build") {
		t.Fatalf("plan at %v with %d steps", at, len(plans))
	}
	text := func(sp StepPlan) string {
		var b strings.Builder
		for _, f := range sp.Files {
			b.WriteString(f.Diff)
		}
		return b.String()
	}
	for _, want := range []string{"+api-listen-address: 127.0.0.1:18080", "+agent-host: 127.0.0.1", "+agent-port: 18081", "+    listen: '[::]:8081'"} {
		if !strings.Contains(text(plans[0]), want) {
			t.Errorf("bridge diff lacks %q:\n%s", want, text(plans[0]))
		}
	}
	if !strings.Contains(text(plans[1]), `+  - "wss://127.0.0.1:8081"`) {
		t.Errorf("agents diff:\n%s", text(plans[1]))
	}
	for _, want := range []string{"-api-listen-address: 127.0.0.1:18080", "+cert-file: " + n.Backend.CertFile, "+api-url: https://localhost:8080"} {
		if !strings.Contains(text(plans[2]), want) {
			t.Errorf("native diff lacks %q:\n%s", want, text(plans[2]))
		}
	}
	if !strings.Contains(text(plans[2]), "+etcd-client-cert-auth: true") {
		t.Errorf("native diff lacks etcd-client-cert-auth:\n%s", text(plans[2]))
	}
	if len(plans[3].Files) != 0 {
		t.Errorf("enforce on the open-source build changes files: %+v", plans[3].Files)
	}
	if len(plans[0].Needs) != 1 || !strings.Contains(plans[0].Needs[0].What, `"backend"`) || plans[0].Needs[0].Check() != nil {
		t.Errorf("bridge needs: %+v", plans[0].Needs)
	}
	if strings.Contains(plans[0].Summary, "peer") || strings.Contains(text(plans[0]), "etcd-peer") {
		t.Errorf("the bridge of a single backend touches etcd peers: %s\n%s", plans[0].Summary, text(plans[0]))
	}
	if !bytes.Equal(before, readOrNil(t, n.Files.Backend)) {
		t.Error("plan wrote to backend.yml")
	}
}

// On a cluster member the bridge also gives etcd the peer trio, peer URLs
// still http and no peer client-cert-auth, so the member can dial the
// members that move to https peers before it; plan says so and needs the
// peer certificate and its coverage of the member's addresses.
func TestPlanOfAClusterMembersBridgeGivesEtcdThePeerTrio(t *testing.T) {
	n, _ := testNode(t, "backend-cluster-1.yml", "")
	plans, _, err := Plan(context.Background(), n, noAgents)
	if err != nil {
		t.Fatal(err)
	}
	bridge := plans[0]
	if bridge.Phase != Bridge || !strings.Contains(bridge.Summary, "etcd gets the peer trio") {
		t.Errorf("bridge summary on a cluster member: %q", bridge.Summary)
	}
	var diff strings.Builder
	for _, f := range bridge.Files {
		diff.WriteString(f.Diff)
	}
	for _, want := range []string{"+etcd-peer-cert-file: " + n.EtcdPeer.CertFile, "+etcd-peer-key-file: " + n.EtcdPeer.KeyFile, "+etcd-peer-trusted-ca-file: " + n.EtcdPeer.CAFile} {
		if !strings.Contains(diff.String(), want) {
			t.Errorf("bridge diff lacks %q:\n%s", want, diff.String())
		}
	}
	for _, not := range []string{"https://", "etcd-peer-client-cert-auth"} {
		if strings.Contains(diff.String(), not) {
			t.Errorf("bridge diff has %q:\n%s", not, diff.String())
		}
	}
	var whats []string
	for _, need := range bridge.Needs {
		whats = append(whats, need.What)
		if err := need.Check(); err != nil {
			t.Errorf("need %s: %v", need.What, err)
		}
	}
	if len(whats) != 3 || !strings.Contains(whats[1], `"peer" (profile etcd-peer)`) || !strings.Contains(whats[2], "peer addresses") {
		t.Errorf("bridge needs on a cluster member: %q", whats)
	}
}

func TestApplyRefusesMissingCertificateAndWrongOrder(t *testing.T) {
	n, _ := testNode(t, "backend-ansible.yml", "")
	orig := readOrNil(t, n.Files.Backend)
	if _, err := apply(n, Native); err == nil || !strings.Contains(err.Error(), "apply phase 1 (bridge) first") {
		t.Errorf("skipping a phase: %v", err)
	}
	if _, err := apply(n, Agents); err == nil || !strings.Contains(err.Error(), "phase 2 (agents) does not apply to this node: no agent on this node; its phases are 1 (bridge), 3 (native)") {
		t.Errorf("a phase of another role: %v", err)
	}
	if err := os.Remove(n.Backend.KeyFile); err != nil {
		t.Fatal(err)
	}
	_, err := apply(n, Bridge)
	if err == nil || !strings.Contains(err.Error(), "backend-key.pem") || !strings.Contains(err.Error(), "sensu-tlsd issue backend") {
		t.Errorf("missing key: %v", err)
	}
	if !bytes.Equal(orig, readOrNil(t, n.Files.Backend)) {
		t.Error("a refused phase changed backend.yml")
	}
	if readOrNil(t, DropInPath(n.StateDir)) != nil {
		t.Error("a refused phase wrote the drop-in")
	}
	if st, _ := LoadState(n); st.Phase != Plaintext {
		t.Errorf("a refused phase moved the node to %v", st.Phase)
	}
}

func TestBridgeListenersAndEnvFiles(t *testing.T) {
	n, _ := testNode(t, "backend-puppet.yml", "")
	env := filepath.Join(filepath.Dir(n.Files.Backend), "sensu-backend")
	envSrc := "SENSU_BACKEND_AGENT_PORT=8081\nSENSU_BACKEND_LOG_LEVEL=info\n"
	if err := os.WriteFile(env, []byte(envSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Files.BackendEnv = []string{env}
	n.Commercial = true
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	if got := string(readOrNil(t, env)); got != "SENSU_BACKEND_AGENT_PORT=18081\nSENSU_BACKEND_LOG_LEVEL=info\n" {
		t.Errorf("env file after the bridge:\n%s", got)
	}
	ls, err := LoadDropIns(n.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 {
		t.Fatalf("listeners %+v", ls)
	}
	want := []struct{ name, listen, target string }{
		{"sensu-api", "0.0.0.0:8080", "127.0.0.1:18080"},
		{"sensu-agent", "0.0.0.0:8081", "127.0.0.1:18081"},
		{"sensu-dashboard", "[::]:3000", "127.0.0.1:13000"},
	}
	for i, w := range want {
		l := ls[i]
		if l.Name != w.name || l.Listen != w.listen || len(l.Targets) != 1 || l.Targets[0] != w.target || l.Mode != "dual" || !l.AllowPlain || l.Certificate != "backend" {
			t.Errorf("listener %d = %+v, want %+v", i, l, w)
		}
	}
	if _, err := apply(n, Native); err != nil {
		t.Fatal(err)
	}
	if got := string(readOrNil(t, env)); got != envSrc {
		t.Errorf("env file after native:\n%s", got)
	}
	if ls, _ := LoadDropIns(n.StateDir); len(ls) != 0 {
		t.Errorf("native left bridge listeners: %+v", ls)
	}
}

func TestAgentOnlyNodeWithAgentMTLS(t *testing.T) {
	n, _ := testNode(t, "", "agent-cluster.yml")
	n.Commercial, n.AgentMTLS = true, true // the backends are the commercial build
	n.AgentCAFile = n.Backend.CAFile
	if got := Phases(n); len(got) != 2 || got[0] != Agents || got[1] != Enforce {
		t.Fatalf("an agent node with agent mTLS has phases %v, want 2 (agents) and 4 (enforce)", got)
	}
	for _, p := range Phases(n) {
		if _, err := apply(n, p); err != nil {
			t.Fatalf("phase %d: %v", p, err)
		}
		got := string(readOrNil(t, n.Files.Agent))
		switch p {
		case Agents:
			if !strings.Contains(got, `  - "wss://10.0.0.3:8081"  # backend-3`) || !strings.Contains(got, "trusted-ca-file: "+n.AgentCAFile) || strings.Contains(got, "cert-file") {
				t.Errorf("agents phase:\n%s", got)
			}
		case Enforce:
			if !strings.Contains(got, "cert-file: "+n.Agent.CertFile) || !strings.Contains(got, "key-file: "+n.Agent.KeyFile) {
				t.Errorf("enforce with agent mTLS:\n%s", got)
			}
		}
	}
	if readOrNil(t, DropInPath(n.StateDir)) != nil {
		t.Error("an agent-only node got bridge listeners")
	}
}

func TestCommercialEnforceAddsAgentAuth(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	n.Commercial, n.AgentMTLS = true, true
	for _, p := range Phases(n) {
		if _, err := apply(n, p); err != nil {
			t.Fatalf("phase %d: %v", p, err)
		}
	}
	got := string(readOrNil(t, n.Files.Backend))
	for _, want := range []string{"agent-auth-cert-file: " + n.Backend.CertFile, "agent-auth-key-file: " + n.Backend.KeyFile,
		"agent-auth-trusted-ca-file: " + n.Agent.CAFile, "dashboard-cert-file: " + n.Backend.CertFile} {
		if !strings.Contains(got, want) {
			t.Errorf("commercial enforce lacks %q:\n%s", want, got)
		}
	}
}

func TestConcurrentMigrateIsRefused(t *testing.T) {
	n, _ := testNode(t, "backend-chef.yml", "")
	unlock, err := lock(n)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := apply(n, Bridge); err == nil || !strings.Contains(err.Error(), "another sensu-tlsd migrate is running") {
		t.Errorf("apply while locked: %v", err)
	}
}

// The three members of a cluster go through the phases on their own; the
// etcd-initial-cluster each writes must still name the same members at the
// same https URLs, or etcd refuses to form the cluster.
func TestClusterMembersAgreeOnTheInitialCluster(t *testing.T) {
	values := map[Phase][]string{}
	for _, member := range []string{"backend-cluster-1.yml", "backend-cluster-2.yml", "backend-cluster-3.yml"} {
		n, _ := testNode(t, member, "")
		n.Commercial, n.AgentMTLS = true, true // so that phase 4 applies
		for _, p := range Phases(n) {
			if _, err := apply(n, p); err != nil {
				t.Fatalf("%s: phase %d: %v", member, p, err)
			}
			d, err := sensu.Parse(n.Files.Backend, readOrNil(t, n.Files.Backend))
			if err != nil {
				t.Fatal(err)
			}
			v, _ := d.Get("etcd-initial-cluster")
			values[p] = append(values[p], v.Scalar)
		}
	}
	for p, vs := range values {
		for _, v := range vs[1:] {
			if v != vs[0] {
				t.Errorf("phase %d: the members disagree on etcd-initial-cluster: %q", p, vs)
			}
		}
	}
	want := "backend-1=https://10.0.0.1:2380,backend-2=https://10.0.0.2:2380,backend-3=https://10.0.0.3:2380"
	if values[Native][0] != want || values[Enforce][0] != want {
		t.Errorf("etcd-initial-cluster after native %q, enforce %q; want %q", values[Native][0], values[Enforce][0], want)
	}
}

func refusePlaintext(b bool) *bool { return &b }

// --refuse-plaintext is a choice of the bridge that the node remembers:
// re-applying phase 1 without it, plan and status keep TLS-only listeners.
func TestBridgeRemembersRefusePlaintext(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "agent-packaged.yml")
	n.RefusePlaintext = refusePlaintext(true)
	plans, _, err := Plan(context.Background(), n, noAgents)
	if err != nil {
		t.Fatal(err)
	}
	var diff strings.Builder
	for _, f := range plans[0].Files {
		diff.WriteString(f.Diff)
	}
	if !strings.Contains(diff.String(), "+    allow-plaintext: false") || strings.Contains(diff.String(), "allow-plaintext: true") {
		t.Errorf("plan --refuse-plaintext shows:\n%s", diff.String())
	}
	// No bridge has counted the agents: refusing plaintext cuts off every
	// ws:// agent, so it takes --force.
	if b := plans[0].Blocked; b == nil || !strings.Contains(b.Error(), "no bridge has counted the agents yet") {
		t.Errorf("plan of a TLS-only bridge from phase 0: %v", b)
	}
	if _, err := apply(n, Bridge); err == nil || !strings.Contains(err.Error(), "--force cuts off every agent still on ws://") {
		t.Errorf("TLS-only bridge from phase 0 without --force: %v", err)
	}
	if _, err := Apply(context.Background(), n, Bridge, Options{CutOff: true}); err != nil {
		t.Fatal(err)
	}
	refusing := func() bool {
		t.Helper()
		ls, err := LoadDropIns(n.StateDir)
		if err != nil || len(ls) == 0 {
			t.Fatalf("drop-in: %v %v", ls, err)
		}
		for _, l := range ls {
			if l.AllowPlain {
				return false
			}
		}
		return true
	}
	if !refusing() {
		t.Fatal("the bridge applied with --refuse-plaintext allows plaintext")
	}

	n.RefusePlaintext = nil // a later command without the flag
	if st, err := CurrentStatus(n); err != nil || len(st.Drifted) != 0 {
		t.Errorf("status after a TLS-only bridge: %+v %v", st, err)
	}
	res, err := apply(n, Bridge)
	if err != nil || len(res.Files) != 0 || !refusing() {
		t.Errorf("re-applying the bridge without the flag: %+v %v, TLS only: %v", res, err, refusing())
	}
	if _, err := apply(n, Agents); err != nil {
		t.Fatal(err)
	}
	if !refusing() {
		t.Error("phase 2 turned plaintext back on")
	}
	if _, err := rollback(n, false); err != nil {
		t.Fatal(err)
	}

	// Changing the choice is a re-apply of phase 1 with the flag.
	n.RefusePlaintext = refusePlaintext(false)
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	if refusing() {
		t.Error("--refuse-plaintext=false kept the bridge TLS-only")
	}
	if _, err := apply(n, Agents); err == nil || !strings.Contains(err.Error(), "--refuse-plaintext is a choice of phase 1 (bridge)") {
		t.Errorf("--refuse-plaintext on phase 2: %v", err)
	}
}

// Plan shows only what apply can do: with no backend certificate named it
// refuses, naming the key to set, instead of printing TLS-less diffs.
func TestPlanRefusesUnnamedCertificates(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "agent-packaged.yml")
	n.ConfigFile = "/etc/sensu/tlsd.yml"
	n.Backend = Cert{}
	_, _, err := Plan(context.Background(), n, noAgents)
	want := "phase 1 (bridge) needs a certificate (profile backend) for served by the bridge on the backend's public ports: no certificate named: set sensu.backend-certificate in /etc/sensu/tlsd.yml"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if _, err := apply(n, Bridge); err == nil || !strings.Contains(err.Error(), "set sensu.backend-certificate in /etc/sensu/tlsd.yml") {
		t.Errorf("apply: %v", err)
	}

	// An agent-only node needs no backend certificate, only the CA.
	n, _ = testNode(t, "", "agent-packaged.yml")
	n.AgentCAFile, n.Backend = n.Backend.CAFile, Cert{}
	if _, _, err := Plan(context.Background(), n, noAgents); err != nil {
		t.Errorf("agent-only node with agent-ca-file: %v", err)
	}
}

// Plan runs the lint check apply runs, so a phase apply would refuse is
// shown as refused, with the same reason.
func TestPlanShowsTheLintRefusalApplyWouldGive(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	src := string(readOrNil(t, n.Files.Backend)) + "api-url: http://not-in-the-cert.example.org:8080\n"
	if err := os.WriteFile(n.Files.Backend, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	plans, _, err := Plan(context.Background(), n, noAgents)
	if err != nil {
		t.Fatal(err)
	}
	if plans[0].Refused != nil || plans[1].Refused != nil {
		t.Errorf("phases 1 and 2 refused: %v / %v", plans[0].Refused, plans[1].Refused)
	}
	refused := plans[2].Refused
	if refused == nil || !strings.Contains(refused.Error(), `does not cover host "not-in-the-cert.example.org"`) {
		t.Fatalf("phase 3 plan: %v", refused)
	}
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(n, Native); err == nil || err.Error() != refused.Error() {
		t.Errorf("apply phase 3: %v\nplan said: %v", err, refused)
	}
}

// A rollback would put back the bytes from before the phase: edits made
// since are refused, named, and kept aside when forced.
func TestRollbackRefusesFilesEditedAfterThePhase(t *testing.T) {
	n, _ := testNode(t, "backend-chef.yml", "agent-chef.yml")
	orig := readOrNil(t, n.Files.Backend)
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	edited := string(readOrNil(t, n.Files.Backend)) + "log-level: debug\n"
	if err := os.WriteFile(n.Files.Backend, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	dropIn := DropInPath(n.StateDir)
	if err := os.WriteFile(dropIn, append(readOrNil(t, dropIn), "# mine\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := rollback(n, false)
	if err == nil || !strings.HasPrefix(err.Error(), n.Files.Backend+", "+dropIn+" changed after phase 1 (bridge) wrote it") || !strings.Contains(err.Error(), "migrate rollback --force") {
		t.Fatalf("rollback over an edit: %v", err)
	}
	if got := string(readOrNil(t, n.Files.Backend)); got != edited {
		t.Error("a refused rollback changed backend.yml")
	}
	if st, _ := LoadState(n); st.Phase != Bridge {
		t.Errorf("a refused rollback moved the node to %v", st.Phase)
	}

	res, err := rollback(n, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readOrNil(t, n.Files.Backend), orig) || readOrNil(t, dropIn) != nil {
		t.Error("a forced rollback did not restore backend.yml and remove the drop-in")
	}
	if got := string(readOrNil(t, n.Files.Backend+sensu.BackupSuffix)); got != edited {
		t.Errorf("the edited backend.yml was not kept aside: %q", got)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), n.Files.Backend+" had been edited since phase 1") {
		t.Errorf("notes: %v", res.Notes)
	}
}

// A state.json written before phases recorded what they wrote has nothing
// to tell an edit by: the rollback restores the files without asking for
// --force, and says it could not check them.
func TestRollbackOfAStateWithoutWrittenHashes(t *testing.T) {
	n, _ := testNode(t, "backend-chef.yml", "agent-chef.yml")
	orig := readOrNil(t, n.Files.Backend)
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(n)
	if err != nil {
		t.Fatal(err)
	}
	st.Written = nil
	if err := st.save(n); err != nil {
		t.Fatal(err)
	}
	res, err := rollback(n, false)
	if err != nil {
		t.Fatalf("rollback of an older state: %v", err)
	}
	if !bytes.Equal(readOrNil(t, n.Files.Backend), orig) || readOrNil(t, DropInPath(n.StateDir)) != nil {
		t.Error("the rollback did not restore backend.yml and remove the drop-in")
	}
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(notes, n.Files.Backend) || !strings.Contains(notes, "restored without a check for edits made since phase 1 (bridge)") {
		t.Errorf("the notes do not say which files went unchecked: %v", res.Notes)
	}
}
