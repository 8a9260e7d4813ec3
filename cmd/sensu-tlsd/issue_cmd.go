package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/pki"
)

func newIssueCmd(a *app) *cobra.Command {
	var (
		profile, commonName, keyType, out, lifetime string
		hosts                                       []string
		all                                         bool
	)
	cmd := &cobra.Command{
		Use:   "issue NAME --profile P [--hosts h1,h2,10.0.0.5] | issue --all",
		Short: "Issue a certificate from the local CA (NAME.pem, NAME-key.pem, ca.pem)",
		Long: `Issue one certificate from the local CA, or with --all every local-ca
certificate the config declares. Profiles follow the Sensu security guide:
  backend      API + agent websocket server; also clientAuth (reused for etcd)
  etcd-peer    etcd peer/client traffic: serverAuth + clientAuth
  etcd-client  clientAuth only; needs no hosts
  agent        clientAuth; CN = agent name (bound to a Sensu user)
  server       generic serverAuth
  client       generic clientAuth
Files are named like cfssljson's: NAME.pem, NAME-key.pem (0600), ca.pem.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return errors.New("give either NAME or --all, not both")
			}
			if !all && len(args) != 1 {
				return errors.New("give the certificate NAME (or --all to issue every certificate in the config)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			authority, err := loadCA(c)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if all {
				return issueAll(w, c, authority)
			}
			if profile == "" {
				return errors.New("--profile is required: one of backend, etcd-peer, etcd-client, agent, server, client")
			}
			p, err := pki.ParseProfile(profile)
			if err != nil {
				return fmt.Errorf("--profile: %w", err)
			}
			d := c.Defaults.Lifetime
			if lifetime != "" {
				if d, err = config.ParseDuration(lifetime); err != nil {
					return fmt.Errorf("--lifetime: %w", err)
				}
			}
			if keyType == "" {
				keyType = c.Defaults.KeyType
			}
			if out == "" {
				out = c.Defaults.Dir
			}
			is, err := authority.Issue(ca.Request{Name: args[0], Profile: p, CommonName: commonName, Hosts: hosts, KeyType: keyType, Lifetime: d})
			if err != nil {
				return err
			}
			paths, err := ca.WriteFiles(out, args[0], is)
			if err != nil {
				return err
			}
			printIssued(w, args[0], p, is, paths)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&profile, "profile", "", "backend, etcd-peer, etcd-client, agent, server or client")
	f.StringSliceVar(&hosts, "hosts", nil, "DNS names and IPs for the SANs, comma-separated (serving profiles default to the CN)")
	f.StringVar(&commonName, "common-name", "", "subject CN (default NAME)")
	f.StringVar(&keyType, "key-type", "", "ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	f.StringVar(&lifetime, "lifetime", "", "validity, e.g. 90d or 2160h (default: config defaults.lifetime, 90d)")
	f.StringVar(&out, "out", "", "output directory (default: config defaults.dir, which defaults to the state directory)")
	f.BoolVar(&all, "all", false, "issue every local-ca certificate declared in the config, to its configured paths")
	return cmd
}

// issueAll issues every local-ca certificate of the config to its configured
// paths. Certificates renewed by another issuer are skipped with a note.
func issueAll(w io.Writer, c *config.Config, authority *ca.CA) error {
	if len(c.Certificates) == 0 {
		return fmt.Errorf("%s declares no certificates: add a certificates list (see examples/quickstart.yml)", configName(c))
	}
	for _, cert := range c.Certificates {
		if cert.Issuer.Type != config.IssuerLocalCA {
			fmt.Fprintf(w, "skipped %s: renewed by issuer %s, not the local CA\n", cert.Name, cert.Issuer.Type)
			continue
		}
		p := pki.Profile(cert.Profile)
		is, err := authority.Issue(ca.Request{Name: cert.Name, Profile: p, CommonName: cert.CommonName, Hosts: cert.Hosts, KeyType: cert.KeyType, Lifetime: cert.Lifetime})
		if err != nil {
			return fmt.Errorf("certificate %s: %w", cert.Name, err)
		}
		paths := ca.Paths{Cert: cert.CertFile, Key: cert.KeyFile, CA: cert.CAFile}
		if err := ca.WritePaths(paths, is, ca.FileOptions{KeyMode: os.FileMode(cert.KeyMode), CertMode: os.FileMode(cert.CertMode), Owner: cert.Owner, Group: cert.Group}); err != nil {
			return fmt.Errorf("certificate %s: %w", cert.Name, err)
		}
		printIssued(w, cert.Name, p, is, paths)
	}
	return nil
}

func printIssued(w io.Writer, name string, p pki.Profile, is *ca.Issued, paths ca.Paths) {
	sans := pki.SANs(is.Cert)
	fmt.Fprintf(w, "issued %s (profile %s, CN %s, SANs %v, %s, expires %s)\n  %s\n  %s\n  %s\n",
		name, p, is.Cert.Subject.CommonName, sans, pki.KeyDescription(is.Cert.PublicKey),
		is.Cert.NotAfter.UTC().Format(time.RFC3339), paths.Cert, paths.Key, paths.CA)
}

func configName(c *config.Config) string {
	if c.File == "" {
		return "the configuration (no config file was found at " + filepath.Clean(config.DefaultFile) + ")"
	}
	return c.File
}
