package inventory

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Sensu check plugin exit statuses (Nagios convention, which Sensu uses).
const (
	StatusOK       = 0
	StatusWarning  = 1
	StatusCritical = 2
	StatusUnknown  = 3
)

// CheckResult is a Sensu check's verdict over every certificate.
type CheckResult struct {
	Status int
	Line   string
}

// Evaluate turns entries into one check verdict: unknown when a file
// (certificate, key or CA) cannot be reached, critical when one is there
// but holds no usable certificate or key, when a certificate expires
// within crit or fails a check, warning within warn, while the
// daemon's renewals of it keep failing, or when a check passed with a
// warning. Each phrase carries the first failure's detail, so the event
// alone says which file is wrong and how to fix it.
func Evaluate(entries []Entry, warn, crit time.Duration) CheckResult {
	var unknown, critical, warning []string
	for _, e := range entries {
		switch {
		case e.Error != "" && e.Broken:
			critical = append(critical, describe(e.Name+" unusable", e.Name, e.Error))
		case e.Error != "":
			unknown = append(unknown, describe(e.Name+" unreadable", e.Name, e.Error))
		case e.Left <= crit:
			phrase := expiryPhrase(e)
			if failed := failedChecks(e); len(failed) > 0 {
				// The expiry is the headline; the failure says what to do.
				phrase += " and " + failurePhrase(failed)
			}
			critical = append(critical, phrase)
		case len(failedChecks(e)) > 0:
			critical = append(critical, e.Name+" "+failurePhrase(failedChecks(e)))
		case e.Renewal != nil && e.Renewal.Failures > 0:
			// Still valid beyond crit, but nobody should wait for the
			// expiry warning to learn the renewals are failing.
			warning = append(warning, fmt.Sprintf("%s renewal failing (%d in a row: %s)", e.Name, e.Renewal.Failures, e.Renewal.LastError))
		case e.Left <= warn:
			warning = append(warning, expiryPhrase(e))
		case len(warnedChecks(e)) > 0:
			w := warnedChecks(e)[0]
			warning = append(warning, fmt.Sprintf("%s %s: %s", e.Name, w.Name, w.Detail))
		}
	}
	ok := len(entries) - len(unknown) - len(critical) - len(warning)
	tail := fmt.Sprintf("%d of %d certificates OK", ok, len(entries))
	switch {
	case len(unknown) > 0:
		return CheckResult{StatusUnknown, "UNKNOWN: " + strings.Join(append(unknown, append(critical, warning...)...), "; ") + "; " + tail}
	case len(critical) > 0:
		return CheckResult{StatusCritical, "CRITICAL: " + strings.Join(append(critical, warning...), "; ") + "; " + tail}
	case len(warning) > 0:
		return CheckResult{StatusWarning, "WARNING: " + strings.Join(warning, "; ") + "; " + tail}
	case len(entries) == 0:
		return CheckResult{StatusUnknown, "UNKNOWN: no certificates to check: give a config with certificates, --backend-config/--agent-config, or certificate files"}
	}
	return CheckResult{StatusOK, "OK: " + tail}
}

// describe joins a label and a message about the entry called name,
// dropping the name from the message when it starts with it (a file given
// as an argument is named by its path, and read errors start with the
// path), so no line says "der.der: der.der: ...".
func describe(label, name, msg string) string {
	return label + ": " + strings.TrimPrefix(msg, name+": ")
}

func expiryPhrase(e Entry) string {
	if e.Left < 0 {
		return fmt.Sprintf("%s expired %s ago", e.Name, HumanDuration(-e.Left))
	}
	return fmt.Sprintf("%s expires in %s", e.Name, HumanDuration(e.Left))
}

// failurePhrase names the first failed check with its detail (which
// carries the fix) and the names of the others.
func failurePhrase(failed []pki.CheckResult) string {
	phrase := fmt.Sprintf("fails %s: %s", failed[0].Name, failed[0].Detail)
	if len(failed) > 1 {
		phrase += " (also fails " + checkNames(failed[1:]) + ")"
	}
	return phrase
}

func failedChecks(e Entry) []pki.CheckResult {
	var out []pki.CheckResult
	for _, c := range e.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func warnedChecks(e Entry) []pki.CheckResult {
	var out []pki.CheckResult
	for _, c := range e.Checks {
		if c.OK && c.Warning {
			out = append(out, c)
		}
	}
	return out
}

func checkNames(cs []pki.CheckResult) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// WriteCheck writes a check's output as Prometheus text, which Sensu reads
// with output_metric_format: prometheus_text: the status line as a comment
// (Sensu's parser skips comment lines, but any other non-sample line makes
// it drop every sample), then each certificate's seconds to expiry.
func WriteCheck(w io.Writer, r CheckResult, entries []Entry) error {
	line := strings.NewReplacer("\r", " ", "\n", " ").Replace(r.Line)
	if _, err := fmt.Fprintf(w, "# %s\n", line); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Unjudged() {
			if _, err := fmt.Fprintf(w, "# %s %s\n", markUnjudged, strings.NewReplacer("\r", " ", "\n", " ").Replace(unjudgedLine(e))); err != nil {
				return err
			}
		}
	}
	return writeMetrics(w, entries)
}

// labelValue escapes a label value as the text format wants: only
// backslash, double quote and line feed, not Go's escapes.
var labelValue = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// writeMetrics writes seconds to expiry per certificate in the Prometheus
// text format, which Sensu ingests with output_metric_format
// prometheus_text.
func writeMetrics(w io.Writer, entries []Entry) error {
	var lines []string
	for _, e := range entries {
		if e.Seconds == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf(`sensu_tlsd_certificate_expiry_seconds{name="%s",path="%s"} %d`,
			labelValue.Replace(e.Name), labelValue.Replace(e.CertFile), *e.Seconds))
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "# HELP sensu_tlsd_certificate_expiry_seconds Seconds until the certificate expires (negative once expired).\n# TYPE sensu_tlsd_certificate_expiry_seconds gauge\n%s\n", strings.Join(lines, "\n"))
	return err
}
