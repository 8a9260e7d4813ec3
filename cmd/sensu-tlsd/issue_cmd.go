package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/daemon"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/logging"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

func newIssueCmd(a *app) *cobra.Command {
	var (
		profile, commonName, keyType, out, lifetime, namespace string
		hosts                                                  []string
		all                                                    bool
	)
	cmd := &cobra.Command{
		Use:   "issue NAME --profile P [--hosts h1,h2,10.0.0.5] | issue --all",
		Short: "Issue a certificate from the local CA (NAME.pem, NAME-key.pem, ca.pem)",
		Long: `Issue one certificate from the local CA, or with --all every certificate
the config declares, each through its issuer. Profiles follow the Sensu security guide:
  backend      API + agent websocket server; also clientAuth (reused for etcd)
  etcd-peer    etcd peer/client traffic: serverAuth + clientAuth
  etcd-client  clientAuth only; needs no hosts
  agent        clientAuth; CN = agent name (bound to a Sensu user)
  server       generic serverAuth
  client       generic clientAuth
Files are named like cfssljson's: NAME.pem, NAME-key.pem (0600), ca.pem.
--all issues, validates and installs each set the way run does (creating
the CA first when ca.create is true; running the exec command; ordering
from the ACME directory; for issuer files, validating what the tool that
owns them wrote), so a daemon started afterwards takes them over. It exits
non-zero when any certificate was not produced, naming each and why. The
per-certificate flags do not apply to it.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return errors.New("give either NAME or --all, not both")
			}
			if !all && len(args) != 1 {
				return errors.New("give the certificate NAME (or --all to issue every certificate in the config)")
			}
			if all {
				for _, f := range []string{"profile", "hosts", "out", "common-name", "key-type", "lifetime"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s applies to one certificate NAME, not --all: --all issues what the config declares, so set %s there", f, f)
					}
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if all {
				return issueAll(cmd.Context(), w, c)
			}
			name := args[0]
			if err := config.ValidName(name); err != nil {
				return err
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
				if d <= 0 {
					return fmt.Errorf("--lifetime %s: a certificate must be valid for some time: give a positive duration such as 90d or 2160h", lifetime)
				}
			}
			if keyType == "" {
				keyType = c.Defaults.KeyType
			}
			if out == "" {
				out = c.Defaults.Dir
			}
			caKey := filepath.Join(c.CA.Dir, ca.KeyFileName)
			if found, changed, err := pki.TightenKeyMode(caKey, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			} else if changed {
				fmt.Fprintf(cmd.ErrOrStderr(), "sensu-tlsd: %s had mode %04o, readable by every user; changed it to 0600\n", caKey, found)
			}
			authority, err := ca.Load(c.CA.Dir)
			if err != nil {
				return err
			}
			is, err := authority.Issue(ca.Request{Name: name, Profile: p, CommonName: commonName, Hosts: hosts, KeyType: keyType, Lifetime: d, Namespace: namespace})
			if err != nil {
				return err
			}
			paths, err := ca.WriteFiles(out, name, is)
			if err != nil {
				return err
			}
			printIssued(w, "issued", name, config.IssuerLocalCA, p, is.Cert, paths.Cert, paths.Key, paths.CA)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&profile, "profile", "", "backend, etcd-peer, etcd-client, agent, server or client")
	f.StringSliceVar(&hosts, "hosts", nil, "DNS names and IPs for the SANs, comma-separated (serving profiles default to the CN)")
	f.StringVar(&commonName, "common-name", "", "subject CN (default NAME)")
	f.StringVar(&namespace, "namespace", "", "profile agent: add the URI SAN sensu://NAMESPACE/CN, which a proxy listener with agent-identity uri binds")
	f.StringVar(&keyType, "key-type", "", "ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	f.StringVar(&lifetime, "lifetime", "", "validity, e.g. 90d or 2160h (default: config defaults.lifetime, 90d)")
	f.StringVar(&out, "out", "", "output directory (default: config defaults.dir, which defaults to the state directory)")
	f.BoolVar(&all, "all", false, "issue every certificate declared in the config through its issuer, to its configured paths")
	return cmd
}

// issueAll produces every certificate of the config through the daemon's
// own path (plan, issuer, validation, installer), so the CA is created
// when ca.create says so and run later adopts the result. A certificate of
// issuer files is validated as written by the tool that owns it. Every
// certificate not in place at the end is an error, so the exit status says
// whether the whole set was produced.
func issueAll(ctx context.Context, w io.Writer, c *config.Config) error {
	if len(c.Certificates) == 0 {
		return fmt.Errorf("%s declares no certificates: add a certificates list (see examples/quickstart.yml)", configName(c))
	}
	plans, err := rotate.Plans(c)
	if err != nil {
		return err
	}
	// Warnings and errors only: each issued set gets its own line below.
	level := new(slog.LevelVar)
	level.Set(max(daemon.ParseLevel(c.LogLevel), slog.LevelWarn))
	mgr := rotate.NewManager(&event.Bus{}, rotate.NewMetrics(), logging.New(os.Stderr, c.LogFormat, level))
	var errs []error
	for _, p := range plans {
		// Files another tool wrote are taken as they are: forcing would
		// ask that tool for a new set, which sensu-tlsd cannot do.
		force := p.Issuer.Type != config.IssuerFiles
		if _, err := mgr.RenewOnce(ctx, p, rotate.RenewOptions{Force: force}); err != nil {
			errs = append(errs, fmt.Errorf("certificate %s (issuer %s): not produced: %w", p.Name, p.Issuer.Type, err))
			continue
		}
		certs, err := pki.ReadCertificates(p.Paths.Cert)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate %s: installed, but reading it back: %w", p.Name, err))
			continue
		}
		verb := "issued"
		if p.Issuer.Type == config.IssuerFiles {
			verb = "validated" // another tool wrote it; sensu-tlsd only follows
		}
		printIssued(w, verb, p.Name, p.Issuer.Type, p.Profile, certs[0], p.Paths.Cert, p.Paths.Key, p.Paths.CA)
		if p.HostsFrom != "" {
			fmt.Fprintf(w, "  hosts read from %s (the certificate sets none)\n", p.HostsFrom)
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d certificates were not produced", len(errs), len(plans)))
	}
	return errors.Join(errs...)
}

// printIssued reports a certificate set in place: verb is issued, or
// validated for one another tool wrote.
func printIssued(w io.Writer, verb, name, issuer string, p pki.Profile, cert *x509.Certificate, certFile, keyFile, caFile string) {
	fmt.Fprintf(w, "%s %s (issuer %s, profile %s, CN %s, SANs %v, %s, expires %s)\n  %s\n  %s\n  %s\n",
		verb, name, issuer, p, cert.Subject.CommonName, pki.SANs(cert), pki.KeyDescription(cert.PublicKey),
		cert.NotAfter.UTC().Format(time.RFC3339), certFile, keyFile, caFile)
}

func configName(c *config.Config) string {
	if c.File == "" {
		return "the configuration (no config file was found at " + filepath.Clean(config.DefaultFile) + ")"
	}
	return c.File
}
