package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect sensu-tlsd's own configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file (strict: unknown keys are errors) without touching anything",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := a.configFile
			if len(args) == 1 {
				file = args[0]
			}
			if file == "" {
				file = config.DefaultFile
			}
			c, err := config.Load(config.LoadOptions{File: file, Flags: a.root.PersistentFlags()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (%d certificates, %d services, %d listeners)\n",
				c.File, len(c.Certificates), len(c.Services), len(c.Listeners))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "keys",
		Short: "List every config key with its flag, environment variable and current value",
		Long: `List every config key with the flag and environment variable that can also
set it, and the value in effect (flag > env > file > default).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tFLAG\tENV\tVALUE")
			for _, k := range config.Keys() {
				fmt.Fprintf(tw, "%s\t--%s\t%s\t%s\n", k.Path, k.Flag, k.Env, k.Value(c))
			}
			return tw.Flush()
		},
	})
	return cmd
}
