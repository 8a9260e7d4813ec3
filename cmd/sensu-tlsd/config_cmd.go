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
		Short: "Check a config as run would, without starting or touching anything",
		Long: `Check a config file (FILE, else --config, else SENSU_TLSD_CONFIG, else
` + config.DefaultFile + `) the way run checks it before starting: strict keys and
values, every certificate's plan and issuer, the service actions (presets
refuse what Sensu cannot take, such as SIGHUP to sensu-agent) and the proxy
listeners, built without binding a port. Every problem is reported, not
only the first.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				a.configFile = args[0]
			}
			c, err := a.loadRunConfig()
			if err != nil {
				return err
			}
			if c.File == "" {
				return fmt.Errorf("no config file to validate: %s does not exist; give FILE, --config or SENSU_TLSD_CONFIG", config.DefaultFile)
			}
			if err := checkStartable(c); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (%d certificates, %d services, %d listeners)\n",
				c.File, len(c.Certificates), len(c.Services), len(c.Listeners))
			return nil
		},
	})
	var markdown bool
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List every config key with its flag, environment variable and current value",
		Long: `List every config key with the flag and environment variable that can also
set it, and the value in effect (flag > env > file > default).
--markdown prints the reference of every key instead, the keys of each
certificates, services and listeners entry included, with its type, default
and meaning: it is docs/config.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if markdown {
				return config.WriteReference(cmd.OutOrStdout())
			}
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tFLAG\tENV\tVALUE")
			for _, k := range config.Keys() {
				fmt.Fprintf(tw, "%s\t--%s\t%s\t%s\n", k.Path, k.Flag, k.Env, k.Value(c))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nThe keys of each certificates, services and listeners entry, with types, defaults and meanings:\nsensu-tlsd config keys --markdown (docs/config.md).")
			return nil
		},
	}
	keys.Flags().BoolVar(&markdown, "markdown", false, "print the reference of every key (docs/config.md) as Markdown")
	cmd.AddCommand(keys)
	return cmd
}
