package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/agentcutover"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/inventory"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// sourceFlags select which certificates status and check look at.
type sourceFlags struct {
	backendConfig, agentConfig, key, ca, profile string
	hosts                                        []string
}

func (s *sourceFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.backendConfig, "backend-config", "", "also inspect every certificate a Sensu backend.yml points at (with sensu.backend-env-files over it)")
	f.StringVar(&s.agentConfig, "agent-config", "", "also inspect every certificate a Sensu agent.yml points at (with sensu.agent-env-files over it)")
	f.StringVar(&s.key, "key", "", "private key of the one certificate file given (default: found beside it, NAME-key.pem)")
	f.StringVar(&s.ca, "ca", "", "CA bundle to verify certificate files given as arguments against")
	f.StringVar(&s.profile, "profile", "", "what the certificate files given are for (backend, etcd-peer, etcd-client, agent, server, client): their usages and SANs are checked as the daemon does (default: shown, not checked)")
	f.StringSliceVar(&s.hosts, "hosts", nil, "DNS names and IPs the certificate files given must cover, comma-separated")
}

// gather lists certificates from the config, the Sensu configs and files.
func (s *sourceFlags) gather(c *config.Config, files []string) ([]inventory.Source, error) {
	sources := inventory.FromConfig(c)
	if s.backendConfig != "" {
		more, err := inventory.FromBackendConfig(s.backendConfig, sensu.EnvFilesOf(sensu.Backend, c.Sensu.BackendEnvFiles))
		if err != nil {
			return nil, err
		}
		sources = append(sources, more...)
	}
	if s.agentConfig != "" {
		more, err := inventory.FromAgentConfig(s.agentConfig, sensu.EnvFilesOf(sensu.Agent, c.Sensu.AgentEnvFiles))
		if err != nil {
			return nil, err
		}
		sources = append(sources, more...)
	}
	var profile pki.Profile
	if s.profile != "" {
		p, err := pki.ParseProfile(s.profile)
		if err != nil {
			return nil, fmt.Errorf("--profile: %w", err)
		}
		profile = p
	}
	for _, h := range s.hosts {
		if err := pki.CheckHost(h); err != nil {
			return nil, fmt.Errorf("--hosts: %w", err)
		}
	}
	if (profile != "" || len(s.hosts) > 0) && len(files) == 0 {
		return nil, errors.New("--profile and --hosts apply to certificate files given as arguments; the config already says what its certificates are for")
	}
	more, err := inventory.FromFiles(files, s.key, s.ca, profile, s.hosts)
	if err != nil {
		return nil, err
	}
	return append(sources, more...), nil
}

func newStatusCmd(a *app) *cobra.Command {
	var (
		src    sourceFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [CERT-FILE...]",
		Short: "Show every certificate Sensu uses, with expiry and checks, in one table",
		Long: `Show every managed certificate (from the config), every certificate a Sensu
backend.yml/agent.yml points at (--backend-config, --agent-config) and any
certificate files given, with CN, SANs, issuer, serial, expiry, and checks:
key matches, chain verifies to the CA, the chain holds only what leads to
the CA, SANs cover the hosts, usages fit the profile, validity, key
strength, and private key file modes. Certificate files given as arguments
are checked for usages and SANs with --profile (and --hosts); without it
their usages and SANs are shown on a "?" line for you to judge.
Exits 1 when any certificate has a problem.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			sources, err := src.gather(c, args)
			if err != nil {
				return err
			}
			now := time.Now()
			entries := inventory.Inspect(sources, now)
			states, err := certstate.ReadAll(c.StateDir)
			if err != nil {
				return err
			}
			inventory.AttachState(entries, states)
			report := inventory.Report{Certificates: entries}
			if agentsWanted(c) {
				report.Agents, err = fetchAgents(c.MetricsAddress)
				if err != nil {
					report.AgentsError = err.Error()
				}
			}
			if c.AgentCutover.Enabled {
				st, err := agentcutover.ReadStatus(agentcutover.StateFile(c.StateDir))
				if err != nil {
					return err
				}
				if st.State != "" {
					report.AgentCutover = &inventory.AgentCutover{State: string(st.State), Detail: st.Detail, Probed: st.Probed, Switched: st.Switched}
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				err = inventory.WriteJSON(w, report)
			} else {
				err = writeStatus(w, report, now)
			}
			if err != nil {
				return err
			}
			bad := 0
			for _, e := range entries {
				if !e.OK() {
					bad++
				}
			}
			if bad > 0 {
				return exitError{1, fmt.Sprintf("%d of %d certificates have problems", bad, len(entries))}
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func writeStatus(w io.Writer, r inventory.Report, now time.Time) error {
	if len(r.Certificates) == 0 {
		fmt.Fprintln(w, "no certificates: give a config with certificates, --backend-config/--agent-config, or certificate files")
	} else if err := inventory.WriteTable(w, r.Certificates, now); err != nil {
		return err
	}
	if r.AgentCutover != nil {
		fmt.Fprintln(w)
		if err := inventory.WriteAgentCutover(w, *r.AgentCutover, now); err != nil {
			return err
		}
	}
	switch {
	case r.AgentsError != "":
		_, err := fmt.Fprintf(w, "\nagents: %s\n", r.AgentsError)
		return err
	case r.Agents != nil:
		fmt.Fprintln(w)
		return inventory.WriteAgents(w, r.Agents, now)
	}
	return nil
}

// agentsWanted: only a daemon with proxy listeners (its own or the
// cutover's drop-ins) has agents to list.
func agentsWanted(c *config.Config) bool {
	if c.MetricsAddress == "" {
		return false
	}
	dropIns, err := migrate.LoadDropIns(c.StateDir)
	return len(c.Listeners) > 0 || (err == nil && len(dropIns) > 0)
}

// fetchAgents asks the running daemon which agents its proxy has seen.
func fetchAgents(addr string) ([]inventory.Agent, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/agents")
	if err != nil {
		return nil, fmt.Errorf("the daemon at %s did not answer (is sensu-tlsd run running with this config?): %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon at %s answered /agents with %s", addr, resp.Status)
	}
	agents, err := inventory.DecodeAgents(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("the daemon at %s sent unreadable agents: %v", addr, err)
	}
	return agents, nil
}
