package inventory

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
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

// Evaluate turns entries into one check verdict: critical when any
// certificate expires within crit or fails a check, warning within warn or
// while the daemon's renewals of it keep failing, unknown when a
// certificate cannot be read at all.
func Evaluate(entries []Entry, warn, crit time.Duration) CheckResult {
	var unknown, critical, warning []string
	for _, e := range entries {
		switch {
		case e.NotAfter.IsZero():
			unknown = append(unknown, fmt.Sprintf("%s unreadable (%s)", e.Name, e.Error))
		case e.Left <= crit:
			critical = append(critical, expiryPhrase(e))
		case len(failedChecks(e)) > 0:
			critical = append(critical, fmt.Sprintf("%s fails %s", e.Name, strings.Join(failedChecks(e), ", ")))
		case e.Renewal != nil && e.Renewal.Failures > 0:
			// Still valid beyond crit, but nobody should wait for the
			// expiry warning to learn the renewals are failing.
			warning = append(warning, fmt.Sprintf("%s renewal failing (%d in a row: %s)", e.Name, e.Renewal.Failures, e.Renewal.LastError))
		case e.Left <= warn:
			warning = append(warning, expiryPhrase(e))
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

func expiryPhrase(e Entry) string {
	if e.Left < 0 {
		return fmt.Sprintf("%s expired %s ago", e.Name, HumanDuration(-e.Left))
	}
	return fmt.Sprintf("%s expires in %s", e.Name, HumanDuration(e.Left))
}

func failedChecks(e Entry) []string {
	var names []string
	for _, c := range e.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	if e.Error != "" {
		names = append(names, "read")
	}
	return names
}

// WriteMetrics writes seconds to expiry per certificate in the Prometheus
// text format, which Sensu ingests with output_metric_format
// prometheus_text.
func WriteMetrics(w io.Writer, entries []Entry) error {
	var lines []string
	for _, e := range entries {
		if e.NotAfter.IsZero() {
			continue
		}
		lines = append(lines, fmt.Sprintf("sensu_tlsd_certificate_expiry_seconds{name=%s,path=%s} %d",
			strconv.Quote(e.Name), strconv.Quote(e.CertFile), e.Seconds))
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "# HELP sensu_tlsd_certificate_expiry_seconds Seconds until the certificate expires (negative once expired).\n# TYPE sensu_tlsd_certificate_expiry_seconds gauge\n%s\n", strings.Join(lines, "\n"))
	return err
}
