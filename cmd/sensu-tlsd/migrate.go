package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/migrate"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/sensuevent"
)

// migrateFlags are the options every migrate subcommand shares.
type migrateFlags struct {
	files           sensu.Files
	user            string
	refusePlaintext bool
	bridge          migrate.BridgePorts
	// What apply and rollback do beyond the files.
	printOnly bool
	tlsdUnit  string
	tlsdSvc   string
	force     bool
	window    time.Duration
}

func (f *migrateFlags) bind(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.files.Backend, "backend-config", "", "sensu-backend config (default: sensu.backend-config, else "+sensu.DefaultBackendConfig+" if it exists)")
	fs.StringVar(&f.files.Agent, "agent-config", "", "sensu-agent config (default: sensu.agent-config, else "+sensu.DefaultAgentConfig+" if it exists)")
	fs.StringSliceVar(&f.files.BackendEnv, "backend-env", nil, "sensu-backend environment files (default: sensu.backend-env-files, else /etc/default/sensu-backend, /etc/sysconfig/sensu-backend if they exist)")
	fs.StringSliceVar(&f.files.AgentEnv, "agent-env", nil, "sensu-agent environment files (default: sensu.agent-env-files, else /etc/default/sensu-agent, /etc/sysconfig/sensu-agent if they exist)")
	fs.StringVar(&f.user, "user", "sensu", "account Sensu runs as, for the readability check of the files a phase points at")
}

// node describes this node; --refuse-plaintext counts only when given, so
// a command without it keeps the bridge's recorded choice.
func (f *migrateFlags) node(a *app, cmd *cobra.Command) (*migrate.Node, error) {
	n, _, err := f.nodeAndConfig(a, cmd)
	return n, err
}

// nodeAndConfig is node with the configuration it was made from.
func (f *migrateFlags) nodeAndConfig(a *app, cmd *cobra.Command) (*migrate.Node, *config.Config, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	n, err := migrate.NodeFromConfig(cfg, f.files)
	if err != nil {
		return nil, nil, err
	}
	n.LintUser = f.user
	if fl := cmd.Flags().Lookup("refuse-plaintext"); fl != nil && fl.Changed {
		n.RefusePlaintext = &f.refusePlaintext
	}
	for _, name := range []string{"bridge-api-port", "bridge-agent-port", "bridge-dashboard-port"} {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			n.BridgePorts = &f.bridge
		}
	}
	return n, cfg, nil
}

// bindBridge adds the phase 1 choices: plaintext or not, and the loopback
// ports the backend moves to.
func (f *migrateFlags) bindBridge(cmd *cobra.Command) {
	f.bindRefusePlaintext(cmd)
	d := migrate.DefaultBridgePorts
	f.bridge = d
	fs := cmd.Flags()
	fs.IntVar(&f.bridge.API, "bridge-api-port", d.API, "phase 1: loopback port sensu-backend's API moves to (remembered until phase 1 is rolled back)")
	fs.IntVar(&f.bridge.Agent, "bridge-agent-port", d.Agent, "phase 1: loopback port sensu-backend's agent websocket moves to")
	fs.IntVar(&f.bridge.Dashboard, "bridge-dashboard-port", d.Dashboard, "phase 1: loopback port of the dashboard (commercial build only: the open-source build serves none)")
}

// bindAct adds what apply and rollback do after writing the files.
func (f *migrateFlags) bindAct(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&f.printOnly, "print-only", false, "write the files and print the restarts and reloads in the order to do them, instead of doing them (for configuration management that restarts services)")
	fs.StringVar(&f.tlsdUnit, "tlsd-unit", "sensu-tlsd.service", "systemd unit of the sensu-tlsd daemon whose proxy serves the bridge")
	fs.StringVar(&f.tlsdSvc, "tlsd-service", "", "services entry of the config that reloads the sensu-tlsd daemon (signal HUP or a command), instead of a systemd reload of --tlsd-unit: for a daemon systemd does not run")
}

// options builds what apply and rollback act with: this node's daemon as
// the source of agent sightings and, when act, the daemon's services.
func (f *migrateFlags) options(cfg *config.Config, cmd *cobra.Command, n *migrate.Node, act bool) (migrate.Options, func(), error) {
	out := cmd.OutOrStdout()
	o := migrate.Options{Window: f.window, CutOff: f.force, Progress: func(line string) { fmt.Fprintln(out, line) }}
	local := migrate.LocalAgents{MetricsAddress: cfg.MetricsAddress, ConfigFile: orDefault(cfg.File, config.DefaultFile)}
	o.Agents = local
	member, err := migrate.OpenMember(cmd.Context(), n)
	if err != nil {
		return o, nil, err
	}
	done := func() {}
	if member != nil {
		// Every member's bridge counts, and the backend restarts as this
		// member's turn in the cluster.
		o.Agents = migrate.AllAgents{local, migrate.ClusterAgents{Cluster: member.Cluster, Except: member.Name}}
		o.Member = member
		done = func() { member.Cluster.Close() }
	}
	if !act {
		return o, done, nil
	}
	svc, err := migrate.NewSystemdServices(cfg, n, f.tlsdUnit, f.tlsdSvc, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
	if err != nil {
		done()
		return o, nil, fmt.Errorf("%s: %w", orDefault(cfg.File, config.DefaultFile), err)
	}
	o.Services = svc
	return o, func() { svc.Close(); done() }, nil
}

func (f *migrateFlags) bindRefusePlaintext(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.refusePlaintext, "refuse-plaintext", false,
		"phase 1: the bridge accepts TLS only (no ws:// agents left); remembered until phase 1 is applied again with --refuse-plaintext=false or rolled back")
}

func newMigrateCmd(a *app) *cobra.Command {
	f := &migrateFlags{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move this node from plaintext to TLS in reversible phases",
		Long: `Phases, each on the nodes it changes:
  1 bridge (backends): the backend moves to loopback ports, sensu-tlsd's proxy
    serves TLS (and ws:// while allowed) on the public ports.
  2 agents (agents): agent.yml switches to wss:// and trusts the CA.
  3 native (backends): the backend serves TLS itself, refuses plaintext,
    etcd serves https and requires client certificates; the bridge ends.
    Refused while the bridges saw agents in plaintext (--force cuts them off).
  4 enforce: agents authenticate by certificate (commercial build with
    sensu.agent-mtls); no effect on the open-source build.
A phase that changes nothing on a node is skipped there. apply and rollback
restart sensu-backend and sensu-agent and reload sensu-tlsd themselves, in
the order that keeps the ports free, and roll a phase back when a health
gate fails; --print-only leaves that to you and prints the order.

On a cluster member (backend.yml's etcd-initial-cluster names more than one
member), run apply on each member in turn: its sensu-backend restart is its
turn through the cluster's etcd, under the cluster's restart lock with
quorum checked, and phase 3 (or its rollback) moves the member's stored
peer URLs to https (or back) while it is stopped. Each member records its
phase (migrate status --cluster), and the agent gate counts every member's
bridge.

The bridge's proxy listeners are written to STATE-DIR/listeners.d/migrate-bridge.yml;
migration state and per-phase backups live in STATE-DIR/migrate/. STATE-DIR is
state-dir from the sensu-tlsd config, or --state-dir (SENSU_TLSD_STATE_DIR);
use the same one for every migrate command and for the daemon.`,
	}
	f.bind(cmd)
	cmd.AddCommand(newMigratePlanCmd(a, f), newMigrateApplyCmd(a, f), newMigrateRollbackCmd(a, f), newMigrateStatusCmd(a, f))
	return cmd
}

func newMigratePlanCmd(a *app, f *migrateFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print every phase with the exact diff of each file and the certificates it needs",
		Long: `Plan prints, for every phase still ahead, the exact diff of each file, the
certificates the phase needs and whether they are ready. It runs the lint
check apply runs, so a phase apply would refuse is shown as refused, and the
command then exits 1. A phase whose certificate the config does not name is an
error naming the key to set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, cfg, err := f.nodeAndConfig(a, cmd)
			if err != nil {
				return err
			}
			// Plan runs apply's agent gate, with no services to act.
			o, done, err := f.options(cfg, cmd, n, false)
			if err != nil {
				return err
			}
			defer done()
			plans, at, err := migrate.Plan(cmd.Context(), n, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "node: %s; at phase %d (%s)\n", roles(n), at, at)
			var refused []string
			for _, sp := range plans {
				printStep(out, sp)
				if sp.Refused != nil || sp.Blocked != nil {
					refused = append(refused, fmt.Sprintf("%d (%s)", sp.Phase, sp.Phase))
				}
			}
			if len(refused) > 0 {
				return fmt.Errorf("plan: apply would refuse phase %s: see the refusals above", strings.Join(refused, ", "))
			}
			return nil
		},
	}
	f.bindBridge(cmd)
	cmd.Flags().DurationVar(&f.window, "plaintext-window", 0, "plaintext sightings older than this do not hold phase 3 back (0: any since the bridges started counting)")
	return cmd
}

func roles(n *migrate.Node) string {
	var r []string
	if n.IsBackend() {
		r = append(r, "backend ("+n.Files.Backend+")")
	}
	if n.IsAgent() {
		r = append(r, "agent ("+n.Files.Agent+")")
	}
	return strings.Join(r, ", ")
}

func printStep(out io.Writer, sp migrate.StepPlan) {
	state := ""
	if sp.Done {
		state = " [done]"
	}
	if sp.Skip != "" {
		fmt.Fprintf(out, "\n== phase %d (%s): skipped here: %s\n", sp.Phase, sp.Phase, sp.Skip)
		return
	}
	fmt.Fprintf(out, "\n== phase %d (%s)%s: %s\n", sp.Phase, sp.Phase, state, sp.Summary)
	for _, need := range sp.Needs {
		status := "ok"
		if err := need.Check(); err != nil {
			status = "NOT READY: " + err.Error()
		}
		fmt.Fprintf(out, "needs %s (%s): %s [%s]\n", need.What, need.Why, strings.Join(nonEmpty(need.Files), ", "), status)
	}
	if !sp.Done && len(sp.Files) == 0 {
		fmt.Fprintln(out, "no file changes on this node")
	}
	for _, fd := range sp.Files {
		fmt.Fprint(out, fd.Diff)
	}
	if sp.Refused != nil {
		fmt.Fprintf(out, "REFUSED: apply would not write this phase: %v\n", sp.Refused)
	}
	if sp.Blocked != nil {
		fmt.Fprintf(out, "REFUSED: %v\n", sp.Blocked)
	}
	for i, st := range sp.Steps {
		fmt.Fprintf(out, "then %d. %s\n", i+1, st)
	}
	for _, note := range sp.Notes {
		fmt.Fprintln(out, "note:", note)
	}
}

func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func printResult(out io.Writer, verb string, r *migrate.Result) {
	fmt.Fprintf(out, "%s: phase %d (%s) -> phase %d (%s)\n", verb, r.From, r.From, r.To, r.To)
	if len(r.Files) == 0 {
		fmt.Fprintln(out, "no file changed")
	}
	for _, fd := range r.Files {
		fmt.Fprint(out, fd.Diff)
	}
	for _, note := range r.Notes {
		fmt.Fprintln(out, "note:", note)
	}
	for i, st := range r.Todo {
		fmt.Fprintf(out, "to do (--print-only), in this order: %d. %s\n", i+1, st)
	}
}

func newMigrateApplyCmd(a *app, f *migrateFlags) *cobra.Command {
	var phase int
	cmd := &cobra.Command{
		Use:   "apply --phase N",
		Short: "Apply phase N (the next one, or the current one again) with backups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("phase") {
				return fmt.Errorf("apply: --phase is required (1 bridge, 2 agents, 3 native, 4 enforce; see migrate status)")
			}
			n, cfg, err := f.nodeAndConfig(a, cmd)
			if err != nil {
				return err
			}
			o, done, err := f.options(cfg, cmd, n, !f.printOnly)
			if err != nil {
				return err
			}
			defer done()
			r, err := migrate.Apply(cmd.Context(), n, migrate.Phase(phase), o)
			postCutover(cmd, cfg, migrate.Phase(phase), err)
			if err != nil {
				return err // its steps were printed as they went
			}
			printResult(cmd.OutOrStdout(), "applied", r)
			return nil
		},
	}
	cmd.Flags().IntVar(&phase, "phase", 0, "phase to apply: 1 bridge, 2 agents, 3 native, 4 enforce")
	f.bindBridge(cmd)
	f.bindAct(cmd)
	cmd.Flags().BoolVar(&f.force, "force", false, "apply a phase that ends plaintext although agents were seen in plaintext, cutting them off (they are named)")
	cmd.Flags().DurationVar(&f.window, "plaintext-window", 0, "plaintext sightings older than this do not hold a phase back (0: any since the bridges started counting)")
	return cmd
}

// postCutover tells Sensu, through the local agent, that phase was
// applied or refused (applyErr) when events are on. A post that fails is
// a warning: the files are what counts, and the exit status says it.
func postCutover(cmd *cobra.Command, cfg *config.Config, phase migrate.Phase, applyErr error) {
	if !cfg.Events.Enabled {
		return
	}
	e := sensuevent.CutoverEvent(fmt.Sprintf("%d (%s)", phase, phase), applyErr, cfg.Events.Handlers, time.Now())
	if err := sensuevent.Post(cmd.Context(), sensuevent.Target{URL: cfg.Events.AgentAPIURL, Timeout: cfg.Events.Timeout}, e); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "sensu-tlsd: warning: the Sensu event %s did not reach the agent at %s: %v\n", sensuevent.CutoverCheck, cfg.Events.AgentAPIURL, err)
	}
}

func newMigrateRollbackCmd(a *app, f *migrateFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Return to the previous phase, restoring every file's exact bytes",
		Long: `Rollback restores the bytes every file had before the current phase. A file
edited since the phase wrote it is named and left alone, and nothing is rolled
back, unless --force is given; the edited content is then kept as
FILE.sensu-tlsd.bak.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, cfg, err := f.nodeAndConfig(a, cmd)
			if err != nil {
				return err
			}
			o, done, err := f.options(cfg, cmd, n, !f.printOnly)
			if err != nil {
				return err
			}
			defer done()
			r, err := migrate.Rollback(cmd.Context(), n, force, o)
			if err != nil {
				return err // its steps were printed as they went
			}
			printResult(cmd.OutOrStdout(), "rolled back", r)
			return nil
		},
	}
	f.bindAct(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "roll back files edited since the phase too, keeping the edited content as FILE"+sensu.BackupSuffix)
	return cmd
}

func newMigrateStatusCmd(a *app, f *migrateFlags) *cobra.Command {
	var wholeCluster, asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's phase, drift and next step (--cluster: the whole fleet, as the cluster's etcd sees it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := f.node(a, cmd)
			if err != nil {
				return err
			}
			if asJSON && !wholeCluster {
				return fmt.Errorf("status: --json goes with --cluster (migrate status --cluster --json)")
			}
			if wholeCluster {
				s, err := readClusterStatus(n, clusterStatusTimeout)
				if err != nil {
					return err
				}
				return printClusterStatus(cmd.OutOrStdout(), s, asJSON)
			}
			s, err := migrate.CurrentStatus(n)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "node: %s\nphase: %d (%s)\n", roles(n), s.Phase, s.Phase)
			fmt.Fprintf(out, "bridge listeners: %s\n", map[bool]string{true: "present (" + migrate.DropInPath(n.StateDir) + ")", false: "none"}[s.DropIn])
			if len(s.Drifted) > 0 {
				fmt.Fprintf(out, "drift: %s no longer match phase %d: run migrate apply --phase %d\n", strings.Join(s.Drifted, ", "), s.Phase, s.Phase)
			} else {
				fmt.Fprintln(out, "drift: none")
			}
			fmt.Fprintf(out, "phases on this node: %s\n", migrate.PhaseList(s.Phases))
			printLiveDrift(out, n)
			if s.Next != nil {
				fmt.Fprintf(out, "next: migrate apply --phase %s (%s): %s\n", strconv.Itoa(int(s.Next.Phase)), s.Next.Phase, s.Next.Summary)
			} else {
				fmt.Fprintln(out, "next: none, the cutover is complete")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wholeCluster, "cluster", false, "show every member from the cluster's etcd: members, peer URLs as etcd stores them, leader and quorum, recorded phases, plaintext agents, and live drift of this member against its backend.yml")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --cluster: print JSON")
	return cmd
}
