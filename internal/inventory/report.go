package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
)

// Marks make a table readable at a glance.
const (
	markOK   = "✓"
	markWarn = "!"
	markFail = "✗"
	// markUnjudged shows what was seen but not checked.
	markUnjudged = "?"
)

// unjudgedLine shows a certificate's usages and SANs for a person to judge
// when nothing said what it is for.
func unjudgedLine(e Entry) string {
	return fmt.Sprintf("%s: usages %s, SANs %s: not checked, since nothing says what it is for: give --profile (and --hosts), or name it in the config",
		e.Name, strings.Join(e.Usages, ","), dash(sanList(e.SANs)))
}

// WriteTable prints one row per entry, then one line per failed or warned
// check, read error or failing renewal under it, so the fix is next to the
// certificate it concerns.
func WriteTable(w io.Writer, entries []Entry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPATH\tCN\tSANS\tISSUER\tSERIAL\tNOT AFTER\tLEFT\tRENEWS\tCHECKS")
	for _, e := range entries {
		if e.NotAfter.IsZero() {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\t%s unreadable\n", e.Name, e.CertFile, renews(e, now), markFail)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.Name, e.CertFile, e.Subject, dash(sanList(e.SANs)), e.Issuer, e.Serial,
			e.NotAfter.UTC().Format("2006-01-02 15:04"), HumanDuration(e.Left), renews(e, now), marks(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Error != "" {
			fmt.Fprintf(w, "%s %s\n", markFail, describe(e.Name, e.Name, e.Error))
		}
		for _, c := range e.Checks {
			if m := mark(c); m != markOK {
				fmt.Fprintf(w, "%s %s: %s: %s\n", m, e.Name, c.Name, c.Detail)
			}
		}
		if e.Unjudged() {
			fmt.Fprintf(w, "%s %s\n", markUnjudged, unjudgedLine(e))
		}
		if r := e.Renewal; r != nil {
			if line := RenewalProblem(e.Name, *r, now); line != "" {
				fmt.Fprintf(w, "%s %s\n", markFail, line)
			}
		}
	}
	return nil
}

// RenewalProblem is what status says about the daemon's last attempts
// for certificate name, "" when nothing is wrong. The daemon's Sensu
// events carry the same words.
func RenewalProblem(name string, r certstate.State, now time.Time) string {
	switch {
	case r.Failures > 0 && r.Reason == certstate.FailConsumer && r.RejectedSerial != "":
		return fmt.Sprintf("%s: consumers rejected serial %s (reason %s, %d in a row, last %s ago); it is not installed again and the next renewal is in %s: %s",
			name, r.RejectedSerial, r.Reason, r.Failures, HumanDuration(now.Sub(r.LastErrorAt)), HumanDuration(r.NextRenewal.Sub(now)), r.LastError)
	case r.Failures > 0:
		return fmt.Sprintf("%s: renewal failing (%d in a row, last %s ago, next try in %s): %s",
			name, r.Failures, HumanDuration(now.Sub(r.LastErrorAt)), HumanDuration(r.NextRenewal.Sub(now)), r.LastError)
	case r.Reason == certstate.FailExternal && r.LastError != "":
		// Failures counts the daemon's own attempts; a replacement another
		// tool wrote is refused without one.
		return fmt.Sprintf("%s: %s (last %s ago; the last valid set stays installed)", name, r.LastError, HumanDuration(now.Sub(r.LastErrorAt)))
	}
	return ""
}

// renews says when the daemon will next renew a managed certificate: "-"
// when the daemon has not run for it.
func renews(e Entry, now time.Time) string {
	if e.Renewal == nil || e.Renewal.NextRenewal.IsZero() {
		return "-"
	}
	if d := e.Renewal.NextRenewal.Sub(now); d > 0 {
		return "in " + HumanDuration(d)
	}
	return "due"
}

func marks(e Entry) string {
	parts := make([]string, 0, len(e.Checks))
	for _, c := range e.Checks {
		parts = append(parts, mark(c)+c.Name)
	}
	if e.IsCA {
		parts = append([]string{"CA"}, parts...)
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Report is everything `status --json` prints.
type Report struct {
	Certificates []Entry `json:"certificates"`
	// Agents are the Sensu agents the running daemon's proxy listeners
	// have seen, by transport; absent when no daemon answered.
	Agents []Agent `json:"agents,omitempty"`
	// AgentsError says why the agents could not be listed.
	AgentsError string `json:"agents_error,omitempty"`
	// AgentCutover is where this agent node stands in the cutover, when
	// agent-cutover is enabled.
	AgentCutover *AgentCutover `json:"agent_cutover,omitempty"`
}

// AgentCutover is the agent node's last look at the backends, as the
// daemon records it (internal/agentcutover's state file).
type AgentCutover struct {
	State    string    `json:"state"` // waiting, switched, refused, rolled-back
	Detail   string    `json:"detail"`
	Probed   time.Time `json:"probed"`
	Switched time.Time `json:"switched,omitzero"`
}

// WriteAgentCutover renders c in a line or two.
func WriteAgentCutover(w io.Writer, c AgentCutover, now time.Time) error {
	line := "agent cutover: " + c.State
	if !c.Switched.IsZero() {
		line += " at " + c.Switched.Format(time.RFC3339)
	}
	if !c.Probed.IsZero() {
		line += fmt.Sprintf(" (last probe %s ago)", now.Sub(c.Probed).Round(time.Second))
	}
	_, err := fmt.Fprintf(w, "%s\n  %s\n", line, c.Detail)
	return err
}

// Agent is one Sensu agent as the daemon's /agents endpoint reports it.
// inventory reads that JSON itself rather than importing proxy: rotate
// never imports a consumer.
type Agent struct {
	Listener  string    `json:"listener"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Transport string    `json:"transport"` // "tls" or "plaintext"
	LastSeen  time.Time `json:"last_seen"`
}

// transportPlaintext is the Transport of an agent not yet on TLS.
const transportPlaintext = "plaintext"

// DecodeAgents reads an /agents answer; an empty list is not nil, so the
// report says "0 agents" rather than nothing.
func DecodeAgents(r io.Reader) ([]Agent, error) {
	agents := []Agent{}
	if err := json.NewDecoder(r).Decode(&agents); err != nil {
		return nil, err
	}
	if agents == nil {
		agents = []Agent{}
	}
	return agents, nil
}

// WriteJSON prints the report for machines.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if r.Certificates == nil {
		r.Certificates = []Entry{}
	}
	return enc.Encode(r)
}

// WriteAgents prints the agents the proxy has seen and how many still
// arrive in plaintext: the number to watch before enforcing TLS.
func WriteAgents(w io.Writer, agents []Agent, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tNAMESPACE\tAGENT\tTRANSPORT\tLAST SEEN")
	plain := 0
	for _, a := range agents {
		if a.Transport == transportPlaintext {
			plain++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\n", a.Listener, a.Namespace, a.Name, a.Transport, HumanDuration(now.Sub(a.LastSeen).Truncate(time.Second)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d agents seen by the proxy: %d over TLS, %d still in plaintext\n", len(agents), len(agents)-plain, plain)
	return err
}

// HumanDuration prints a time left as an operator thinks of it: "89d 23h",
// "5h 12m", "42s", or "expired 3d ago".
func HumanDuration(d time.Duration) string {
	if d < 0 {
		// -d overflows for the smallest Duration (a zero time.Time's Sub
		// saturates to it): one nanosecond less prints the same.
		return "expired " + HumanDuration(-max(d, -math.MaxInt64)) + " ago"
	}
	days := d / (24 * time.Hour)
	hours := (d % (24 * time.Hour)) / time.Hour
	mins := (d % time.Hour) / time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
