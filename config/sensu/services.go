package sensu

import "time"

// Service is what it takes to make one Sensu process pick up new
// certificates. The packaged sensu-backend.service and sensu-agent.service
// have no ExecReload, so a reload job fails ("Job type reload is not
// applicable") and the change would be rolled back; an ExecReload added in
// a drop-in could only signal, and neither process reloads certificates on
// a signal. So the action is a restart.
type Service struct {
	Unit   string // the packages' systemd unit
	Action string // restart
	// HealthTimeout is how long the process may take to come back healthy
	// (a backend waits for an etcd election).
	HealthTimeout time.Duration
	// Refused maps an action ("reload") or a signal ("signal HUP") to why it
	// never makes the process pick up certificates.
	Refused map[string]string
}

var services = map[Role]Service{
	Backend: {
		Unit: "sensu-backend.service", Action: "restart", HealthTimeout: time.Minute,
		Refused: map[string]string{
			"reload":     "sensu-backend 6.x reloads no certificates (its packaged unit has no ExecReload, and SIGHUP only reopens log files); use action restart",
			"signal HUP": "sensu-backend 6.x reloads no certificates on SIGHUP (it only reopens log files); use action restart",
		},
	},
	Agent: {
		Unit: "sensu-agent.service", Action: "restart", HealthTimeout: 30 * time.Second,
		Refused: map[string]string{
			"reload":     "the packaged sensu-agent.service has no ExecReload (the job fails), and one that sends SIGHUP kills sensu-agent (exit 129); use action restart, or none to wait for the next reconnect",
			"signal HUP": "sensu-agent dies on SIGHUP (exit 129); use action restart, or none to wait for the next reconnect",
		},
	},
}

// ServiceOf is how the role's process picks up new certificates.
func ServiceOf(r Role) Service { return services[r] }
