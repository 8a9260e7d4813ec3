package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/systemd"
)

// recorder runs no process: it records the steps in order and fails the
// first step of action failOn, as a health gate would.
type recorder struct {
	done   []Step
	failOn Action
}

func (r *recorder) Do(_ context.Context, s Step) error {
	r.done = append(r.done, s)
	if s.Action == r.failOn {
		r.failOn = 0
		return errors.New("not healthy within 1m0s: GET http://127.0.0.1:8080/health: connection refused")
	}
	return nil
}

func (r *recorder) actions() string {
	var out []string
	for _, s := range r.done {
		out = append(out, s.Action.String())
	}
	return strings.Join(out, ", ")
}

func TestEachRoleHasItsPhases(t *testing.T) {
	for _, c := range []struct {
		name, backend, agent string
		commercial, mtls     bool
		want                 string
	}{
		{"backend and agent, open source", "backend-packaged.yml", "agent-packaged.yml", false, false, "1 (bridge), 2 (agents), 3 (native)"},
		{"backend only, open source", "backend-packaged.yml", "", false, false, "1 (bridge), 3 (native)"},
		{"agent only, open source", "", "agent-packaged.yml", false, false, "2 (agents)"},
		{"backend only, commercial", "backend-packaged.yml", "", true, false, "1 (bridge), 3 (native)"},
		{"backend only, commercial with agent mTLS", "backend-packaged.yml", "", true, true, "1 (bridge), 3 (native), 4 (enforce)"},
		{"agent only with agent mTLS", "", "agent-packaged.yml", true, true, "2 (agents), 4 (enforce)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, _ := testNode(t, c.backend, c.agent)
			n.Commercial, n.AgentMTLS = c.commercial, c.mtls
			if got := PhaseList(Phases(n)); got != c.want {
				t.Errorf("phases %s, want %s", got, c.want)
			}
		})
	}
}

// An agent node goes 0 → 2 → 0: no phase of the backend is required,
// applied or printed, and nothing but sensu-agent restarts.
func TestAgentNodeWalksOnlyItsPhases(t *testing.T) {
	n, _ := testNode(t, "", "agent-packaged.yml")
	orig := readOrNil(t, n.Files.Agent)
	plans, _, err := Plan(context.Background(), n, noAgents)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range plans {
		if sp.Phase != Agents && (sp.Skip == "" || len(sp.Steps) != 0 || len(sp.Needs) != 0) {
			t.Errorf("phase %d on an agent node: %+v", sp.Phase, sp)
		}
	}
	rec := &recorder{}
	res, err := Apply(context.Background(), n, Agents, Options{Services: rec})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != Plaintext || res.To != Agents || rec.actions() != "restart sensu-agent" {
		t.Errorf("phase 2 from 0: %d -> %d, steps %s", res.From, res.To, rec.actions())
	}
	st, err := CurrentStatus(n)
	if err != nil || st.Next != nil {
		t.Errorf("after phase 2 an agent node is done: next %+v %v", st.Next, err)
	}
	if _, err := Apply(context.Background(), n, Native, Options{Services: rec}); err == nil || !strings.Contains(err.Error(), "no backend on this node") {
		t.Errorf("phase 3 on an agent node: %v", err)
	}
	rec.done = nil
	res, err = Rollback(context.Background(), n, false, Options{Services: rec})
	if err != nil || res.To != Plaintext || rec.actions() != "restart sensu-agent" {
		t.Fatalf("rollback: %+v %v, steps %s", res, err, rec.actions())
	}
	if !bytes.Equal(orig, readOrNil(t, n.Files.Agent)) {
		t.Error("rollback did not restore agent.yml")
	}
}

// The order keeps every port free before a process binds it: into the
// bridge the backend restarts first (onto loopback) and then the proxy
// takes the public ports; out of it, and on the way back, the proxy lets
// go first.
func TestStepsKeepThePortsFree(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "agent-packaged.yml")
	ctx := context.Background()
	want := []struct {
		do    func(o Options) error
		steps string
	}{
		{func(o Options) error { _, err := Apply(ctx, n, Bridge, o); return err }, "restart sensu-backend, reload sensu-tlsd"},
		{func(o Options) error { _, err := Rollback(ctx, n, false, o); return err }, "reload sensu-tlsd, restart sensu-backend"},
		{func(o Options) error { _, err := Apply(ctx, n, Bridge, o); return err }, "restart sensu-backend, reload sensu-tlsd"},
		{func(o Options) error { _, err := Apply(ctx, n, Agents, o); return err }, "restart sensu-agent"},
		{func(o Options) error { _, err := Apply(ctx, n, Native, o); return err }, "reload sensu-tlsd, restart sensu-backend"},
		{func(o Options) error { _, err := Rollback(ctx, n, false, o); return err }, "restart sensu-backend, reload sensu-tlsd"},
		{func(o Options) error { _, err := Rollback(ctx, n, false, o); return err }, "restart sensu-agent"},
		{func(o Options) error { _, err := Rollback(ctx, n, false, o); return err }, "reload sensu-tlsd, restart sensu-backend"},
	}
	for i, w := range want {
		rec := &recorder{}
		if err := w.do(Options{Services: rec, Agents: seen{}}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := rec.actions(); got != w.steps {
			t.Errorf("step %d did %q, want %q", i, got, w.steps)
		}
	}
}

// A failed gate rolls the phase back: the files and the state return,
// and the processes are made to take them again, in the safe order.
func TestFailedGateRollsThePhaseBack(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	orig := readOrNil(t, n.Files.Backend)
	rec := &recorder{failOn: ReloadProxy}
	var progress []string
	res, err := Apply(context.Background(), n, Bridge, Options{Services: rec, Progress: func(l string) { progress = append(progress, l) }})
	if err == nil || !strings.Contains(err.Error(), "phase 1 (bridge) failed and was rolled back to phase 0 (plaintext): reload sensu-tlsd: not healthy") {
		t.Fatalf("apply with a failing gate: %v", err)
	}
	if got := rec.actions(); got != "restart sensu-backend, reload sensu-tlsd, reload sensu-tlsd, restart sensu-backend" {
		t.Errorf("steps %s", got)
	}
	if !bytes.Equal(orig, readOrNil(t, n.Files.Backend)) || readOrNil(t, DropInPath(n.StateDir)) != nil {
		t.Error("the failed phase left its files")
	}
	if st, _ := LoadState(n); st.Phase != Plaintext || st.Backups != nil {
		t.Errorf("state after the failed phase: %+v", st)
	}
	if len(progress) == 0 || strings.Join(progress, "\n") != strings.Join(res.Log, "\n") ||
		!strings.Contains(res.Log[0], "doing: restart sensu-backend: sensu-backend moves to its loopback ports") {
		t.Errorf("log:\n%s", strings.Join(progress, "\n"))
	}
}

// Phase 3 ends ws://: while the bridges saw agents in plaintext it is
// refused, naming them; --force cuts them off and says so; an agent whose
// latest sighting is over TLS does not count.
func TestPhase3WaitsForPlaintextAgents(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	ctx := context.Background()
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	fleet := seen{
		{Namespace: "default", Name: "web-1", Transport: "plaintext", LastSeen: now.Add(-time.Hour)},
		{Member: "backend-2", Namespace: "default", Name: "db-1", Transport: "plaintext", LastSeen: now.Add(-48 * time.Hour)},
		{Namespace: "default", Name: "moved", Transport: "plaintext", LastSeen: now.Add(-2 * time.Hour)},
		{Member: "backend-3", Namespace: "default", Name: "moved", Transport: "tls", LastSeen: now.Add(-time.Minute)},
	}
	o := Options{Agents: fleet, Now: func() time.Time { return now }}
	plans, _, err := Plan(ctx, n, o)
	if err != nil {
		t.Fatal(err)
	}
	if b := plans[2].Blocked; b == nil || !strings.Contains(b.Error(), "2 agent(s) were seen in plaintext") {
		t.Errorf("plan of phase 3: %v", b)
	}
	_, err = Apply(ctx, n, Native, o)
	want := "default/db-1 (last seen 2026-12-04T12:00:00Z via backend-2), default/web-1 (last seen 2026-12-06T11:00:00Z)"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "moved") {
		t.Fatalf("phase 3 with agents in plaintext: %v", err)
	}
	if st, _ := LoadState(n); st.Phase != Bridge {
		t.Fatalf("the refused phase moved the node to %v", st.Phase)
	}

	o.Window = 24 * time.Hour // db-1 was last seen two days ago
	if _, err := Apply(ctx, n, Native, o); err == nil || !strings.Contains(err.Error(), "1 agent(s)") || strings.Contains(err.Error(), "db-1") {
		t.Errorf("with a window of 24h: %v", err)
	}

	o.CutOff = true
	res, err := Apply(ctx, n, Native, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CutOff) != 1 || res.CutOff[0].Name != "web-1" || !strings.Contains(strings.Join(res.Log, "\n"), "--force: cutting off 1 agent(s) seen in plaintext: default/web-1") {
		t.Errorf("--force: %+v", res)
	}
}

// Without a way to tell which agents still use plaintext the gate does
// not guess.
func TestPhase3WithoutSightingsNeedsForce(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	o := Options{Agents: LocalAgents{ConfigFile: "/etc/sensu/tlsd.yml"}}
	_, err := Apply(context.Background(), n, Native, o)
	if err == nil || !strings.Contains(err.Error(), "metrics-address is off in /etc/sensu/tlsd.yml") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("phase 3 without sightings: %v", err)
	}
}

// The bridge's loopback ports are the operator's choice, checked before
// anything is written.
func TestBridgePortsAreChosenAndChecked(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "")
	for _, c := range []struct {
		ports BridgePorts
		want  string
	}{
		{BridgePorts{API: 8080, Agent: 18081}, "bridge api port 8080 is a public port of the backend"},
		{BridgePorts{API: 18081, Agent: 18081}, "api and agent are both 18081"},
		{BridgePorts{API: 70000, Agent: 18081}, "bridge api port 70000 is out of range"},
	} {
		n.BridgePorts = &c.ports
		if _, err := apply(n, Bridge); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c.ports, err)
		}
	}
	busy := freePortInUse(t)
	n.BridgePorts = &BridgePorts{API: busy, Agent: 18081}
	if _, err := apply(n, Bridge); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bridge api port 127.0.0.1:%d is in use", busy)) {
		t.Errorf("a port in use: %v", err)
	}
	n.BridgePorts = &BridgePorts{API: 28080, Agent: 28081}
	if _, err := apply(n, Bridge); err != nil {
		t.Fatal(err)
	}
	ls, err := LoadDropIns(n.StateDir)
	if err != nil || len(ls) != 2 || ls[0].Targets[0] != "127.0.0.1:28080" || ls[1].Targets[0] != "127.0.0.1:28081" {
		t.Errorf("bridge listeners (no dashboard on the open-source build): %+v %v", ls, err)
	}
	n.BridgePorts = nil // remembered: a re-apply changes nothing
	if res, err := apply(n, Bridge); err != nil || len(res.Files) != 0 {
		t.Errorf("re-apply: %+v %v", res, err)
	}
}

// freePortInUse is a loopback port the test listens on until it ends.
func freePortInUse(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// The cutover acts on the config's own Sensu services, and on the presets
// where the config has none.
func TestSystemdServicesUseTheConfiguredServices(t *testing.T) {
	n, _ := testNode(t, "backend-packaged.yml", "agent-packaged.yml")
	cfg := &config.Config{Services: []config.Service{{Name: "backend", Preset: "sensu-backend"}}}
	s, err := NewSystemdServices(cfg, n, "sensu-tlsd.service", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Backend != "backend" || s.Agent != "migrate-sensu-agent" || s.Proxy != "migrate-sensu-tlsd" || len(cfg.Services) != 1 {
		t.Errorf("services %q %q %q; the config now has %d", s.Backend, s.Agent, s.Proxy, len(cfg.Services))
	}
	var actions []string
	for _, info := range s.Dispatcher.Services() {
		actions = append(actions, info.Name+": "+info.Action)
	}
	if got := strings.Join(actions, "; "); !strings.Contains(got, "migrate-sensu-tlsd: reload sensu-tlsd.service") || !strings.Contains(got, "backend: restart sensu-backend.service") {
		t.Errorf("actions: %s", got)
	}
}

// The gate after the proxy lets a port go passes only once nothing
// answers there.
func TestReleasedWaitsForThePortToClose(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := released{l.Addr().String()}
	if err := c.Probe(context.Background(), systemd.Expect{}); err == nil || !strings.Contains(err.Error(), "still accepts connections") {
		t.Errorf("while listening: %v", err)
	}
	l.Close()
	if err := c.Probe(context.Background(), systemd.Expect{}); err != nil {
		t.Errorf("after closing: %v", err)
	}
}

// A bridge applied before the ports were recorded keeps the ports it was
// given then: the public ones + 10000.
func TestBridgePortsOfAnOlderState(t *testing.T) {
	st := &State{Phase: Bridge, Public: map[string]string{"api-listen-address": "[::]:9080", "agent-port": "9081"}}
	if got := st.bridgePorts(&Node{}); got.API != 19080 || got.Agent != 19081 {
		t.Errorf("ports of an older bridge: %+v", got)
	}
	if got := (&State{}).bridgePorts(&Node{}); got != DefaultBridgePorts {
		t.Errorf("ports before the bridge: %+v", got)
	}
}
