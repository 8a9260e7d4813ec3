package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/rotate/inventory"
)

// sourceFlags select which certificates status and check look at.
type sourceFlags struct {
	backendConfig, agentConfig, key, ca string
}

func (s *sourceFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.backendConfig, "backend-config", "", "also inspect every certificate a Sensu backend.yml points at")
	f.StringVar(&s.agentConfig, "agent-config", "", "also inspect every certificate a Sensu agent.yml points at")
	f.StringVar(&s.key, "key", "", "private key of the one certificate file given (default: found beside it, NAME-key.pem)")
	f.StringVar(&s.ca, "ca", "", "CA bundle to verify certificate files given as arguments against")
}

// gather lists certificates from the config, the Sensu configs and files.
func (s *sourceFlags) gather(a *app, files []string) ([]inventory.Source, error) {
	c, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	sources := inventory.FromConfig(c)
	if s.backendConfig != "" {
		more, err := inventory.FromBackendConfig(s.backendConfig)
		if err != nil {
			return nil, err
		}
		sources = append(sources, more...)
	}
	if s.agentConfig != "" {
		more, err := inventory.FromAgentConfig(s.agentConfig)
		if err != nil {
			return nil, err
		}
		sources = append(sources, more...)
	}
	more, err := inventory.FromFiles(files, s.key, s.ca)
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
key matches, chain verifies to the CA, SANs cover the hosts, usages fit the
profile, validity, key strength, and private key file modes.
Exits 1 when any certificate has a problem.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sources, err := src.gather(a, args)
			if err != nil {
				return err
			}
			entries := inventory.Inspect(sources, time.Now())
			w := cmd.OutOrStdout()
			if asJSON {
				err = inventory.WriteJSON(w, entries)
			} else {
				err = inventory.WriteTable(w, entries)
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
			if len(entries) == 0 && !asJSON {
				fmt.Fprintln(w, "no certificates: give a config with certificates, --backend-config/--agent-config, or certificate files")
			}
			return nil
		},
	}
	src.bind(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
