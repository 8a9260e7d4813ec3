package enrol

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// SetApproval approves (approve true) or denies name in s, as
// `sensu-tlsd agents approve|deny NAME` does.
func SetApproval(ctx context.Context, s Store, name string, approve bool, now time.Time) (Record, error) {
	rec, _, err := Update(ctx, s, name, func(rec Record, found bool) (Record, struct{}, error) {
		if !found {
			return rec, struct{}{}, fmt.Errorf("no agent %q has asked to enrol: `sensu-tlsd agents list` shows those that have", name)
		}
		var err error
		if approve {
			rec, err = Approve(rec, now)
		} else {
			rec, err = Deny(rec, now)
		}
		return rec, struct{}{}, err
	})
	return rec, err
}

// WriteList writes recs as a table, or as JSON with asJSON.
func WriteList(w io.Writer, recs []Record, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tSTATE\tKEY\tWHEN\tDETAIL")
	for _, r := range recs {
		key, detail := r.Key, r.Reason
		if r.Requested != "" && r.State != Signed {
			key = r.Requested
		}
		if r.State == Signed {
			detail = fmt.Sprintf("serial %s until %s", r.Serial, r.NotAfter.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Namespace, r.State, "sha256:"+Short(key), r.Updated.UTC().Format(time.RFC3339), detail)
	}
	return tw.Flush()
}
