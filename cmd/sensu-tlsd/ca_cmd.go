package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

func newCACmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the local certificate authority",
	}
	var dir string
	init := &cobra.Command{
		Use:   "init",
		Short: "Create a CA (ca.pem, ca-key.pem 0600) in the state directory or --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			if dir == "" {
				dir = c.CA.Dir
			}
			authority, err := ca.Init(dir, ca.InitOptions{CommonName: c.CA.CommonName, KeyType: c.CA.KeyType, Lifetime: c.CA.Lifetime})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created CA %q (%s, valid until %s)\n  %s/%s\n  %s/%s (private, 0600)\n",
				authority.Cert.Subject.CommonName, pki.KeyDescription(authority.Cert.PublicKey),
				authority.Cert.NotAfter.UTC().Format(time.DateOnly), dir, ca.CertFileName, dir, ca.KeyFileName)
			return nil
		},
	}
	init.Flags().StringVar(&dir, "dir", "", "directory for ca.pem and ca-key.pem (default: config ca.dir, which defaults to the state directory)")
	cmd.AddCommand(init)
	return cmd
}
