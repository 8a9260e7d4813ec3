package systemd

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ServiceInfo describes one configured service for people.
type ServiceInfo struct {
	Name         string
	Action       string
	Certificates []string // the certificates that name it
	Checks       []string // the health checks an action would wait for now
}

// Services lists the configured services, sorted by name, with the health
// checks a preset derives (sensu-backend's from backend.yml as it is now).
func (d *Dispatcher) Services() []ServiceInfo {
	certs := map[string][]string{}
	for cert, runners := range d.routes {
		for _, r := range runners {
			certs[r.svc.Name] = append(certs[r.svc.Name], cert)
		}
	}
	out := make([]ServiceInfo, 0, len(d.all))
	for name, r := range d.all {
		info := ServiceInfo{Name: name, Action: r.svc.Action.String(), Certificates: certs[name]}
		sort.Strings(info.Certificates)
		for _, c := range r.svc.checks(r.svc.Trigger.Probe(nil)) {
			info.Checks = append(info.Checks, c.String())
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Probe runs a service's health checks now, without acting, against the
// certificates b describes (typically what is installed on disk): "does the
// running service serve what is installed?" A service that missed a
// restart fails here with the serial it still serves.
// timeout, when not 0, replaces the configured health timeout.
func (d *Dispatcher) Probe(ctx context.Context, service string, b Batch, timeout time.Duration) ([]string, error) {
	r := d.all[service]
	if r == nil {
		return nil, fmt.Errorf("no service %q (configured: %s)", service, strings.Join(d.serviceNames(), ", "))
	}
	dec := r.svc.Trigger.Probe(b)
	health := r.svc.Health
	if timeout > 0 {
		health.Timeout = timeout
	}
	health.Checks = r.svc.checks(dec)
	var names []string
	for _, c := range health.Checks {
		names = append(names, c.String())
	}
	return names, health.Wait(ctx, dec.Expect)
}

// Act runs a service's action and health gate now for b, as a rotation
// would (never beside another action of the same service, in this process
// or, through the lock file, in the daemon): for an operator who replaced
// files by hand.
func (d *Dispatcher) Act(ctx context.Context, service string, b Batch) error {
	r := d.all[service]
	if r == nil {
		return fmt.Errorf("no service %q (configured: %s)", service, strings.Join(d.serviceNames(), ", "))
	}
	r.running.Lock()
	defer r.running.Unlock()
	unlock, err := r.lock(ctx)
	if err != nil {
		return fmt.Errorf("service %s: %w", service, err)
	}
	defer unlock()
	return r.act(ctx, b)
}

func (d *Dispatcher) serviceNames() []string {
	names := make([]string, 0, len(d.all))
	for n := range d.all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
