package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus series, shared by every listener of
// a process and labelled by listener name.
type Metrics struct {
	open              *prometheus.GaugeVec
	total             *prometheus.CounterVec
	refused           *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	targetFailures    *prometheus.CounterVec
	bytes             *prometheus.CounterVec
	agents            *prometheus.GaugeVec
}

// NewMetrics registers the proxy series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "sensu_tlsd", "proxy"
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_open", Help: "Client connections open now."}, []string{"listener"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_total", Help: "Client connections accepted past the handshake, by transport (tls, plaintext)."}, []string{"listener", "transport"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_refused_total", Help: "Client connections refused before their handshake, by reason (max-conns)."}, []string{"listener", "reason"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handshake_failures_total", Help: "Client handshakes that failed, by reason: timeout, client-closed, not-tls, unknown-protocol, plaintext-refused, " +
				"protocol-version, no-shared-cipher, no-shared-alpn, no-client-certificate, bad-client-certificate, client-not-allowed, " +
				"client-alert (the client rejected the proxy), certificate-pending (not issued yet), " +
				"agent-identity (the certificate does not name the agent, or none; answered 403), denied (deny-file; answered 403), other."}, []string{"listener", "reason"}),
		targetFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "target_failures_total", Help: "Connections to a target that failed (target down, TLS verification), by target."}, []string{"listener", "target"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_total", Help: "Bytes relayed, by direction (client_to_target, target_to_client)."}, []string{"listener", "direction"}),
		agents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "agents_seen", Help: fmt.Sprintf("Distinct Sensu agents seen since start (the %d seen most recently), by the transport of their last connection.", maxAgents)}, []string{"listener", "transport"}),
	}
	for _, c := range []prometheus.Collector{m.open, m.total, m.refused, m.handshakeFailures, m.targetFailures, m.bytes, m.agents} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// listenerMetrics are one listener's children, resolved once so the hot
// path never looks up labels.
type listenerMetrics struct {
	m            *Metrics
	name         string
	open         prometheus.Gauge
	totalTLS     prometheus.Counter
	totalPlain   prometheus.Counter
	refusedLimit prometheus.Counter
	up, down     prometheus.Counter
}

func (m *Metrics) forListener(name string) *listenerMetrics {
	return &listenerMetrics{
		m:            m,
		name:         name,
		open:         m.open.WithLabelValues(name),
		totalTLS:     m.total.WithLabelValues(name, string(TransportTLS)),
		totalPlain:   m.total.WithLabelValues(name, string(TransportPlaintext)),
		refusedLimit: m.refused.WithLabelValues(name, "max-conns"),
		up:           m.bytes.WithLabelValues(name, "client_to_target"),
		down:         m.bytes.WithLabelValues(name, "target_to_client"),
	}
}

func (l *listenerMetrics) handshakeFailed(reason string) {
	l.m.handshakeFailures.WithLabelValues(l.name, reason).Inc()
}

func (l *listenerMetrics) targetFailed(target string) {
	l.m.targetFailures.WithLabelValues(l.name, target).Inc()
}

func (l *listenerMetrics) agentsSeen(t Transport, n int) {
	l.m.agents.WithLabelValues(l.name, string(t)).Set(float64(n))
}
