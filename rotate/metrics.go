package rotate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// interruptedReason is certstate.State.Reason when the daemon (or, on a reload,
// the certificate's runner) stopped before consumers had taken a new set:
// not a failure, and nothing was rolled back.
const interruptedReason = "interrupted"

// Metrics are the daemon's Prometheus series, registered on one Registry
// the run command serves at /metrics.
type Metrics struct {
	Registry    *prometheus.Registry
	expiry      *prometheus.GaugeVec
	nextRenewal *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	generation  *prometheus.GaugeVec
	rejected    *prometheus.GaugeVec
	renewals    *prometheus.CounterVec
	failures    *prometheus.CounterVec
}

// NewMetrics creates the series on a fresh registry (with Go and process
// collectors, so RSS and CPU are visible too).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensu_tlsd_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the installed leaf certificate, Unix seconds.",
		}, []string{"name"}),
		nextRenewal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensu_tlsd_certificate_next_renewal_timestamp_seconds",
			Help: "When the next renewal attempt is scheduled, Unix seconds.",
		}, []string{"name"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensu_tlsd_certificate_last_success_timestamp_seconds",
			Help: "When a new set for the certificate was last installed and accepted, Unix seconds.",
		}, []string{"name"}),
		generation: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensu_tlsd_certificate_generation",
			Help: "Installed generation of the certificate set.",
		}, []string{"name"}),
		rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensu_tlsd_certificate_consumer_rejected",
			Help: "1 while the serial consumers last refused is remembered (it is not installed again; renewal waits until the restored set is due), else 0.",
		}, []string{"name"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensu_tlsd_renewals_total",
			Help: "Certificate sets installed and announced, by reason (initial, renewal, external, rollback).",
		}, []string{"name", "reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensu_tlsd_renewal_failures_total",
			Help: "Failed renewal attempts, by reason (issue, validate, install, consumer, external).",
		}, []string{"name", "reason"}),
	}
	m.Registry.MustRegister(m.expiry, m.nextRenewal, m.lastSuccess, m.generation, m.rejected, m.renewals, m.failures,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// forget drops every series of a certificate no longer managed.
func (m *Metrics) forget(name string) {
	l := prometheus.Labels{"name": name}
	for _, v := range []*prometheus.MetricVec{m.expiry.MetricVec, m.nextRenewal.MetricVec, m.lastSuccess.MetricVec, m.generation.MetricVec, m.rejected.MetricVec, m.renewals.MetricVec, m.failures.MetricVec} {
		v.DeletePartialMatch(l)
	}
}
