package agentcutover

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// switchAgent rewrites the node's files to wss:// with the CA, restarts
// sensu-agent and waits for it to connect; on failure the files go back
// and sensu-agent restarts on them.
func (f *Follower) switchAgent(ctx context.Context, s Settings, node *sensu.Node, urls []string) Status {
	before := map[string][]byte{}
	var written []string
	restore := func() error {
		var errs []string
		for _, p := range written {
			if err := sensu.WriteNew(p, before[p]); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", p, err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("restoring %s", strings.Join(errs, "; "))
		}
		return nil
	}
	for _, p := range node.Files {
		src, err := os.ReadFile(p)
		if err != nil {
			rerr := restore()
			return Status{State: StateRefused, Detail: err.Error() + suffix(rerr)}
		}
		out, err := edit(node, p, src, s.Trust.CAFile)
		if err == nil && out != nil {
			before[p] = src
			_, err = sensu.WriteFile(p, out)
			if err == nil {
				written = append(written, p)
			}
		}
		if err != nil {
			rerr := restore()
			return Status{State: StateRefused, Detail: fmt.Sprintf("switching %s to wss://: %v%s", p, err, suffix(rerr))}
		}
	}
	switched, err := checkSwitched(s, node.Files[0])
	if err != nil {
		rerr := restore()
		return Status{State: StateRefused, Detail: err.Error() + suffix(rerr)}
	}
	f.log.Info("agent cutover: every backend serves verified TLS; agent.yml switched to wss://, restarting sensu-agent",
		"backends", strings.Join(urls, " "), "files", strings.Join(written, " "), "ca-file", s.Trust.CAFile)
	started := time.Now()
	err = s.Restarter.Restart(ctx, switched.AgentHealthURL(), s.ReconnectTimeout)
	if err == nil {
		f.rollbacks = 0
		return Status{State: StateSwitched, Switched: time.Now().UTC(),
			Detail: fmt.Sprintf("sensu-agent reconnected over wss:// %s after the restart", time.Since(started).Round(time.Millisecond))}
	}
	// Going back finishes even when the daemon is stopping, so the agent
	// is not left on files it was not restarted with.
	rerr := restore()
	back := s.Restarter.Restart(context.WithoutCancel(ctx), node.AgentHealthURL(), s.ReconnectTimeout)
	detail := fmt.Sprintf("sensu-agent did not reconnect over wss:// (%v); %s put back%s", err, strings.Join(written, ", "), suffix(rerr))
	if back != nil {
		detail += fmt.Sprintf(", and it did not reconnect on them either: %v", back)
	} else {
		detail += " and it reconnected on them"
	}
	f.rollbacks++
	return Status{State: StateRolledBack, Detail: detail + fmt.Sprintf("; trying again in %s", f.retryWait(s))}
}

// edit is path's content switched to wss:// with caFile, nil when nothing
// changes. An environment file only has the settings it already sets
// changed (config/sensu's EnvFile), so agent.yml's members stay in force
// where it sets no backend-url.
func edit(node *sensu.Node, path string, src []byte, caFile string) ([]byte, error) {
	t := sensu.AgentTLS{CAFile: caFile}
	var out []byte
	if path == node.Files[0] {
		d, err := sensu.Parse(path, src)
		if err != nil {
			return nil, err
		}
		sensu.ApplyAgentTLS(d, t)
		if out, err = d.Bytes(); err != nil {
			return nil, err
		}
	} else {
		e, err := sensu.ParseEnvFile(path, src, sensu.Agent)
		if err != nil {
			return nil, err
		}
		sensu.ApplyAgentTLS(e, t)
		out = e.Bytes()
	}
	if string(out) == string(src) {
		return nil, nil
	}
	return out, nil
}

// checkSwitched reads the files again as sensu-agent will (every backend
// wss://, the CA file trusted, verification on) and returns what it read.
func checkSwitched(s Settings, yml string) (*sensu.Node, error) {
	n, err := sensu.ReadNode(sensu.Agent, s.AgentConfig, s.AgentEnvFiles)
	if err != nil {
		return nil, err
	}
	if plain := plaintext(backendURLs(n)); len(plain) > 0 {
		return nil, fmt.Errorf("after the edit, sensu-agent would still dial %s (set by %s); the edit was undone", strings.Join(plain, " "), n.Where("backend-url"))
	}
	if ca := n.Str("trusted-ca-file"); !sensu.SameFile(ca, s.Trust.CAFile) {
		return nil, fmt.Errorf("after the edit, trusted-ca-file is %q (set by %s), not %s; the edit was undone", ca, n.Where("trusted-ca-file"), s.Trust.CAFile)
	}
	if v := n.Str("insecure-skip-tls-verify"); v == "true" {
		return nil, fmt.Errorf("after the edit of %s, insecure-skip-tls-verify is still true (set by %s); the edit was undone", yml, n.Where("insecure-skip-tls-verify"))
	}
	return n, nil
}

func suffix(err error) string {
	if err != nil {
		return "; " + err.Error()
	}
	return ""
}
