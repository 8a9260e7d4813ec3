package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/internal/enrol"
)

func newAgentsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List, approve and deny agents enrolling with this backend's enrol-server",
		Long: `Agents enrol with the backends' enrol-server (enrol-server in the config):
names matching enrol-server.autosign are signed at once, others wait for
approval, and a second key for a bound name waits too. These commands work
on the store enrol-server.store names: this backend's file, or the
cluster's etcd, where every backend sees the same agents.`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List pending, approved, signed and denied agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := a.enrolStore()
			if err != nil {
				return err
			}
			defer store.Close()
			recs, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			return enrol.WriteList(cmd.OutOrStdout(), recs, asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	decide := func(use, short string, approve bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, err := a.enrolStore()
				if err != nil {
					return err
				}
				defer store.Close()
				rec, err := enrol.SetApproval(cmd.Context(), store, args[0], approve, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", rec.Name, rec.State)
				return nil
			},
		}
	}
	cmd.AddCommand(list,
		decide("approve", "Let the agent's waiting key be signed at its next request", true),
		decide("deny", "Refuse every request for the agent until it is approved", false))
	return cmd
}

// enrolStore opens the enrolment store the config names.
func (a *app) enrolStore() (enrol.Store, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	return enrol.OpenStore(cfg)
}
