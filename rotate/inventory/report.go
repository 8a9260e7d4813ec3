package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Marks make a table readable at a glance.
const (
	markOK   = "✓"
	markFail = "✗"
)

// WriteTable prints one row per entry, then one line per failed check or
// read error under it, so the fix is next to the certificate it concerns.
func WriteTable(w io.Writer, entries []Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPATH\tCN\tSANS\tISSUER\tSERIAL\tNOT AFTER\tLEFT\tCHECKS")
	for _, e := range entries {
		if e.NotAfter.IsZero() {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s unreadable\n", e.Name, e.CertFile, markFail)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.Name, e.CertFile, e.Subject, dash(strings.Join(e.SANs, ",")), e.Issuer, e.Serial,
			e.NotAfter.UTC().Format("2006-01-02 15:04"), HumanDuration(e.Left), marks(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Error != "" {
			fmt.Fprintf(w, "%s %s: %s\n", markFail, e.Name, e.Error)
		}
		for _, c := range e.Checks {
			if !c.OK {
				fmt.Fprintf(w, "%s %s: %s: %s\n", markFail, e.Name, c.Name, c.Detail)
			}
		}
	}
	return nil
}

func marks(e Entry) string {
	parts := make([]string, 0, len(e.Checks))
	for _, c := range e.Checks {
		m := markOK
		if !c.OK {
			m = markFail
		}
		parts = append(parts, m+c.Name)
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

// WriteJSON prints the entries as a JSON array for machines.
func WriteJSON(w io.Writer, entries []Entry) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if entries == nil {
		entries = []Entry{}
	}
	return enc.Encode(entries)
}

// HumanDuration prints a time left as an operator thinks of it: "89d 23h",
// "5h 12m", "42s", or "expired 3d ago".
func HumanDuration(d time.Duration) string {
	if d < 0 {
		return "expired " + HumanDuration(-d) + " ago"
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
