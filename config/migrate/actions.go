package migrate

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Action is what a process needs to take the files a phase wrote.
type Action int

const (
	// RestartBackend: sensu-backend reads its listeners and certificates
	// only at start.
	RestartBackend Action = iota + 1
	// ReloadProxy: sensu-tlsd re-reads the bridge's drop-in on a reload
	// and takes or lets go of the backend's public ports.
	ReloadProxy
	// RestartAgent: sensu-agent reads agent.yml only at start (and dies on
	// SIGHUP, so it is never reloaded).
	RestartAgent
	// StopBackend: a cluster member's sensu-backend is down while etcd
	// moves its peer URLs; the RestartBackend after it starts it again.
	StopBackend
)

func (a Action) String() string {
	switch a {
	case RestartBackend:
		return "restart sensu-backend"
	case ReloadProxy:
		return "reload sensu-tlsd"
	case RestartAgent:
		return "restart sensu-agent"
	case StopBackend:
		return "stop sensu-backend"
	}
	return fmt.Sprintf("action-%d", int(a))
}

// Step is one action of an apply or a rollback, with what its health gate
// must see afterwards.
type Step struct {
	Action Action
	Why    string
	// Files are the changed files the process reads.
	Files []string
	// Take are the public addresses the proxy must serve TLS on after a
	// ReloadProxy; Release those it must have let go of (nothing may
	// answer there until the backend restarts onto them).
	Take, Release []string
}

func (s Step) String() string { return s.Action.String() + ": " + s.Why }

// Services runs a step's action and waits for its health gate; an error
// means the process did not come back as the phase needs, and the phase
// is rolled back. SystemdServices is the implementation the command uses.
type Services interface {
	Do(ctx context.Context, s Step) error
}

// stepsFor orders the actions that make the node's processes take a
// change of files, so that a port is always free before a process binds
// it: when the bridge starts (or stays) the backend restarts first, onto
// its loopback ports, and then the proxy takes the public ones; when the
// bridge ends the proxy lets them go first, then the backend restarts onto
// them. Agents restart last, against the backend as it now is.
func (n *Node) stepsFor(changed []string, dropInBefore, dropInAfter []byte) []Step {
	var backendFiles, agentFiles []string
	for _, p := range changed {
		switch {
		case p == n.Files.Backend || slices.Contains(n.Files.BackendEnv, p):
			backendFiles = append(backendFiles, p)
		case p == n.Files.Agent || slices.Contains(n.Files.AgentEnv, p):
			agentFiles = append(agentFiles, p)
		}
	}
	before, after := bridgeAddresses(dropInBefore), bridgeAddresses(dropInAfter)
	var released []string
	for _, a := range before {
		if !slices.Contains(after, a) {
			released = append(released, a)
		}
	}
	var out []Step
	backend := Step{Action: RestartBackend, Files: backendFiles, Why: "sensu-backend reads " + strings.Join(backendFiles, ", ") + " only at start"}
	proxy := Step{Action: ReloadProxy, Take: after, Release: released}
	switch {
	case !bytes.Equal(dropInBefore, dropInAfter) && len(after) == 0:
		proxy.Why = "the proxy lets go of " + strings.Join(before, ", ") + " before sensu-backend listens there again"
		out = append(out, proxy)
		if len(backendFiles) > 0 {
			out = append(out, backend)
		}
	default:
		if len(backendFiles) > 0 {
			if len(before) == 0 && len(after) > 0 {
				backend.Why = "sensu-backend moves to its loopback ports and frees the public ones"
			}
			out = append(out, backend)
		}
		if !bytes.Equal(dropInBefore, dropInAfter) {
			proxy.Why = "the proxy serves " + strings.Join(after, ", ") + " from the bridge's listeners"
			out = append(out, proxy)
		}
	}
	if len(agentFiles) > 0 {
		out = append(out, Step{Action: RestartAgent, Files: agentFiles,
			Why: "sensu-agent reads " + strings.Join(agentFiles, ", ") + " only at start (it dies on SIGHUP)"})
	}
	return out
}

// bridgeAddresses are the public addresses a drop-in's listeners hold,
// as a local probe dials them (a wildcard host is 127.0.0.1).
func bridgeAddresses(dropIn []byte) []string {
	if dropIn == nil {
		return nil
	}
	var f dropInFile
	if err := yaml.Unmarshal(dropIn, &f); err != nil {
		return nil
	}
	var out []string
	for _, l := range f.Listeners {
		if l.Mode == "originate" {
			continue // plaintext in (phase 4's uplink for the local agent): the agent's own gate proves it
		}
		host, port, err := net.SplitHostPort(l.Listen)
		if err != nil {
			continue
		}
		switch strings.Trim(host, "[]") {
		case "", "::", "0.0.0.0":
			host = "127.0.0.1"
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out
}

// run does each step in order through o.Services, logging each; the
// first failure stops it. On a cluster member (o.Member) the backend
// restarts as the member's turn in the cluster. Without Services it does
// nothing and returns the steps as what is left to do.
func (o Options) run(ctx context.Context, n *Node, steps []Step, res *Result) error {
	if o.Services == nil {
		res.Todo = append(res.Todo, steps...)
		return nil
	}
	if o.Member != nil && slices.ContainsFunc(steps, func(s Step) bool { return s.Action == RestartBackend }) {
		// The member's turn starts before its first step: a port the
		// daemon lets go must not wait on another member's restart.
		o.log(res, "waiting for this member's turn (the cluster's restart lock)")
		held, done, err := o.Member.Cluster.Turn(ctx)
		if err != nil {
			return fmt.Errorf("this member's turn: %w", err)
		}
		defer done()
		ctx = held
	}
	for _, s := range steps {
		o.log(res, "doing: "+s.String())
		do := o.Services.Do
		if s.Action == RestartBackend && o.Member != nil {
			do = func(ctx context.Context, s Step) error { return o.Member.restartBackend(ctx, n, o.Services, s) }
		}
		if err := do(ctx, s); err != nil {
			o.log(res, "failed: "+s.Action.String()+": "+err.Error())
			return fmt.Errorf("%s: %w", s.Action, err)
		}
		o.log(res, "done: "+s.Action.String())
	}
	return nil
}

func (o Options) log(res *Result, line string) {
	res.Log = append(res.Log, line)
	if o.Progress != nil {
		o.Progress(line)
	}
}
