package systemd

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// Batch is the set of changes one service acts on at once: changes that
// arrive together (a renewed cert, key and CA; the backend and etcd
// certificates renewed in the same minute) cause one action, not several.
type Batch []event.Change

// Names are the certificate names in the batch, in arrival order.
func (b Batch) Names() []string {
	return b.collect(func(c event.Change) []string { return []string{c.Name} })
}

// Files are the changed paths of every change, without repeats.
func (b Batch) Files() []string { return b.collect(func(c event.Change) []string { return c.Files }) }

// IsRollback reports whether any change puts a previous set back.
func (b Batch) IsRollback() bool {
	for _, c := range b {
		if c.Reason == event.ReasonRollback {
			return true
		}
	}
	return false
}

func (b Batch) collect(f func(event.Change) []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range b {
		for _, s := range f(c) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// Env describes the batch to a command as environment entries.
func (b Batch) Env(service string) []string {
	var reasons, olds, news []string
	for _, c := range b {
		reasons = append(reasons, string(c.Reason))
		olds = append(olds, c.OldSerial)
		news = append(news, c.NewSerial)
	}
	changes, _ := json.Marshal(b) // a []event.Change of strings and times always marshals
	return []string{
		"SENSU_TLSD_SERVICE=" + service,
		"SENSU_TLSD_CERTIFICATES=" + strings.Join(b.Names(), " "),
		"SENSU_TLSD_REASONS=" + strings.Join(reasons, " "),
		"SENSU_TLSD_OLD_SERIALS=" + strings.Join(olds, " "),
		"SENSU_TLSD_NEW_SERIALS=" + strings.Join(news, " "),
		"SENSU_TLSD_FILES=" + strings.Join(b.Files(), "\n"),
		"SENSU_TLSD_CHANGES=" + string(changes),
	}
}

// Outcome says what an action did.
type Outcome struct {
	// Acted is false when the action deliberately did nothing (a unit that
	// was stopped on purpose stays stopped), so there is nothing to check.
	Acted  bool
	Detail string
}

// Action makes one service pick up a batch of changes. Implementations sit
// side by side: UnitJob, UnitSignal, PIDSignal, Command, None.
type Action interface {
	Run(ctx context.Context, b Batch) (Outcome, error)
	// String names the action for logs, e.g. "try-restart sensu-backend.service".
	String() string
}

// None is the action that waits: the service picks the files up by itself
// (sensu-agent at its next reconnect).
type None struct{}

// Run does nothing.
func (None) Run(context.Context, Batch) (Outcome, error) {
	return Outcome{Detail: "no action configured"}, nil
}

func (None) String() string { return "none" }
